"""Early-warning signals of tipping: critical slowing down of the compliance margin.

Notation: round t, agent i, v_it = 1 if i violated in round t (null when invalid),
p_it = the model's probability of the violating label.
"""

from __future__ import annotations

import polars as pl

from analysis.frames import By, Frame, group_keys
from analysis.load import RUN
from analysis.rates import mean_p_violate_by_round
from analysis.tipping import tipping_times


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
    keys = group_keys(by)
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
    keys = group_keys(by)
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
    keys = group_keys(by)
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
