"""The sections of a sweep's report: curves per configuration (small multiples when there
are many), runs' survival, phase diagrams over the swept axes, diffusion, the runs table."""

from __future__ import annotations

import polars as pl

from analysis import plots as P
from analysis.diffusion import cascade_size, exposure_response
from analysis.early_warning import early_warning_signals, early_warning_trends
from analysis.load import RUN, swept_parameters
from analysis.protection import alignment_protection
from analysis.rates import mean_p_violate_by_round, violation_rate_by_round
from analysis.report.elasticity import elasticity
from analysis.report.guard import guard
from analysis.report.page import Inputs, Page, header_facts, section
from analysis.report.run import SHARE_BINS, few_units
from analysis.report.training import training
from analysis.sweeps import phase_diagram
from analysis.tipping import survival_curve, tipping_times
from analysis.units import NAMES

MAX_PHASE_FIGURES = 6


def sweep_report(page: Page, inputs: Inputs) -> None:
    header_facts(page, inputs, single=False)
    manifests, lf, level = inputs.manifests, inputs.decisions.lazy(), inputs.level
    swept = swept_parameters(manifests)
    facets = list(dict.fromkeys([*swept, *inputs.by]))
    mixed = inputs.decisions.group_by(facets or pl.lit(0)).agg(pl.col("paradigm").n_unique())
    if mixed.get_column("paradigm").max() > 1:  # some curve pools both paradigms
        paradigms = inputs.decisions.get_column("paradigm").drop_nulls().unique().sort()
        page.notes.append(
            f"This sweep mixes paradigms ({', '.join(paradigms)}) within a curve: their "
            "rates answer different questions; compare them per paradigm (--by paradigm)."
        )
    tips = tipping_times(lf, level=level)
    runs_table = manifests.select(RUN, *swept, "seed", "status").join(
        tips.select(RUN, "last_round", "tipping_round", "change_point_round"), on=RUN, how="left"
    )
    section(page, "tipping curves", tipping_curves, page, inputs, facets)
    section(page, "survival", run_survival, page, inputs, swept, tips)
    section(page, "phase diagram", phase, page, inputs, swept)
    cascade = section(page, "diffusion", diffusion, page, inputs, swept)
    if cascade is not None:
        runs_table = runs_table.join(
            cascade.select(RUN, "cascade_size", "final_violation_rate"), on=RUN, how="left"
        )
    section(page, "training", training, page, inputs, swept)
    section(page, "guard", guard, page, inputs, swept)
    section(page, "elasticity", elasticity, page, inputs)
    if ALIGNMENT in swept:
        section(page, "alignment", protection, page, inputs, swept)
    trends = section(page, "early-warning trends", run_trends, lf, level)
    if trends is not None:
        runs_table = runs_table.join(
            trends.select(RUN, "tau_variance", "tau_autocorrelation"), on=RUN, how="left"
        )
    tipped = runs_table.get_column("tipping_round").is_not_null().sum()
    page.facts.append((f"runs tipped (rate >= {level})", f"{tipped} of {runs_table.height}"))
    page.table("runs", runs_table, "Runs")


def tipping_curves(page: Page, inputs: Inputs, facets: list[str]) -> None:
    """Per configuration: runs (seeds) are the unit when a configuration has several."""
    d = inputs.decisions
    per_config = d.select(*facets, RUN).unique().group_by(facets or pl.lit(0)).len()
    unit = "run" if per_config.get_column("len").min() >= 2 else inputs.unit
    rates = violation_rate_by_round(
        d.lazy(), by=facets, unit=unit, n_boot=inputs.n_boot, seed=inputs.seed
    )
    warning = few_units(page, rates, unit)
    title = f"Violation rate per round (95% CI over {NAMES[unit]})"
    groups = rates.select(facets).unique().height if facets else 1
    if groups > P.OVERLAY:
        P.plot_tipping_panels(rates, facets, inputs.level, title, page.out / "tipping_curves.png")
        shown = f"one panel per configuration (grey: the mean of all; first {P.MAX_PANELS})"
    else:
        p_curve = mean_p_violate_by_round(d.lazy(), by=facets)
        P.plot_tipping_curves(rates, by=facets, p_curve=p_curve, level=inputs.level,
                              title=title, path=page.out / "tipping_curves.png")  # fmt: skip
        shown = "one curve per configuration; dashed: mean p_violate"
    page.figure(
        "tipping_curves.png",
        "Tipping curves",
        f"Violation rate per round, {shown}, pooled over seeds, with a 95% "
        f"cluster-bootstrap interval over {NAMES[unit]}.{warning}",
    )
    page.table("rates", rates, "Violation rate per round", show=False)


def run_survival(page: Page, inputs: Inputs, swept: list[str], tips: pl.DataFrame) -> None:
    if not tips.get_column("tipped").any():
        page.notes.append(
            f"Time to tip: no run reached a violation rate of {inputs.level}; no survival curve."
        )
        return
    first = swept[:1]
    km = survival_curve(tips.join(inputs.manifests.select(RUN, *first), on=RUN), by=first)
    P.plot_survival(
        km, by=first, title="Runs' time to tip (Kaplan-Meier)", path=page.out / "survival.png"
    )
    page.figure(
        "survival.png",
        "Time to tip",
        f"Kaplan-Meier estimate of the share of runs whose violation rate has not reached "
        f"{inputs.level} by each round; runs that never tip are censored at their last "
        "round (+).",
    )


def phase(page: Page, inputs: Inputs, swept: list[str]) -> None:
    """Final violation rate over the first two swept axes, one figure per value of the rest."""
    if not swept:
        page.notes.append("No swept parameter: no phase diagram.")
        return
    x, y, rest = swept[0], (swept[1] if len(swept) > 1 else None), swept[2:]
    pd = phase_diagram(inputs.decisions.lazy(), x, y, by=rest)
    page.table("phase_diagram", pd, "Phase diagram")
    for i, (label, cells) in enumerate(P.group_labels(pd, rest)[:MAX_PHASE_FIGURES]):
        name = "phase_diagram.png" if not rest else f"phase_diagram_{i}.png"
        at = "" if not rest else f" at {label}"
        P.plot_phase_diagram(cells, x, y, title=f"Final violation rate{at}", path=page.out / name)
        page.figure(
            name,
            f"Phase diagram{at}",
            f"Final violation rate (last round) over the swept {x}"
            + (f" and {y}" if y else "")
            + f"{at}, mean over the runs (seeds) of each cell.",
        )


def diffusion(page: Page, inputs: Inputs, swept: list[str]) -> pl.DataFrame | None:
    if not inputs.sees:
        page.notes.append(
            "Agents never see each other's choices in these runs: cascade size and "
            "exposure-response are not defined."
        )
        return None
    first = swept[:1]
    cascade = cascade_size(inputs.decisions.lazy())
    er = exposure_response(
        inputs.decisions.lazy(), by=first, exposure="share_violating_neighbors", bins=SHARE_BINS
    )
    if er.is_empty():
        page.notes.append("Exposure-response: no complying agent with a neighbour that played.")
        return cascade
    P.plot_exposure_response(
        er,
        by=first,
        xlabel="share of neighbours violating last round (bin lower edge)",
        path=page.out / "exposure_response.png",
    )
    page.figure(
        "exposure_response.png",
        "Exposure-response",
        "Probability that a complying agent violates next round, by the share of its "
        f"neighbours that violated (bins of 1/{SHARE_BINS}; 95% Wilson interval).",
    )
    return cascade


ALIGNMENT = "backend.align"  # the sweep compares alignments (experiment=atp_defenses)


def protection(page: Page, inputs: Inputs, swept: list[str]) -> None:
    """Round-1 protection of each alignment against the base (none) and its erosion."""
    others = [c for c in swept if c != ALIGNMENT]
    table = alignment_protection(
        inputs.decisions.lazy(), ALIGNMENT, others, n_boot=inputs.n_boot, seed=inputs.seed
    )
    page.table("alignment_protection", table, "Alignment: protection at round 1 and erosion")
    page.notes.append(
        "Alignment: round-1 violation per method (95% bootstrap interval over runs); "
        "protection = the base's (backend.align=none) round-1 rate minus the method's; "
        "erosion = violation rate gained per round; rounds to tip = first round at >= 0.8."
    )


def run_trends(lf: pl.LazyFrame, level: float) -> pl.DataFrame:
    """Each run's Kendall tau of its early-warning indicators (a column of the runs table)."""
    return early_warning_trends(early_warning_signals(lf, level=level))
