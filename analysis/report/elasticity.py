"""The elasticity section of a report (experiment=elasticity's elasticity.parquet): the
trajectories per dose, the two-phase fit, rebound cost against dose, resistance and
hysteresis, each with a bootstrap interval over seeds; and the drift runs' distances to
the base and the aligned model (references.parquet)."""

from __future__ import annotations

import json

import numpy as np
import polars as pl

from analysis.elasticity import by_dose, fine_tuning_summary, rebound_speeds
from analysis.plots import COLORS, legend, new_figure, save
from analysis.report.page import Inputs, Page, ci

FILE = "elasticity.parquet"
SETTINGS = "elasticity.json"
PHASES = ("align", "inverse", "realign", "retip")


def elasticity(page: Page, inputs: Inputs) -> None:
    """Drawn where the experiment wrote elasticity.parquet."""
    path = inputs.root / FILE
    if not path.is_file():
        return
    steps = pl.read_parquet(path)
    settings = inputs.root / SETTINGS
    epsilon = json.loads(settings.read_text())["epsilon"] if settings.is_file() else 0.01
    summary = fine_tuning_summary(steps, epsilon)
    table = by_dose(summary, n_boot=inputs.n_boot, seed=inputs.seed)
    plot_trajectories(steps, page.out / "elasticity_trajectories.png")
    page.figure(
        "elasticity_trajectories.png",
        "Elasticity: four fine-tunings in a row, per dose",
        "Mean P(violate) on the held-out probes (top), KL to the pre-trained base (middle) "
        "and to the aligned model (bottom) after every optimiser step of: alignment (SFT "
        "toward the compliant answer, `dose` prompts), inverse alignment (SFT toward the "
        "violating answer), re-alignment (the same recipe and dose) and re-tipping; dotted "
        "lines separate the phases; line: mean over seeds, band: min-max.",
    )
    plot_measures(table, page.out / "elasticity_measures.png")
    page.figure(
        "elasticity_measures.png",
        "Rebound cost, resistance and hysteresis against dose",
        "Per alignment dose, mean over seeds with a 95% bootstrap interval: steps of the "
        "inverse fine-tuning until the mean P(violate) is back at the base's (rebound "
        "cost); the two-phase fit's rates before and after its breakpoint; the resistance "
        "ratio (inverse / forward training loss over equal steps) and the undo ratio "
        "(steps back to the base's P(violate) / steps the alignment took); below 1: the "
        "way back costs less; hysteresis (re-tip / first tip steps; below 1: a re-aligned model "
        "tips faster).",
    )
    drift = drift_references(inputs.root)
    if drift.height:
        plot_drift(drift, page.out / "elasticity_drift.png")
        page.figure(
            "elasticity_drift.png",
            "Reward-driven drift of each aligned model (evolution=pg)",
            "Each aligned model in the simulator under temptation, its shared adapter "
            "updated every round: mean P(violate) on the probes, KL to the pre-trained base "
            "and to the aligned model after each update (references.parquet of the runs "
            "under drift/); line: mean over seeds, per dose.",
        )
    page.table("elasticity_by_dose", table, "Elasticity per dose (mean over seeds, 95% CI)")
    page.table("elasticity_runs", summary, "Elasticity per seed and dose", show=False)
    speeds = rebound_speeds(summary)
    if speeds.height:
        x = speeds["speed"].to_numpy()
        boot = x[np.random.default_rng(inputs.seed).integers(0, len(x), (inputs.n_boot, len(x)))]
        lo, hi = np.quantile(boot.mean(1), [0.025, 0.975])
        page.facts.append(("rebound speed (tip steps per prompt of dose)", ci(x.mean(), lo, hi)))
    resistance = summary["resistance"].drop_nulls()
    if resistance.len():
        page.facts.append(("resistance ratio (all doses)", f"{resistance.mean():.3f}"))


def drift_references(root) -> pl.DataFrame:
    """The drift runs' rows after each update, with the dose their directory names."""
    files = sorted((root / "drift").glob("dose*-seed*/references.parquet"))
    frames = [
        pl.read_parquet(f).filter(pl.col("stage") == "update")
        .with_columns(dose=pl.lit(int(f.parent.name[4:].split("-")[0])))
        for f in files
    ]  # fmt: skip
    return pl.concat(frames) if frames else pl.DataFrame()


def plot_drift(drift: pl.DataFrame, path) -> None:
    columns = ("p_violate", "kl_base", "kl_aligned")
    curves = drift.group_by("dose", "round").agg(pl.col(c).mean() for c in columns).sort("round")
    fig = new_figure(8.0, 6.0)
    axes = fig.subplots(3, 1, sharex=True)
    doses = sorted(curves["dose"].unique())
    for i, dose in enumerate(doses):
        rows = curves.filter(pl.col("dose") == dose)
        for ax, col in zip(axes, columns, strict=True):
            ax.plot(rows["round"], rows[col], color=COLORS[i % len(COLORS)], marker="o",
                    ms=3, label=f"dose {dose}" if col == "p_violate" else None)  # fmt: skip
    finish_panels(fig, axes, "round after which the update ran", len(doses), path)


def plot_trajectories(steps: pl.DataFrame, path) -> None:
    """Per dose one colour; the phases laid end to end on one axis of steps."""
    fig = new_figure(8.0, 8.0)
    axes = fig.subplots(3, 1, sharex=True)
    doses = sorted(steps["dose"].unique())
    for i, dose in enumerate(doses):
        x0, color = 0, COLORS[i % len(COLORS)]
        for phase in PHASES:
            rows = (
                steps.filter((pl.col("dose") == dose) & (pl.col("phase") == phase))
                .group_by("step")
                .agg(
                    *(pl.col(c).mean().alias(c) for c in ("p_violate", "kl_base", "kl_aligned")),
                    *(pl.col(c).min().alias(f"{c}_min") for c in ("p_violate", "kl_base")),
                    *(pl.col(c).max().alias(f"{c}_max") for c in ("p_violate", "kl_base")),
                )
                .sort("step")
            )
            if rows.is_empty():
                continue
            x = x0 + rows["step"].to_numpy()
            for ax, col in zip(axes, ("p_violate", "kl_base", "kl_aligned"), strict=True):
                label = f"dose {dose}" if phase == "align" and col == "p_violate" else None
                ax.plot(x, rows[col], color=color, lw=1.5, label=label)
                if f"{col}_min" in rows.columns:
                    ax.fill_between(x, rows[f"{col}_min"], rows[f"{col}_max"], color=color,
                                    alpha=0.12, lw=0)  # fmt: skip
            x0 = x[-1]
            if i == len(doses) - 1:
                for ax in axes:
                    ax.axvline(x0, color="0.6", ls=":", lw=0.8)
    finish_panels(fig, axes, "optimiser steps: align | inverse | realign | retip", len(doses), path)


def finish_panels(fig, axes, xlabel: str, n_doses: int, path) -> None:
    """The three stacked panels (P(violate), KL to base, KL to aligned): labels, grid, the
    doses' legend; saved."""
    for ax, label in zip(axes, ("P(violate)", "KL to base", "KL to aligned"), strict=True):
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[2].set_xlabel(xlabel)
    legend(fig, axes[0], n_doses)
    save(fig, path)


def plot_measures(table: pl.DataFrame, path) -> None:
    panels = [
        ("tip_steps", "steps to tip back"),
        ("rate_before", "two-phase rates"),
        ("resistance", "inverse / forward: loss, steps"),
        ("hysteresis_tip", "hysteresis (re-tip / tip)"),
    ]
    fig = new_figure(8.0, 6.0)
    axes = fig.subplots(2, 2).ravel()
    for ax, (measure, label) in zip(axes, panels, strict=True):
        shown = {"rate_before": [measure, "rate_after"], "resistance": [measure, "undo_ratio"]}
        shown = shown.get(measure, [measure])
        for j, m in enumerate(shown):
            rows = table.filter(pl.col("measure") == m).drop_nulls("mean").sort("dose")
            if rows.is_empty():
                continue
            y, lo, hi = (rows[c].to_numpy() for c in ("mean", "ci_low", "ci_high"))
            ax.errorbar(rows["dose"], y, yerr=[y - lo, hi - y], color=COLORS[j], marker="o",
                        capsize=3, label=m)  # fmt: skip
        if measure in ("resistance", "hysteresis_tip"):
            ax.axhline(1.0, color="0.5", ls="--", lw=0.8)
        ax.set_xscale("log", base=2)
        ax.set_title(label, fontsize=9)
        ax.set_xlabel("dose (prompts)")
        ax.grid(alpha=0.3)
        if len(shown) > 1:
            ax.legend(fontsize=7)
    save(fig, path)
