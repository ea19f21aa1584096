"""Metrics of alignment tipping, each a polars pipeline over a decisions frame.

Every function takes a decisions frame (lazy or eager; the columns of
`analysis.schema.DECISIONS`, plus `run_dir` and parameter columns from
`analysis.load.scan_decisions`) and returns a `polars.DataFrame`. `by` names the columns
to group by (any config column: `"env.threshold"`, `"policy.model"`, `"run_dir"` for
one curve per run, ...). A frame without `run_dir` is treated as one run.

Notation: round t, agent i, v_it = 1 if i violated in round t (null when invalid),
p_it = the model's probability of the violating label.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import polars as pl

from analysis.load import RUN

Frame = pl.LazyFrame | pl.DataFrame
By = str | Sequence[str] | None

UNITS = {
    "agent": [RUN, "agent"],
    "item": [RUN, "group"],
    "group": [RUN, "group"],
    "run": [RUN],
    "seed": [RUN],
}
"""Resampling units of the bootstrap: an agent or an item (environment instance) of one
run, or a whole run (a seed)."""


def _by(by: By) -> list[str]:
    if by is None:
        return []
    return [by] if isinstance(by, str) else list(by)


def _lazy(decisions: Frame) -> pl.LazyFrame:
    lf = decisions.lazy()
    names = lf.collect_schema().names()
    if RUN not in names:
        run = pl.col("run_id").fill_null("run") if "run_id" in names else pl.lit("run")
        lf = lf.with_columns(run.cast(pl.String).alias(RUN))
    return lf


def _z(ci: float) -> float:
    """Two-sided standard normal quantile for a central interval of mass `ci`."""
    from statistics import NormalDist

    return NormalDist().inv_cdf(0.5 + ci / 2)


def _safe_div(num: pl.Expr, den: pl.Expr) -> pl.Expr:
    return pl.when(den > 0).then(num / den).otherwise(None)


# --------------------------------------------------------------------------- rates


def violation_counts(decisions: Frame, by: By = (), unit: str | None = None) -> pl.LazyFrame:
    """Violations k and valid decisions n per (by, [unit], round): the input of every rate."""
    keys = _by(by) + (UNITS[unit] if unit else [])
    keys = list(dict.fromkeys(keys))
    return (
        _lazy(decisions)
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
    keys = _by(by)
    lf = _lazy(decisions)
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
        .with_columns(violation_rate=_safe_div(pl.col("n_violations"), pl.col("n_valid")))
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
    keys = _by(by)
    p = pl.col("p_violate").clip(eps, 1 - eps)
    return (
        _lazy(decisions)
        .group_by(*keys, "round")
        .agg(
            n_p=pl.col("p_violate").count().cast(pl.Int64),
            mean_p_violate=pl.col("p_violate").mean(),
            compliance_margin=((1 - p) / p).log().mean(),
        )
        .sort(*keys, "round")
        .collect()
    )


# --------------------------------------------------------------------------- tipping


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
    keys = _by(by)
    rates = (
        violation_counts(decisions, keys)
        .with_columns(rate=_safe_div(pl.col("n_violations"), pl.col("n_valid")))
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
    keys = list(dict.fromkeys([*_by(by), RUN, "agent"]))
    hit = pl.col("violated").fill_null(False) if on == "violated" else pl.col("p_violate") >= level
    return (
        _lazy(decisions)
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
    keys = _by(by)
    z = _z(ci)
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
    keys = _by(by)
    return (
        survival.lazy()
        .group_by(keys or pl.lit(0).alias("_all"), maintain_order=True)
        .agg(median_time_to_tip=pl.col("time").filter(pl.col("survival") <= 0.5).min())
        .select(*keys, "median_time_to_tip")
        .collect()
    )


# --------------------------------------------------------------------------- early warning


def early_warning_signals(
    decisions: Frame,
    by: By = RUN,
    window: int | None = None,
    bandwidth: int | None = None,
    level: float = 0.5,
    eps: float = 1e-6,
) -> pl.DataFrame:
    """Rolling variance and lag-1 autocorrelation of the detrended margin before tipping.

    The state variable is the compliance margin m_t (see `mean_p_violate_by_round`),
    kept for rounds before the group's tipping_round (all rounds if it never tips).
    trend_t = centered rolling mean of m over `bandwidth` rounds (default: `window`;
    0: the series mean, i.e. no detrending); residual r_t = m_t - trend_t.
    variance_t = sample variance of r over the trailing `window` rounds;
    autocorrelation_t = Pearson correlation of (r_{s-1}, r_s) over the trailing `window`
    pairs. Rising variance and autocorrelation (critical slowing down) warn of tipping;
    see `early_warning_trends`. Default window: half the longest pre-tipping series
    (at least 3).

    Returns: by..., round, compliance_margin, trend, residual, variance, autocorrelation,
    window, tipping_round.
    """
    keys = _by(by)
    part = keys or [pl.lit(0)]
    margin = mean_p_violate_by_round(decisions, keys, eps).filter(
        pl.col("compliance_margin").is_not_null()
    )
    tips = tipping_times(decisions, keys, level, penalty=None).select(*keys, "tipping_round")
    if keys:
        margin = margin.join(tips, on=keys, how="left", nulls_equal=True)
    else:
        margin = margin.with_columns(tipping_round=tips.get_column("tipping_round").first())
    pre = margin.filter(
        pl.col("tipping_round").is_null() | (pl.col("round") < pl.col("tipping_round"))
    ).sort(*keys, "round")
    if window is None:
        longest = pre.group_by(keys or pl.lit(0)).len().get_column("len").max() if len(pre) else 0
        window = max(3, int(longest or 0) // 2)
    bandwidth = window if bandwidth is None else bandwidth
    m = pl.col("compliance_margin")
    trend = (
        m.rolling_mean(bandwidth, center=True, min_samples=1).over(*part)
        if bandwidth > 0
        else m.mean().over(*part)
    )
    r = pl.col("residual")
    return (
        pre.lazy()
        .with_columns(trend=trend)
        .with_columns(residual=m - pl.col("trend"))
        .with_columns(
            variance=r.rolling_var(window, min_samples=window).over(*part),
            autocorrelation=pl.rolling_corr(r, r.shift(1), window_size=window)
            .over(*part)
            .fill_nan(None),
            window=pl.lit(window, dtype=pl.Int64),
        )
        .select(
            *keys,
            "round",
            "compliance_margin",
            "trend",
            "residual",
            "variance",
            "autocorrelation",
            "window",
            "tipping_round",
        )
        .collect()
    )


def kendall_tau(frame: Frame, x: str, y: str, by: By = ()) -> pl.DataFrame:
    """Kendall's tau-b between columns x and y per group, over rows where both are present.

    tau_b = (C - D) / sqrt((n0 - n_x)(n0 - n_y)): C/D concordant/discordant pairs,
    n0 = n(n-1)/2 pairs, n_x/n_y pairs tied in x/y. Null for fewer than 3 points.
    Returns: by..., n_points, tau.
    """
    keys = _by(by)
    pts = (
        frame.lazy()
        .select(*keys, pl.col(x).alias("_x"), pl.col(y).alias("_y"))
        .filter(pl.col("_x").is_not_null() & pl.col("_y").is_not_null())
        .filter(pl.col("_y").is_not_nan())
        .with_columns(_i=pl.int_range(pl.len()).over(*(keys or [pl.lit(0)])))
    )
    pairs = (
        pts.join(pts, on=keys, how="inner", suffix="_j", nulls_equal=True)
        if keys
        else pts.join(pts, how="cross", suffix="_j")
    ).filter(pl.col("_i") < pl.col("_i_j"))
    sx = (pl.col("_x_j") - pl.col("_x")).sign()
    sy = (pl.col("_y_j") - pl.col("_y")).sign()
    stats = pairs.group_by(keys or pl.lit(0).alias("_all")).agg(
        _s=(sx * sy).sum(),
        _n0=pl.len(),
        _tx=(sx == 0).sum(),
        _ty=(sy == 0).sum(),
    )
    counts = pts.group_by(keys or pl.lit(0).alias("_all")).agg(n_points=pl.len().cast(pl.Int64))
    on = keys or ["_all"]
    den = ((pl.col("_n0") - pl.col("_tx")) * (pl.col("_n0") - pl.col("_ty"))).cast(pl.Float64)
    return (
        counts.join(stats, on=on, how="left", nulls_equal=True)
        .with_columns(
            tau=pl.when((pl.col("n_points") >= 3) & (den > 0)).then(pl.col("_s") / den.sqrt())
        )
        .sort(on)
        .select(*keys, "n_points", "tau")
        .collect()
    )


def early_warning_trends(ews: pl.DataFrame, by: By = RUN) -> pl.DataFrame:
    """Kendall tau of each early-warning indicator against time (positive: rising).

    One row per group of `ews` (from `early_warning_signals` with the same `by`);
    taus are null where fewer than 3 indicator values exist.
    Returns: by..., n_points, tau_variance, tau_autocorrelation, tipping_round.
    """
    keys = _by(by)
    on = keys or ["_all"]
    ews = ews if keys else ews.with_columns(_all=pl.lit(0))
    base = ews.group_by(on, maintain_order=True).agg(pl.col("tipping_round").first())
    var = kendall_tau(ews, "round", "variance", on).rename({"tau": "tau_variance"})
    ac = kendall_tau(ews, "round", "autocorrelation", on).rename({"tau": "tau_autocorrelation"})
    return (
        base.join(var, on=on, how="left", nulls_equal=True)
        .join(ac.drop("n_points"), on=on, how="left", nulls_equal=True)
        .with_columns(pl.col("n_points").fill_null(0))
        .sort(on)
        .select(*keys, "n_points", "tau_variance", "tau_autocorrelation", "tipping_round")
    )


# --------------------------------------------------------------------------- diffusion


def _with_round(decisions: Frame, keep: list[str], step: int, name: str) -> pl.LazyFrame:
    """Every agent-round's `keep` columns and violated, and as `name` the same agent's
    violated in round t + step (null when the agent has no row for that round).

    (run, agent, round) is packed densely into one integer key and the rows sorted by it,
    so the row `step` places away is the same agent's round t + step exactly when its key
    is `step` more: a single-column sort, much cheaper than a shift within each agent's
    window. Only the key and the columns asked for travel through the sort.
    """
    lf = _lazy(decisions)
    run = pl.col(RUN).cast(pl.String)
    names, *span = (
        lf.select(
            run.unique().drop_nulls().sort().implode(),
            pl.col("agent").min().alias("a0"),
            pl.col("agent").max().alias("a1"),
            pl.col("round").min().alias("r0"),
            pl.col("round").max().alias("r1"),
        )
        .collect()
        .row(0)
    )
    a0, a1, r0, r1 = (v if v is not None else 0 for v in span)
    agents, rounds = a1 - a0 + 1, r1 - r0 + 3  # a spare round each side: no row is there
    if len(names) * agents * rounds >= 2**63:
        raise ValueError(f"too many (run, agent, round) combinations to key: {agents=} {rounds=}")
    codes = run.cast(pl.Enum(names)).to_physical()
    unit = codes.cast(pl.Int64) * agents + (pl.col("agent") - a0).cast(pl.Int64)
    key = (unit * rounds + (pl.col("round") - r0 + 1).cast(pl.Int64)).alias("_key")
    there = pl.col("_key").shift(-step) == pl.col("_key") + step
    payload = dict.fromkeys(c for c in keep if c != "violated")
    return (
        lf.select(*payload, "violated", key)
        .sort("_key")
        .with_columns(pl.when(there).then(pl.col("violated").shift(-step)).alias(name))
        .drop("_key")
    )


def exposure_response(
    decisions: Frame,
    by: By = (),
    exposure: str = "n_violating_neighbors",
    ci: float = 0.95,
) -> pl.DataFrame:
    """Probability that a complying agent violates next round, given its exposure.

    For every agent complying in round t (v_it = 0) and valid in t+1, m = its number
    of violating neighbours in round t (recorded on its round t+1 row, so each t+1 row
    is paired with the same agent's round t):
    switch_prob(m) = #{v_i,t+1 = 1} / #{at risk with exposure m}, with a Wilson
    score interval. Agents without neighbours (null exposure) are left out.

    Returns: by..., exposure, n_at_risk, n_switched, switch_prob, ci_low, ci_high.
    """
    keys = _by(by)
    z = _z(ci)
    n, k = pl.col("n_at_risk").cast(pl.Float64), pl.col("n_switched").cast(pl.Float64)
    phat = k / n
    center = (phat + z**2 / (2 * n)) / (1 + z**2 / n)
    half = z * (phat * (1 - phat) / n + z**2 / (4 * n**2)).sqrt() / (1 + z**2 / n)
    return (
        _with_round(decisions, [*keys, exposure], step=-1, name="violated_before")
        .filter(
            pl.col("violated_before").not_()  # complying in t; null (invalid, none) drops
            & pl.col("violated").is_not_null()
            & pl.col(exposure).is_not_null()
        )
        .group_by(*keys, pl.col(exposure).alias("exposure"))
        .agg(
            n_at_risk=pl.len().cast(pl.Int64),
            n_switched=pl.col("violated").cast(pl.Int64).sum(),
        )
        .with_columns(
            switch_prob=phat,
            ci_low=pl.min_horizontal(center - half, phat).clip(0, 1),
            ci_high=pl.max_horizontal(center + half, phat).clip(0, 1),
        )
        .sort(*keys, "exposure")
        .collect()
    )


def reproduction_number(decisions: Frame, by: By = ()) -> pl.DataFrame:
    """Effective reproduction number of violation, per round.

    R_t = N_t / V_t: V_t = agents violating in round t, N_t = agents complying in round t
    that violate in round t+1 (new violators). Like the epidemic R, R_t > 1 means the
    violation spreads; it counts every new violator, whatever made it switch (peers or
    its own learning). Null when V_t = 0; rounds without a next round are left out.

    Returns: by..., round, n_violators, n_complying, n_new_violators, r_effective.
    """
    keys = _by(by)
    v, nxt = pl.col("violated"), pl.col("violated_next")
    return (
        _with_round(decisions, [*keys, "round"], step=1, name="violated_next")
        .group_by(*keys, "round")
        .agg(
            n_violators=v.cast(pl.Int64).sum(),
            n_complying=v.not_().cast(pl.Int64).sum(),
            n_new_violators=(v.not_() & nxt).cast(pl.Int64).sum(),
            _n_next=nxt.count(),
        )
        .filter(pl.col("_n_next") > 0)
        .with_columns(r_effective=_safe_div(pl.col("n_new_violators"), pl.col("n_violators")))
        .drop("_n_next")
        .sort(*keys, "round")
        .collect()
    )


def cascade_size(decisions: Frame, by: By = RUN) -> pl.DataFrame:
    """Final size of the violation cascade.

    cascade_size = (agents that violated at least once) / agents; n_initial_violators
    violated in their first round; final_violation_rate = mean v over each agent's last
    round. Default `by`: one row per run.

    Returns: by..., n_agents, n_initial_violators, n_ever_violated, cascade_size,
    final_violation_rate.
    """
    keys = _by(by)
    per_agent = (
        _lazy(decisions)
        .sort("round")
        .group_by(*dict.fromkeys([*keys, RUN, "agent"]))
        .agg(
            ever=pl.col("violated").fill_null(False).any(),
            initial=pl.col("violated").first(),
            final=pl.col("violated").last(),
        )
    )
    return (
        per_agent.group_by(keys or pl.lit(0).alias("_all"))
        .agg(
            n_agents=pl.len().cast(pl.Int64),
            n_initial_violators=pl.col("initial").fill_null(False).cast(pl.Int64).sum(),
            n_ever_violated=pl.col("ever").cast(pl.Int64).sum(),
            final_violation_rate=pl.col("final").mean(),
        )
        .with_columns(cascade_size=pl.col("n_ever_violated") / pl.col("n_agents"))
        .select(
            *keys,
            "n_agents",
            "n_initial_violators",
            "n_ever_violated",
            "cascade_size",
            "final_violation_rate",
        )
        .sort(keys or "n_agents")
        .collect()
    )


# --------------------------------------------------------------------------- sweeps


def phase_diagram(
    decisions: Frame, x: str, y: str | None = None, last_rounds: int = 1
) -> pl.DataFrame:
    """Final violation rate over one or two swept parameters.

    Per run, final_rate = violations / valid decisions over its last `last_rounds`
    recorded rounds; per (x, y) cell, final_violation_rate = mean of final_rate over
    runs (seeds), with its standard deviation.

    Returns: x, [y,] n_runs, final_violation_rate, final_violation_rate_sd.
    """
    cell = [x] if y is None else [x, y]
    return (
        _lazy(decisions)
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
