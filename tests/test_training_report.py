"""The training section: weight-update curves computed by hand, drawn for runs with
updates, with the in-context runs of a sweep as the reward baseline."""

from __future__ import annotations

import polars as pl
import pytest
from analysis_fixtures import synthetic_decisions, write_run

from analysis.report import write_report
from analysis.training import update_curves
from envs.records import UPDATES


def updates_frame(rows: dict) -> pl.DataFrame:
    frame = pl.DataFrame(rows)
    missing = [pl.lit(None, t).alias(c) for c, t in UPDATES.items() if c not in frame.columns]
    return frame.with_columns(missing).select(UPDATES.names()).cast(UPDATES)


UPDATES_ROWS = {
    "run_id": ["run"] * 3,
    "round": [1, 1, 3],
    "owner": ["agent-0", "agent-1", "agent-0"],
    "loss": [0.5, -0.1, 0.2],
    "kl": [0.0, 0.2, 0.4],
    "mean_reward": [2.0, 3.0, 2.5],
}


def test_update_curves_by_hand():
    out = update_curves(updates_frame(UPDATES_ROWS))
    assert out.select("round", "n_updates", "loss", "kl", "mean_reward").rows() == [
        (1, 2, pytest.approx(0.2), pytest.approx(0.1), 2.5),
        (3, 1, 0.2, 0.4, 2.5),
    ]
    assert out.select("loss_min", "loss_max").row(0) == (-0.1, 0.5)


def test_training_section_with_in_context_baseline(tmp_path):
    sweep = tmp_path / "sweep"
    for i, every in enumerate((0, 1)):
        run = write_run(
            sweep / str(i),
            synthetic_decisions(n_agents=4, n_rounds=5, seed=i, run_id=f"r{i}"),
            {"evolution.every": every},
        )
        if every:
            updates_frame({**UPDATES_ROWS, "run_id": ["r1"] * 3}).write_parquet(
                run / "updates.parquet"
            )
    out = write_report(sweep)
    summary = (out / "summary.md").read_text()
    assert "[Training](training.png)" in summary
    assert "dashed: the mean reward per round of the runs without updates" in summary
    assert (out / "training.svg").is_file()
    alone = write_report(sweep / "1")
    assert "weight updates**: 3 (2 owners)" in (alone / "summary.md").read_text()
    assert not (write_report(sweep / "0") / "training.png").exists()
