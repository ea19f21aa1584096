"""Outcomes over swept parameters: phase diagrams and the per-run sweep table.

Notation: round t, agent i, v_it = 1 if i violated in round t (null when invalid),
p_it = the model's probability of the violating label.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from analysis.frames import By, Frame, group_keys, with_run
from analysis.load import RUN, read_manifests, scan_decisions, swept_parameters
from analysis.tipping import tipping_times


def phase_diagram(
    decisions: Frame, x: str, y: str | None = None, last_rounds: int = 1, by: By = ()
) -> pl.DataFrame:
    """Final violation rate over one or two swept parameters (per value of `by`).

    Per run, final_rate = violations / valid decisions over its last `last_rounds`
    recorded rounds; per (by, x, y) cell, final_violation_rate = mean of final_rate over
    runs (seeds), with its standard deviation. Give every other swept parameter as `by`,
    or a cell averages over it.

    Returns: by..., x, [y,] n_runs, final_violation_rate, final_violation_rate_sd.
    """
    cell = [*group_keys(by), x] + ([] if y is None else [y])
    return (
        with_run(decisions)
        .filter(pl.col("round") > pl.col("round").max().over(RUN) - last_rounds)
        .group_by(*dict.fromkeys([*cell, RUN]))
        .agg(final_rate=pl.col("violated").mean())
        .group_by(cell)
        .agg(
            n_runs=pl.len().cast(pl.Int64),
            final_violation_rate=pl.col("final_rate").mean(),
            final_violation_rate_sd=pl.col("final_rate").std(),
        )
        .sort(cell)
        .collect()
    )


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
