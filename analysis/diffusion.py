"""How violation spreads between agents: exposure-response, reproduction number, cascades.

Notation: round t, agent i, v_it = 1 if i violated in round t (null when invalid),
p_it = the model's probability of the violating label.
"""

from __future__ import annotations

import polars as pl

from analysis.frames import By, Frame, group_keys, normal_quantile, safe_div, with_run
from analysis.load import RUN


def _with_round(decisions: Frame, keep: list[str], step: int, name: str) -> pl.LazyFrame:
    """Every agent-round's `keep` columns and violated, and as `name` the same agent's
    violated in round t + step (null when the agent has no row for that round).

    (run, agent, round) is packed densely into one integer key and the rows sorted by it,
    so the row `step` places away is the same agent's round t + step exactly when its key
    is `step` more: a single-column sort, much cheaper than a shift within each agent's
    window. Only the key and the columns asked for travel through the sort.
    """
    lf = with_run(decisions)
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
    bins: int | None = None,
) -> pl.DataFrame:
    """Probability that a complying agent violates next round, given its exposure.

    For every agent complying in round t (v_it = 0) and valid in t+1, m = its exposure
    in round t (recorded on its round t+1 row, so each t+1 row is paired with the same
    agent's round t): the count of violating neighbours, or with
    exposure="share_violating_neighbors" and `bins` = B their share s, binned to the
    lower edge floor(s B) / B (s = 1 joins the last bin). switch_prob(m) =
    #{v_i,t+1 = 1} / #{at risk with exposure m}, with a Wilson score interval. Agents
    without neighbours (null exposure) are left out.

    Returns: by..., exposure, n_at_risk, n_switched, switch_prob, ci_low, ci_high.
    """
    keys = group_keys(by)
    z = normal_quantile(ci)
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
        .group_by(*keys, _binned(pl.col(exposure), bins).alias("exposure"))
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


def _binned(x: pl.Expr, bins: int | None) -> pl.Expr:
    """x itself, or the lower edge of its bin of width 1 / bins (x in [0, 1])."""
    if not bins:
        return x
    return (x * bins).floor().clip(0, bins - 1) / bins


def reproduction_number(decisions: Frame, by: By = ()) -> pl.DataFrame:
    """Effective reproduction number of violation, per round.

    R_t = N_t / V_t: V_t = agents violating in round t, N_t = agents complying in round t
    that violate in round t+1 (new violators). Like the epidemic R, R_t > 1 means the
    violation spreads; it counts every new violator, whatever made it switch (peers or
    its own learning). Null when V_t = 0; rounds without a next round are left out.

    Returns: by..., round, n_violators, n_complying, n_new_violators, r_effective.
    """
    keys = group_keys(by)
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
        .with_columns(r_effective=safe_div(pl.col("n_new_violators"), pl.col("n_violators")))
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
    keys = group_keys(by)
    per_agent = (
        with_run(decisions)
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
