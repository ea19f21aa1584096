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
from omegaconf import DictConfig


class RunReport(Callback):
    """Writes report/ into a run's directory when the run completed (run.report)."""

    def __init__(self, report: bool = True):
        self.report = report

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs) -> None:
        if not self.report or job_return.status != JobStatus.COMPLETED:
            return
        from analysis.report import write_report

        run_dir = Path(HydraConfig.get().runtime.output_dir)
        print(f"report: {write_report(run_dir) / 'index.html'}")


class SweepSummary(Callback):
    """Prints the sweep table and writes it (summary.parquet) and the sweep's report."""

    def __init__(self, report: bool = True):
        self.report = report

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
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
