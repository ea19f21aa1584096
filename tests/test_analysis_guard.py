"""Guard metrics on constructed records: proposed vs executed violation, latent drift,
interventions, catch and false-edit rates, and runs without a guard as the baseline."""

import polars as pl
import pytest

from analysis.guard import guard_curves, guard_summary


def records() -> pl.DataFrame:
    """Round 0: 4 proposals (2 violating, one caught; one compliant falsely edited);
    round 1: 4 violating proposals, one caught. Plus a run without a guard."""
    guarded = pl.DataFrame(
        {
            "run": "g",
            "round": [0, 0, 0, 0, 1, 1, 1, 1],
            "proposed_violated": [True, True, False, False, True, True, True, True],
            "guard_changed": [True, False, True, False, True, False, False, False],
            "violated": [False, True, True, False, False, True, True, True],
            "guard_p_correct": [0.2, 0.9, 0.4, 0.8, None, None, None, None],
        }
    )
    plain = pl.DataFrame({"run": "n", "round": [0, 0], "violated": [True, False]})
    return pl.concat([guarded, plain], how="diagonal")


def test_guard_curves_per_round():
    c = guard_curves(records(), by="run").filter(pl.col("run") == "g")
    assert c["proposed_violation"].to_list() == [0.5, 1.0]
    assert c["executed_violation"].to_list() == [0.5, 0.75]
    assert c["latent_drift"].to_list() == [0.0, 0.25]
    assert c["intervention_rate"].to_list() == [0.5, 0.25]
    assert c["catch_rate"].to_list() == [0.5, 0.25]
    assert c["false_edit_rate"].to_list() == [0.5, None]
    assert c["mean_p_correct"][0] == pytest.approx(0.575)


def test_a_run_without_a_guard_proposes_what_it_executes():
    c = guard_curves(records(), by="run").filter(pl.col("run") == "n")
    assert c["proposed_violation"].to_list() == c["executed_violation"].to_list() == [0.5]
    assert c["catch_rate"].to_list() == [None] and c["intervention_rate"].to_list() == [None]


def test_summary_reports_how_fast_proposals_rise():
    s = guard_summary(records(), by="run").filter(pl.col("run") == "g")
    assert s["proposed_slope"].item() == pytest.approx(0.5)
    assert s["final_proposed"].item() == 1.0 and s["final_executed"].item() == 0.75
