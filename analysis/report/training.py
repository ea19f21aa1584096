"""The training section of a report: loss, KL and reward of the runs' weight updates."""

from __future__ import annotations

import polars as pl

from analysis.load import RUN, scan_rounds, scan_updates
from analysis.report.page import Inputs, Page
from analysis.training import plot_training, update_curves

MAX_OWNER_LINES = 12


def training(page: Page, inputs: Inputs, by: list[str]) -> None:
    """Drawn for runs with weight updates; a sweep's runs without any are its baseline."""
    updates = scan_updates(inputs.root).collect()
    if updates.is_empty():
        return
    curves = update_curves(updates, by)
    single_owner_lines = updates.get_column("owner").n_unique() <= MAX_OWNER_LINES
    owners = updates if not by and single_owner_lines else None
    in_context = inputs.manifests.join(updates.select(RUN).unique(), on=RUN, how="anti")
    baseline = None
    if in_context.height:
        baseline = (
            scan_rounds(inputs.root)
            .join(in_context.select(RUN).lazy(), on=RUN)
            .group_by("round")
            .agg(pl.col("mean_reward").mean())
            .sort("round")
            .collect()
        )
    plot_training(curves, by, owners, baseline, path=page.out / "training.png")
    page.figure(
        "training.png",
        "Training",
        "Per weight update: the objective's loss, the KL divergence of the updated policy "
        "to its reference and the mean reward of the examples it learned from; line: mean "
        "over owners, band: their range"
        + ("; thin grey: each owner" if owners is not None else "")
        + (
            "; dashed: the mean reward per round of the runs without updates"
            if baseline is not None
            else ""
        )
        + ".",
    )
    page.table("updates", curves, "Weight updates per round", show=False)
    page.facts.append(
        ("weight updates", f"{updates.height} ({updates['owner'].n_unique()} owners)")
    )
