"""What every metric takes and shares: decisions frames, group keys, small expressions.

Every metric takes a decisions frame (lazy or eager; the columns of
`envs.records.DECISIONS`, plus `run_dir` and parameter columns from
`analysis.load.scan_decisions`) and returns a `polars.DataFrame`. `by` names the columns
to group by (any config or condition column: `"env.threshold"`, `"threshold"`,
`"run_dir"` for one curve per run, ...). A frame without `run_dir` is one run.

Notation: round t, agent i, v_it = 1 if i violated in round t (null when invalid),
p_it = the model's probability of the violating label.
"""

from __future__ import annotations

from collections.abc import Sequence
from statistics import NormalDist

import polars as pl

from analysis.load import RUN

Frame = pl.LazyFrame | pl.DataFrame
By = str | Sequence[str] | None


def group_keys(by: By) -> list[str]:
    """`by` as a list of column names (none for None)."""
    if by is None:
        return []
    return [by] if isinstance(by, str) else list(by)


def with_run(decisions: Frame) -> pl.LazyFrame:
    """The frame, lazy, with a `run_dir` column (from run_id, or "run") if it had none."""
    lf = decisions.lazy()
    names = lf.collect_schema().names()
    if RUN not in names:
        run = pl.col("run_id").fill_null("run") if "run_id" in names else pl.lit("run")
        lf = lf.with_columns(run.cast(pl.String).alias(RUN))
    return lf


def normal_quantile(ci: float) -> float:
    """Two-sided standard normal quantile for a central interval of mass `ci`."""
    return NormalDist().inv_cdf(0.5 + ci / 2)


def safe_div(num: pl.Expr, den: pl.Expr) -> pl.Expr:
    return pl.when(den > 0).then(num / den).otherwise(None)
