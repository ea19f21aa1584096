"""analysis.protection on constructed runs whose numbers are known by hand."""

import polars as pl
import pytest

from analysis.protection import alignment_protection


def runs(spec: dict[str, tuple[str, list[list[bool]]]]) -> pl.DataFrame:
    """run id -> (alignment, per round the agents' violations)."""
    rows = [
        {"run_id": run, "backend.align": align, "round": t, "agent": i, "violated": v}
        for run, (align, rounds) in spec.items()
        for t, votes in enumerate(rounds)
        for i, v in enumerate(votes)
    ]
    return pl.DataFrame(rows)


def test_protection_erosion_and_rounds_to_tip_by_hand():
    d = runs(
        {
            "a": ("none", [[True, True], [True, True], [True, True]]),  # rates 1, 1, 1
            "b": ("none", [[True, False], [True, True], [True, True]]),  # .5, 1, 1
            "c": ("dpo", [[False, False], [True, False], [True, True]]),  # 0, .5, 1
            "d": ("dpo", [[False, False], [False, False], [True, False]]),  # 0, 0, .5
        }
    )
    out = alignment_protection(d, "backend.align", level=0.8, n_boot=200)
    base = out.filter(pl.col("backend.align") == "none").row(0, named=True)
    dpo = out.filter(pl.col("backend.align") == "dpo").row(0, named=True)
    assert base["round1_violation"] == 0.75 and dpo["round1_violation"] == 0.0
    assert base["protection"] is None
    assert dpo["protection"] == 0.75
    assert 0.5 <= dpo["protection_lo"] <= dpo["protection_hi"] <= 1.0  # resampled {1, .5}
    assert dpo["erosion_per_round"] == pytest.approx((0.5 + 0.25) / 2)  # slopes .5 and .25
    assert base["erosion_per_round"] == pytest.approx((0 + 0.25) / 2)
    assert (dpo["tipped"], dpo["median_rounds_to_tip"]) == (1, 3.0)  # c tips in round 3
    assert (base["tipped"], base["median_rounds_to_tip"]) == (2, 1.5)  # a at 1, b at 2
