"""When groups and agents tip: threshold crossings, PELT change points, Kaplan-Meier survival.

Notation: round t, agent i, v_it = 1 if i violated in round t (null when invalid),
p_it = the model's probability of the violating label.
"""

from __future__ import annotations

import math

import numpy as np
import polars as pl

from analysis.frames import By, Frame, group_keys, normal_quantile, safe_div, with_run
from analysis.load import RUN
from analysis.rates import violation_counts


def tipping_times(
    decisions: Frame,
    by: By = RUN,
    level: float = 0.5,
    penalty: float | None = None,
) -> pl.DataFrame:
    """When each group's violation rate tips: first crossing of `level`, and a change point.

    tipping_round = min{t : rate_t >= level} (null when never: the group is censored at
    last_round, the last round observed). change_point_round is the first round of the
    new regime at the PELT change point (ruptures, l2 cost) with the largest shift in
    segment mean, null if PELT finds none (see `change_point_index` for the penalty).
    Default `by` is one row per run.

    Returns: by..., first_round, last_round, n_rounds, tipping_round, tipped,
    change_point_round, n_change_points.
    """
    keys = group_keys(by)
    rates = (
        violation_counts(decisions, keys)
        .with_columns(rate=safe_div(pl.col("n_violations"), pl.col("n_valid")))
        .sort(*keys, "round")
        .group_by(keys or pl.lit(0).alias("_all"), maintain_order=True)
        .agg(
            first_round=pl.col("round").min(),
            last_round=pl.col("round").max(),
            n_rounds=pl.len().cast(pl.Int64),
            tipping_round=pl.col("round").filter(pl.col("rate") >= level).min(),
            _rounds=pl.col("round").filter(pl.col("rate").is_not_null()),
            _rates=pl.col("rate").drop_nulls(),
        )
        .with_columns(tipped=pl.col("tipping_round").is_not_null())
        .collect()
    )
    cps, ncp = [], []
    for rounds, values in zip(rates.get_column("_rounds"), rates.get_column("_rates"), strict=True):
        breaks = change_points(np.asarray(values, dtype=float), penalty)
        idx = change_point_index(np.asarray(values, dtype=float), penalty, breaks=breaks)
        cps.append(None if idx is None else int(rounds[idx]))
        ncp.append(len(breaks))
    return rates.with_columns(
        change_point_round=pl.Series(cps, dtype=rates.schema["last_round"]),
        n_change_points=pl.Series(ncp, dtype=pl.Int64),
    ).select(
        *keys,
        "first_round",
        "last_round",
        "n_rounds",
        "tipping_round",
        "tipped",
        "change_point_round",
        "n_change_points",
    )


def change_points(values: np.ndarray, penalty: float | None = None) -> list[int]:
    """Indices where a new regime starts in `values`: PELT (ruptures), l2 cost, min_size 2.

    Default penalty: 2 s^2 log n, with s^2 = mean((x_{t+1} - x_t)^2) / 2 the noise
    variance estimated from first differences (a BIC-like penalty per change; a single
    step in a noiseless series is still found). Series shorter than 4 or constant
    have no change point.
    """
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    n = x.size
    if n < 4 or np.ptp(x) == 0:
        return []
    if penalty is None:
        s2 = float(np.mean(np.diff(x) ** 2) / 2)
        penalty = 2 * s2 * math.log(n)
    import ruptures as rpt

    # KernelCPD with the linear kernel runs PELT on the l2 cost in C: the same breaks as
    # rpt.Pelt(model="l2", min_size=2, jump=1), about 1000x faster on long series.
    ends = rpt.KernelCPD(kernel="linear", min_size=2).fit(x.reshape(-1, 1)).predict(pen=penalty)
    return [int(e) for e in ends[:-1]]


def change_point_index(
    values: np.ndarray, penalty: float | None = None, breaks: list[int] | None = None
) -> int | None:
    """The change point (index of the new regime's first value) with the largest mean shift.

    Among the PELT breaks of `change_points`, the one where |mean(after) - mean(before)|
    of the adjacent segments is largest; None without a break.
    """
    x = np.asarray(values, dtype=float)
    breaks = change_points(x, penalty) if breaks is None else breaks
    if not breaks:
        return None
    edges = [0, *breaks, x.size]
    means = [x[a:b].mean() for a, b in zip(edges[:-1], edges[1:], strict=True)]
    shifts = np.abs(np.diff(means))
    return breaks[int(np.argmax(shifts))]


def agent_tipping_times(
    decisions: Frame, by: By = (), level: float = 0.5, on: str = "violated"
) -> pl.DataFrame:
    """When each agent of each run tips: its first violation (or first p_violate >= level).

    tipping_round_i = min{t : v_it = 1} with on="violated", or min{t : p_it >= level}
    with on="p_violate"; null when never (censored at the agent's last_round).
    Feed to `survival_curve` for time-to-tip across agents.

    Returns: by..., run_dir, agent, first_round, last_round, tipping_round, tipped.
    """
    if on not in ("violated", "p_violate"):
        raise ValueError(f"on must be 'violated' or 'p_violate', not {on!r}")
    keys = list(dict.fromkeys([*group_keys(by), RUN, "agent"]))
    hit = pl.col("violated").fill_null(False) if on == "violated" else pl.col("p_violate") >= level
    return (
        with_run(decisions)
        .group_by(keys)
        .agg(
            first_round=pl.col("round").min(),
            last_round=pl.col("round").max(),
            tipping_round=pl.when(hit).then(pl.col("round")).min(),  # when: group-by fast path
        )
        .with_columns(tipped=pl.col("tipping_round").is_not_null())
        .sort(keys)
        .collect()
    )


def survival_curve(
    times: Frame,
    by: By = (),
    time: str = "tipping_round",
    censor: str = "last_round",
    ci: float = 0.95,
) -> pl.DataFrame:
    """Kaplan-Meier estimate of the probability of not having tipped by round t.

    Each row of `times` (from `tipping_times` or `agent_tipping_times`) is a unit that
    tipped at `time`, or, when `time` is null, was censored after `censor` (observed
    through that round without tipping). At each distinct duration t_j:
    S(t_j) = prod_{t_i <= t_j} (1 - d_i / n_i), d_i = tips at t_i, n_i = units with
    duration >= t_i (censored units are at risk at their censoring round). Greenwood:
    Var S = S^2 sum d_i / (n_i (n_i - d_i)); ci_low/ci_high = S -/+ z sqrt(Var), clipped.

    Returns: by..., time, n_at_risk, n_events, n_censored, survival, ci_low, ci_high.
    """
    keys = group_keys(by)
    z = normal_quantile(ci)
    part = keys or [pl.lit(0)]
    n_risk = pl.col("_n").sum().over(*part) - pl.col("_n").cum_sum().over(*part) + pl.col("_n")
    term = pl.when(pl.col("n_at_risk") > pl.col("n_events")).then(
        pl.col("n_events") / (pl.col("n_at_risk") * (pl.col("n_at_risk") - pl.col("n_events")))
    )
    se = pl.col("survival") * pl.col("_greenwood").sqrt()
    return (
        times.lazy()
        .with_columns(
            time=pl.coalesce(pl.col(time), pl.col(censor)),
            _event=pl.col(time).is_not_null(),
        )
        .filter(pl.col("time").is_not_null())
        .group_by(*keys, "time")
        .agg(
            n_events=pl.col("_event").sum().cast(pl.Int64),
            n_censored=(~pl.col("_event")).sum().cast(pl.Int64),
            _n=pl.len().cast(pl.Int64),
        )
        .sort(*keys, "time")
        .with_columns(n_at_risk=n_risk)
        .with_columns(
            survival=(1 - pl.col("n_events") / pl.col("n_at_risk")).cum_prod().over(*part),
            _greenwood=term.fill_null(0.0).cum_sum().over(*part),
        )
        .with_columns(
            ci_low=(pl.col("survival") - z * se).clip(0, 1),
            ci_high=(pl.col("survival") + z * se).clip(0, 1),
        )
        .select(
            *keys, "time", "n_at_risk", "n_events", "n_censored", "survival", "ci_low", "ci_high"
        )
        .collect()
    )


def median_time_to_tip(survival: pl.DataFrame, by: By = ()) -> pl.DataFrame:
    """Median time to tip: the first time with S(t) <= 0.5 (null when S stays above 0.5)."""
    keys = group_keys(by)
    return (
        survival.lazy()
        .group_by(keys or pl.lit(0).alias("_all"), maintain_order=True)
        .agg(median_time_to_tip=pl.col("time").filter(pl.col("survival") <= 0.5).min())
        .select(*keys, "median_time_to_tip")
        .collect()
    )
