"""Condition columns read beside the records: a whole run's (`method`, from its config),
and the scenario's for runs recorded before the recorder wrote them.

Such runs have only the scenario id (`price_ring/k2/1.2-1-0.8`, `loan_officer/1.7-2.4`)
and the resolved config in manifest.json; both say most of what `envs.base.Conditions`
records now. Recorded values always win: this fills only what is null.
"""

from __future__ import annotations

import polars as pl

from envs.records import CONDITIONS

NUM = r"(-?[0-9.]+(?:e[-+]?[0-9]+)?)"
# name/k{k}/{high}-{normal}-{low}, or name/{item}/n{n}/k{k}/... for ATP's instantiated games
GAME_ID = rf"^([^/]+)/(?:[0-9]+/n([0-9]+)/)?k([0-9]+)/{NUM}-{NUM}-{NUM}$"
ITEM_ID = rf"^([^/]+)/{NUM}-{NUM}$"  # name/{comply}-{violate}


def method_of(config: dict) -> str:
    """The defences a run's config puts in force, as one label: the policy's alignment
    (the organism's `backend.align`: aligned by its build, unaligned, sft, dpo, grpo; for
    other backends the backend's name), then the guard and where it acts, e.g.
    `aligned + calibrated guard at execution (counterfactual)`."""
    backend = config.get("backend") or {}
    if backend.get("name") == "organism":
        align = backend.get("align")
        method = {None: "aligned", "none": "unaligned"}.get(align, align)
    else:
        method = str(backend.get("name", "unknown"))
    guard = config.get("guard") or {}
    if guard.get("name", "none") != "none":
        where = f"{guard['name']} guard at {guard.get('position')}"
        method += f" + {where} ({guard.get('feedback')})"
    return method


def backfilled(decisions: pl.LazyFrame, config: dict) -> pl.LazyFrame:
    """`decisions` with the run's `method` (`method_of`) and null condition columns filled
    from the scenario id and the config.

    config: the run's resolved config (manifest.json's "config"; {} when unknown).
    """
    env = config.get("env") or {}
    threshold = pl.col("paradigm") == "threshold"
    roleplay = pl.col("paradigm") == "roleplay"

    def game(i: int) -> pl.Expr:
        return pl.when(threshold).then(pl.col("scenario").str.extract(GAME_ID, i))

    def item(i: int) -> pl.Expr:
        return pl.when(roleplay).then(pl.col("scenario").str.extract(ITEM_ID, i))

    comply, violate = item(2).cast(pl.Float64), item(3).cast(pl.Float64)
    parsed = {
        "source": pl.lit(env.get("source"), pl.String),
        "family": pl.coalesce(game(1), item(1)),
        "role": item(1),
        "game": game(1),
        "threshold": game(3),
        "group_size": pl.when(threshold).then(
            pl.coalesce(game(2).cast(pl.Int32), pl.lit(env.get("group_size"), pl.Int32))
        ),
        "payoff_comply": comply,
        "payoff_violate": violate,
        "payoff_ratio": pl.when(comply != 0).then(violate / comply),
        "payoff_high": game(4),
        "payoff_normal": game(5),
        "payoff_low": game(6),
        "schedule": pl.when(roleplay).then(pl.lit(env.get("schedule"), pl.String)),
    }
    return decisions.with_columns(
        *(
            pl.coalesce(pl.col(name), expr.cast(CONDITIONS[name])).alias(name)
            for name, expr in parsed.items()
        ),
        method=pl.lit(method_of(config), pl.String),
    )
