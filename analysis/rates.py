"""Violation rates per round, with bootstrap intervals over units, and the p_violate curve.

Notation: round t, agent i, v_it = 1 if i violated in round t (null when invalid),
p_it = the model's probability of the violating label.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from analysis.frames import By, Frame, group_keys, safe_div, with_run
from analysis.load import RUN

UNITS = {
    "agent": [RUN, "agent"],
    "item": [RUN, "group"],
    "group": [RUN, "group"],
    "component": [RUN, "component"],
    "run": [RUN],
    "seed": [RUN],
}
"""Resampling units of the bootstrap: an agent, an item (environment instance) or a
connected component of who-affects-whom (a `component` column, `analysis.units`) of one
run, or a whole run (a seed)."""


def violation_counts(decisions: Frame, by: By = (), unit: str | None = None) -> pl.LazyFrame:
    """Violations k and valid decisions n per (by, [unit], round): the input of every rate."""
    keys = group_keys(by) + (UNITS[unit] if unit else [])
    keys = list(dict.fromkeys(keys))
    return (
        with_run(decisions)
        .group_by(*keys, "round")
        .agg(
            n_violations=pl.col("violated").cast(pl.Int64).sum(),
            n_valid=pl.col("violated").count().cast(pl.Int64),
            n_decisions=pl.len().cast(pl.Int64),
        )
    )


def violation_rate_by_round(
    decisions: Frame,
    by: By = (),
    unit: str = "agent",
    n_boot: int = 1000,
    ci: float = 0.95,
    seed: int = 0,
) -> pl.DataFrame:
    """Violation rate per round with a cluster-bootstrap confidence interval.

    rate_t = sum_i v_it / n_t over valid decisions of round t (null without any).
    The interval resamples whole units (`unit`: "agent", "item" or "run"/"seed") with
    replacement: replicate b draws multinomial weights w_bu (sum_u w_bu = U) and gives
    rate_bt = sum_u w_bu k_ut / sum_u w_bu n_ut; ci_low/ci_high are the (1-ci)/2 and
    (1+ci)/2 percentiles over the `n_boot` replicates (null when n_boot is 0).

    Returns: by..., round, n_units, n_decisions, n_valid, n_violations, violation_rate,
    ci_low, ci_high.
    """
    if unit not in UNITS:
        raise ValueError(f"unit must be one of {sorted(UNITS)}, not {unit!r}")
    keys = group_keys(by)
    lf = with_run(decisions)
    # A unit is (run, x): count the distinct x with a valid decision within each run (small
    # groups), then add the runs up; when/then leaves one null to discount.
    valid = pl.col("violated").is_not_null()
    runs = [] if RUN in keys else [RUN]
    inner = [c for c in UNITS[unit] if c != RUN and c not in keys]  # the x: agent, group
    distinct = valid.any().cast(pl.UInt32)  # unit=run: one unit per run
    if inner:
        x = pl.col(inner[0]) if len(inner) == 1 else pl.struct(inner).hash()
        distinct = pl.when(valid).then(x).n_unique() - valid.not_().any().cast(pl.UInt32)
    counted = ("n_units", "n_decisions", "n_valid", "n_violations")
    point = (
        lf.group_by(*keys, "round", *runs)
        .agg(
            n_units=distinct.cast(pl.Int64),
            n_decisions=pl.len().cast(pl.Int64),
            n_valid=pl.col("violated").count().cast(pl.Int64),
            n_violations=pl.col("violated").cast(pl.Int64).sum(),
        )
        .group_by(*keys, "round")
        .agg(pl.col(*counted).sum())
        .with_columns(violation_rate=safe_div(pl.col("n_violations"), pl.col("n_valid")))
        .sort(*keys, "round")
        .collect()
    )
    # the bootstrap's units are told apart by a 64-bit hash of their key columns
    unit_cols = [c for c in UNITS[unit] if c not in keys] or UNITS[unit]
    unit_id = pl.struct(unit_cols).hash().alias("_unit")
    counts = (
        lf.group_by(*keys, unit_id, "round")
        .agg(
            n_violations=pl.col("violated").cast(pl.Int64).sum(),
            n_valid=pl.col("violated").count().cast(pl.Int64),
        )
        .collect()
        if n_boot > 0
        else None
    )
    bounds = _bootstrap_rate_bounds(point, counts, keys, n_boot, ci, seed)
    return point.join(bounds, on=[*keys, "round"], how="left", nulls_equal=True).select(
        *keys,
        "round",
        "n_units",
        "n_decisions",
        "n_valid",
        "n_violations",
        "violation_rate",
        "ci_low",
        "ci_high",
    )


def _bootstrap_rate_bounds(
    point: pl.DataFrame,
    counts: pl.DataFrame | None,
    keys: list[str],
    n_boot: int,
    ci: float,
    seed: int,
) -> pl.DataFrame:
    """Percentile bounds of the ratio estimator under unit resampling (see above).

    `counts` has one row per (keys, _unit, round). It is pivoted to dense unit x round
    matrices K and N once per group; all replicates are one matrix product (W K) / (W N).
    """
    schema = {**{k: point.schema[k] for k in keys}, "round": point.schema["round"]}
    empty = pl.DataFrame(schema={**schema, "ci_low": pl.Float64, "ci_high": pl.Float64})
    if n_boot <= 0 or counts is None or counts.is_empty():
        return empty
    rng = np.random.default_rng(seed)
    q = [(1 - ci) / 2, (1 + ci) / 2]
    indexed = counts.with_columns(
        _u=pl.col("_unit").rank("dense").over(keys or pl.lit(0)).cast(pl.Int64) - 1,
        _r=pl.col("round").rank("dense").over(keys or pl.lit(0)).cast(pl.Int64) - 1,
    ).sort(*keys, "round")
    groups = indexed.partition_by(keys, maintain_order=True) if keys else [indexed]
    out = []
    for g in groups:
        u, r = g.get_column("_u").to_numpy(), g.get_column("_r").to_numpy()
        n_u, n_r = int(u.max()) + 1, int(r.max()) + 1
        k = np.zeros((n_u, n_r))
        n = np.zeros((n_u, n_r))
        np.add.at(k, (u, r), g.get_column("n_violations").to_numpy())
        np.add.at(n, (u, r), g.get_column("n_valid").to_numpy())
        w = rng.multinomial(n_u, np.full(n_u, 1.0 / n_u), size=n_boot).astype(float)
        with np.errstate(invalid="ignore", divide="ignore"):
            reps = (w @ k) / (w @ n)
        finite = np.isfinite(reps)
        reps = np.where(finite, reps, np.nan)
        lo, hi = np.full(n_r, np.nan), np.full(n_r, np.nan)
        has = finite.any(axis=0)
        if has.any():
            lo[has], hi[has] = np.nanquantile(reps[:, has], q, axis=0)
        rounds = g.select("round", "_r").unique("_r").sort("_r")
        frame = rounds.with_columns(
            ci_low=pl.Series(lo[rounds.get_column("_r").to_numpy()]).fill_nan(None),
            ci_high=pl.Series(hi[rounds.get_column("_r").to_numpy()]).fill_nan(None),
        ).drop("_r")
        if keys:
            frame = frame.with_columns(
                pl.lit(g.item(0, c), dtype=g.schema[c]).alias(c) for c in keys
            )
        out.append(frame)
    return pl.concat(out).select(*keys, "round", "ci_low", "ci_high")


def mean_p_violate_by_round(decisions: Frame, by: By = (), eps: float = 1e-6) -> pl.DataFrame:
    """The noise-free tipping curve: mean p_violate per round, and the compliance margin.

    mean_p_violate_t = mean_i p_it; compliance_margin_t = mean_i log((1 - p_it) / p_it)
    with p clipped to [eps, 1 - eps]: the mean log-odds of complying, positive while
    agents lean to the rule and falling through 0 as they tip. Null where no p_violate
    was recorded (e.g. generate mode).

    Returns: by..., round, n_p, mean_p_violate, compliance_margin.
    """
    keys = group_keys(by)
    p = pl.col("p_violate").clip(eps, 1 - eps)
    return (
        with_run(decisions)
        .group_by(*keys, "round")
        .agg(
            n_p=pl.col("p_violate").count().cast(pl.Int64),
            mean_p_violate=pl.col("p_violate").mean(),
            compliance_margin=((1 - p) / p).log().mean(),
        )
        .sort(*keys, "round")
        .collect()
    )
