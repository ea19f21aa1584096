"""The guard section of a report: proposed vs executed violation, latent drift, the
guard's interventions, catch rate and false edits over time (analysis/guard.py)."""

from __future__ import annotations

from analysis.guard import guard_curves, guard_summary, plot_guard
from analysis.report.page import Inputs, Page, fmt


def guard(page: Page, inputs: Inputs, by: list[str]) -> None:
    """Drawn for runs with a guard; a sweep's runs without one are its baseline."""
    d = inputs.decisions
    if "guard_changed" not in d.columns or d.get_column("guard_changed").is_null().all():
        return
    curves = guard_curves(d, by)
    plot_guard(curves, by, "Guard: proposed vs executed violation", page.out / "guard.png")
    page.figure(
        "guard.png",
        "Guard",
        "Top: the share of valid proposals that violate (solid: the agents' own choices, "
        "before the guard) and of executed choices (dashed: after it); the band between "
        "them is the latent drift the guard masks. Bottom: the guard's catch rate "
        "(violating proposals it corrected; falling means agents learn to evade it) and "
        "false-edit rate (compliant proposals it changed).",
    )
    summary = guard_summary(d, by)
    for row in summary.iter_rows(named=True):
        name = ", ".join(f"{c}={row[c]}" for c in by) or "all runs"
        page.facts.append(
            (
                f"guard, {name}",
                f"violation proposed {fmt(row['proposed_violation'])}, executed "
                f"{fmt(row['executed_violation'])}; proposed rise per round "
                f"{fmt(row['proposed_slope'])}; catch rate {fmt(row['catch_rate'])}, "
                f"false edits {fmt(row['false_edit_rate'])}",
            )
        )
    page.table("guard", curves, "Guard per round")
    page.table("guard_summary", summary, "Guard over all rounds")
