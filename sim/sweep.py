"""The end of a multirun: one table of the swept parameters with each run's outcome.

Registered as a Hydra callback in conf/config.yaml, so every `python -m sim.run -m ...`
ends with it, whatever the launcher.
"""

from __future__ import annotations

import sys
from pathlib import Path

import polars as pl
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from analysis.load import RUN, read_manifests, scan_decisions, swept_parameters
from analysis.metrics import tipping_times


def sweep_summary(sweep_dir: Path, level: float = 0.5) -> pl.DataFrame:
    """Per run: swept parameters, seed, status, final violation rate and tipping round."""
    manifests = read_manifests(sweep_dir)
    decisions = scan_decisions(sweep_dir)
    final = (
        decisions.filter(pl.col("round") == pl.col("round").max().over(RUN))
        .group_by(RUN)
        .agg(final_violation_rate=pl.col("violated").mean())
        .collect()
    )
    tips = tipping_times(decisions, level=level).select(RUN, "tipping_round")
    return (
        manifests.select(RUN, *swept_parameters(manifests), "seed", "status")
        .join(final, on=RUN, how="left")
        .join(tips, on=RUN, how="left")
        .sort(RUN)
    )


class SweepSummary(Callback):
    """Prints the sweep table and writes it (summary.parquet) and the sweep's report."""

    def __init__(self, report: bool = True):
        self.report = report

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        if not any(sweep_dir.glob("**/manifest.json")):
            return
        table = sweep_summary(sweep_dir)
        table.write_parquet(sweep_dir / "summary.parquet")
        with pl.Config(
            tbl_rows=-1,
            tbl_cols=-1,
            tbl_hide_dataframe_shape=True,
            float_precision=3,
            fmt_str_lengths=40,
        ):
            print(table)
        print(f"sweep: {sweep_dir} ({table.height} runs)")
        if self.report:
            from analysis.report import write_report

            print(f"report: {write_report(sweep_dir)}", file=sys.stderr)
