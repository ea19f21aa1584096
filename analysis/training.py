"""Weight updates over a run: what each LoRA update optimised and how far it moved.

One row of `updates.parquet` per update and owner (agent, group or population) after
round t: loss (the objective's training loss), kl (mean KL divergence of the updated
policy to its reference on the update's examples) and mean_reward (the mean reward of
the examples it learned from).
"""

from __future__ import annotations

import polars as pl

from analysis.frames import By, Frame, group_keys


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
