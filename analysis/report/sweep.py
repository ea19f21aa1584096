"""The sections of a sweep's report: curves per configuration, runs' survival, phase diagram."""

from __future__ import annotations

import polars as pl

from analysis import plots as P
from analysis.diffusion import cascade_size, exposure_response
from analysis.early_warning import early_warning_signals, early_warning_trends
from analysis.load import RUN, swept_parameters
from analysis.rates import mean_p_violate_by_round, violation_rate_by_round
from analysis.report.page import Inputs, Page, header_facts, section
from analysis.sweeps import phase_diagram
from analysis.tipping import survival_curve, tipping_times


def sweep_report(page: Page, inputs: Inputs) -> None:
    header_facts(page, inputs, single=False)
    manifests, lf, level = inputs.manifests, inputs.decisions.lazy(), inputs.level
    swept = swept_parameters(manifests)
    tips = tipping_times(lf, level=level)
    cascade = cascade_size(lf)
    runs_table = (
        manifests.select(RUN, *swept, "seed", "status")
        .join(
            tips.select(RUN, "last_round", "tipping_round", "change_point_round"),
            on=RUN,
            how="left",
        )
        .join(cascade.select(RUN, "cascade_size", "final_violation_rate"), on=RUN, how="left")
    )
    section(page, "tipping curves", tipping_curves, page, inputs, swept)
    section(page, "survival", run_survival, page, inputs, swept, tips)
    section(page, "phase diagram", phase, page, inputs, swept)
    section(page, "diffusion", diffusion, page, inputs, swept)
    trends = section(page, "early-warning trends", run_trends, lf, level)
    if trends is not None:
        runs_table = runs_table.join(
            trends.select(RUN, "tau_variance", "tau_autocorrelation"), on=RUN, how="left"
        )
    tipped = runs_table.get_column("tipping_round").is_not_null().sum()
    page.facts.append((f"runs tipped (rate >= {level})", f"{tipped} of {runs_table.height}"))
    page.table("runs", runs_table, "Runs")


def tipping_curves(page: Page, inputs: Inputs, swept: list[str]) -> None:
    d = inputs.decisions
    per_config = d.select(*swept, RUN).unique().group_by(swept or pl.lit(0)).len()
    unit = "run" if per_config.get_column("len").min() >= 2 else "agent"
    rates = violation_rate_by_round(
        d.lazy(), by=swept, unit=unit, n_boot=inputs.n_boot, seed=inputs.seed
    )
    p_curve = mean_p_violate_by_round(d.lazy(), by=swept)
    P.plot_tipping_curves(
        rates,
        by=swept,
        p_curve=p_curve,
        level=inputs.level,
        title=f"Violation rate per round (95% CI over {unit}s)",
        path=page.out / "tipping_curves.png",
    )
    page.figure(
        "tipping_curves.png",
        "Tipping curves",
        f"Violation rate per configuration, pooled over seeds, with a 95% "
        f"bootstrap interval over {unit}s; dashed: mean p_violate.",
    )
    page.table("rates", rates, "Violation rate per round", show=False)


def run_survival(page: Page, inputs: Inputs, swept: list[str], tips: pl.DataFrame) -> None:
    first = swept[:1]
    km = survival_curve(tips.join(inputs.manifests.select(RUN, *first), on=RUN), by=first)
    P.plot_survival(
        km, by=first, title="Runs' time to tip (Kaplan-Meier)", path=page.out / "survival.png"
    )
    page.figure(
        "survival.png",
        "Time to tip",
        f"Share of runs whose violation rate has not reached {inputs.level}; "
        "runs that never tip are censored at their last round (+).",
    )


def phase(page: Page, inputs: Inputs, swept: list[str]) -> None:
    if not swept:
        page.notes.append("No swept parameter: no phase diagram.")
        return
    x, y = swept[0], (swept[1] if len(swept) > 1 else None)
    pd = phase_diagram(inputs.decisions.lazy(), x, y)
    P.plot_phase_diagram(pd, x, y, path=page.out / "phase_diagram.png")
    others = f"; averaged over {', '.join(swept[2:])}" if len(swept) > 2 else ""
    page.figure(
        "phase_diagram.png",
        "Phase diagram",
        f"Final violation rate (last round), mean over runs{others}.",
    )
    page.table("phase_diagram", pd, "Phase diagram")


def diffusion(page: Page, inputs: Inputs, swept: list[str]) -> None:
    first = swept[:1]
    er = exposure_response(inputs.decisions.lazy(), by=first)
    if er.is_empty():
        page.notes.append("Exposure-response: no neighbour exposure recorded.")
        return
    P.plot_exposure_response(er, by=first, path=page.out / "exposure_response.png")
    page.figure(
        "exposure_response.png",
        "Exposure-response",
        "Probability that a complying agent violates next round, by its "
        "number of violating neighbours (95% Wilson interval).",
    )


def run_trends(lf: pl.LazyFrame, level: float) -> pl.DataFrame:
    """Each run's Kendall tau of its early-warning indicators (a column of the runs table)."""
    return early_warning_trends(early_warning_signals(lf, level=level))
