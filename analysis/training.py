"""Weight updates over a run: what each LoRA update optimised and how far it moved.

One row of `updates.parquet` per update and owner (agent, group or population) after
round t: loss (the objective's training loss), kl (mean KL divergence of the updated
policy to its reference on the update's examples) and mean_reward (the mean reward of
the examples it learned from).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import polars as pl
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from analysis.frames import By, Frame, group_keys
from analysis.plots import COLORS, MAX_LINES, group_labels, legend, new_figure, save


def update_curves(updates: Frame, by: By = ()) -> pl.DataFrame:
    """Per (by, round): n_updates and, over owners (and runs), the mean, min and max of
    loss, kl and mean_reward: mean_x = sum_o x_o / n_updates.

    Returns: by..., round, n_updates, {loss,kl,mean_reward}{,_min,_max}.
    """
    keys = group_keys(by)
    stats = ("loss", "kl", "mean_reward")
    return (
        updates.lazy()
        .group_by(*keys, "round")
        .agg(
            n_updates=pl.len().cast(pl.Int64),
            **{s: pl.col(s).mean() for s in stats},
            **{f"{s}_min": pl.col(s).min() for s in stats},
            **{f"{s}_max": pl.col(s).max() for s in stats},
        )
        .sort(*keys, "round")
        .collect()
    )


TRAINING_PANELS = (("loss", "loss"), ("kl", "KL to reference"), ("mean_reward", "mean reward"))


def plot_training(
    curves: pl.DataFrame,
    by: Sequence[str] = (),
    owners: pl.DataFrame | None = None,
    baseline: pl.DataFrame | None = None,
    title: str = "Weight updates",
    path: str | os.PathLike | None = None,
) -> Figure:
    """Loss, KL and the learned-from reward per update round (mean over owners, min-max
    band), one colour per group of `by`; thin lines: each owner of `owners` (the rows of
    updates.parquet) when given; dashed on the reward panel: `baseline` (round,
    mean_reward), the in-context runs' reward per round."""
    fig = new_figure(7.0, 7.0)
    axes = fig.subplots(3, 1, sharex=True)
    fig.suptitle(title)
    groups = group_labels(curves, list(by))[:MAX_LINES]
    for ax, (stat, label) in zip(axes, TRAINING_PANELS, strict=True):
        if owners is not None:
            for _, rows in owners.sort("round").group_by("owner", maintain_order=True):
                ax.plot(rows["round"], rows[stat], color="0.75", lw=0.8, marker=".", ms=3)
        for i, (name, rows) in enumerate(groups):
            color = COLORS[i % len(COLORS)]
            x = rows.get_column("round").to_numpy()
            ax.plot(x, rows[stat], color=color, lw=1.8, marker="o", ms=3,
                    label="mean over owners" if name == "all" else name)  # fmt: skip
            ax.fill_between(x, rows[f"{stat}_min"], rows[f"{stat}_max"], color=color,
                            alpha=0.15, lw=0)  # fmt: skip
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    if baseline is not None and baseline.height:
        axes[2].plot(baseline["round"], baseline["mean_reward"], color="k", ls="--", lw=1.2,
                     label="in-context runs (no updates)")  # fmt: skip
    axes[2].set_xlabel("round after which the update ran")
    axes[2].xaxis.set_major_locator(MaxNLocator(integer=True))
    legend(fig, axes[2], len(groups) + 2)
    return save(fig, path)
