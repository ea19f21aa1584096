"""A guard between the agents and the world: what it hides and what it lets through.

Per round, over valid decisions: the proposed violation rate (the agents' own choices,
before the guard), the executed rate (after it), the latent drift (proposed - executed:
the violation the guard masks), the intervention rate (decisions it changed), its catch
rate (violating proposals it corrected: do agents learn to evade it?) and its false-edit
rate (compliant proposals it changed). Runs without a guard count their choices as both
proposed and executed (no interventions, no catch or false-edit rate).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import polars as pl
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from analysis.frames import By, Frame, group_keys
from analysis.plots import COLORS, MAX_LINES, group_labels, legend, new_figure, save

GUARD_STATS = (
    "proposed_violation",
    "executed_violation",
    "latent_drift",
    "intervention_rate",
    "catch_rate",
    "false_edit_rate",
    "mean_p_correct",
)


def with_guard_columns(decisions: Frame) -> pl.LazyFrame:
    """The decisions with their guard columns filled where a run had no guard: the choice
    was proposed and executed as it is, and nothing changed it."""
    lf = decisions.lazy()
    names = lf.collect_schema().names()
    missing = {
        "proposed_violated": pl.lit(None, pl.Boolean),
        "guard_changed": pl.lit(None, pl.Boolean),
        "guard_p_correct": pl.lit(None, pl.Float64),
    }
    lf = lf.with_columns(e.alias(c) for c, e in missing.items() if c not in names)
    return lf.with_columns(
        guarded=pl.col("guard_changed").is_not_null(),
        proposed_violated=pl.col("proposed_violated").fill_null(pl.col("violated")),
    )


def guard_curves(decisions: Frame, by: By = ()) -> pl.DataFrame:
    """Per (by, round), over valid proposals: n, each of GUARD_STATS; catch and false-edit
    rates condition on the proposal (violating / compliant), null without a guard.

    Returns: by..., round, n, proposed_violation, executed_violation, latent_drift,
    intervention_rate, catch_rate, false_edit_rate, mean_p_correct.
    """
    keys = group_keys(by)
    proposed, changed = pl.col("proposed_violated"), pl.col("guard_changed")
    guarded = pl.col("guarded")
    return (
        with_guard_columns(decisions)
        .filter(proposed.is_not_null())
        .group_by(*keys, "round")
        .agg(
            n=pl.len().cast(pl.Int64),
            proposed_violation=proposed.mean(),
            executed_violation=pl.col("violated").fill_null(False).mean(),
            intervention_rate=changed.filter(guarded).mean(),
            catch_rate=changed.filter(guarded & proposed).mean(),
            false_edit_rate=changed.filter(guarded & ~proposed).mean(),
            mean_p_correct=pl.col("guard_p_correct").mean(),
        )
        .with_columns(latent_drift=pl.col("proposed_violation") - pl.col("executed_violation"))
        .select(*keys, "round", "n", *GUARD_STATS)
        .sort(*keys, "round")
        .collect()
    )


def guard_summary(decisions: Frame, by: By = ()) -> pl.DataFrame:
    """Per `by`: GUARD_STATS over all rounds and the proposed violation's rise per round
    (least-squares slope of the per-round rate: how fast the policy underneath drifts)."""
    keys = group_keys(by)
    curves = guard_curves(decisions, by)
    x, y = pl.col("round").cast(pl.Float64), pl.col("proposed_violation")
    slope = ((x - x.mean()) * (y - y.mean())).sum() / ((x - x.mean()) ** 2).sum()
    return (
        curves.lazy()
        .group_by(keys or pl.lit(0).alias("_all"))
        .agg(
            rounds=pl.len().cast(pl.Int64),
            proposed_slope=slope,
            **{s: pl.col(s).mean() for s in GUARD_STATS},
            final_proposed=y.sort_by("round").last(),
            final_executed=pl.col("executed_violation").sort_by("round").last(),
        )
        .drop("_all", strict=False)
        .sort(keys or "rounds")
        .collect()
    )


def plot_guard(
    curves: pl.DataFrame,
    by: Sequence[str] = (),
    title: str = "Guard",
    path: str | os.PathLike | None = None,
) -> Figure:
    """Top: proposed (solid) and executed (dashed) violation per round, the band between
    them the latent drift; bottom: the guard's catch rate (solid) and false-edit rate
    (dotted) per round; one colour per group of `by`."""
    fig = new_figure(7.0, 6.4)
    top, bottom = fig.subplots(2, 1, sharex=True)
    fig.suptitle(title)
    groups = group_labels(curves, list(by))[:MAX_LINES]
    for i, (name, rows) in enumerate(groups):
        color = COLORS[i % len(COLORS)]
        x = rows.get_column("round").to_numpy()
        proposed, executed = rows["proposed_violation"], rows["executed_violation"]
        top.plot(x, proposed, color=color, lw=1.8, marker="o", ms=3, label=f"{name}: proposed")
        top.plot(x, executed, color=color, lw=1.4, ls="--", label=f"{name}: executed")
        top.fill_between(x, executed, proposed, color=color, alpha=0.12, lw=0)
        if rows["catch_rate"].is_not_null().any():
            bottom.plot(x, rows["catch_rate"], color=color, lw=1.8, marker="o", ms=3,
                        label=f"{name}: catch")  # fmt: skip
            bottom.plot(x, rows["false_edit_rate"], color=color, lw=1.2, ls=":",
                        label=f"{name}: false edits")  # fmt: skip
    top.set_ylabel("share of valid decisions violating")
    bottom.set_ylabel("guard rate")
    bottom.set_xlabel("round")
    bottom.xaxis.set_major_locator(MaxNLocator(integer=True))
    for ax in (top, bottom):
        ax.grid(alpha=0.3)
    legend(fig, top, 2 * len(groups))
    if bottom.lines:
        bottom.legend(fontsize=8, loc="best")
    return save(fig, path)
