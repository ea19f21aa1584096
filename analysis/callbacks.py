"""Hydra callbacks that end a run with its report and a multirun with its sweep table.

Registered in conf/config.yaml, so `python -m sim.run` reports without `sim` importing
`analysis`: the simulator writes records, these read them once it is done. The report's
modules load only when a report is written, not on every run's start.
"""

from __future__ import annotations

import sys
from pathlib import Path

import polars as pl
from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig


class RunReport(Callback):
    """Writes report/ into a run's directory when the run completed (run.report)."""

    def __init__(self, report: bool = True):
        self.report = report

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs) -> None:
        if not self.report or job_return.status != JobStatus.COMPLETED:
            return
        from analysis.report import write_report

        hydra = HydraConfig.get()
        out = write_report(Path(hydra.runtime.output_dir))
        if hydra.mode != RunMode.MULTIRUN:  # a sweep's runs keep quiet (its progress line)
            table = out / "tables" / "by_condition.csv"
            if table.is_file():
                print_conditions(pl.read_csv(table))
            print(f"report: {out / 'index.html'}")


def print_conditions(rates: pl.DataFrame) -> None:
    """The report's per-condition rates as one row per round and one column per
    condition, each cell "rate [ci_low, ci_high]" (the by columns come before "round")."""
    by = rates.columns[: rates.columns.index("round")]
    label = pl.concat_str([pl.format(f"{c}={{}}", pl.col(c)) for c in by], separator=", ")
    cell = pl.format(
        "{} [{}, {}]", *(pl.col(c).round(2) for c in ("violation_rate", "ci_low", "ci_high"))
    )
    wide = rates.select("round", label.alias("condition"), cell.alias("cell")).pivot(
        "condition", index="round", values="cell", sort_columns=False
    )
    with pl.Config(tbl_rows=-1, tbl_cols=-1, tbl_hide_dataframe_shape=True, fmt_str_lengths=40):
        print("violation rate per round by condition [95% CI]:")
        print(wide.sort("round"))


class SweepSummary(Callback):
    """The sweep's progress line while it plays; at the end its table (also
    summary.parquet) and its report."""

    def __init__(self, report: bool = True):
        self.report = report
        self.progress = None

    def __getstate__(self) -> dict:
        """Launchers send callbacks to their workers; the progress line stays here."""
        return {**self.__dict__, "progress": None}

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        from analysis.sweep_progress import SweepProgress, job_labels

        self.progress = SweepProgress(Path(config.hydra.sweep.dir), job_labels(config))

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        if self.progress is not None:
            self.progress.close()
        sweep_dir = Path(config.hydra.sweep.dir)
        if not any(sweep_dir.glob("**/manifest.json")):
            return
        from analysis.report import write_report
        from analysis.sweeps import sweep_summary

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
            print(f"report: {write_report(sweep_dir)}", file=sys.stderr)
