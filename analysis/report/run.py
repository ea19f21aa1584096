"""The sections of a single run's report: tipping curves (per condition when the preset
compares conditions), survival, early warning, diffusion. Each metric is shown only
where it is defined and has enough data; a note says why when it is not."""

from __future__ import annotations

import polars as pl

from analysis import plots as P
from analysis.diffusion import cascade_size, exposure_response, reproduction_number
from analysis.early_warning import early_warning_signals, early_warning_trends
from analysis.rates import mean_p_violate_by_round, violation_rate_by_round
from analysis.report.elasticity import elasticity
from analysis.report.guard import guard
from analysis.report.page import Inputs, Page, ci, fmt, header_facts, section
from analysis.report.training import training
from analysis.tipping import agent_tipping_times, median_time_to_tip, survival_curve, tipping_times
from analysis.units import MIN_UNITS, NAMES

MIN_EWS_ROUNDS = 10
"""Rounds with p_violate before tipping that early-warning indicators need: a rolling
variance and autocorrelation over a window of half of them, and a Kendall trend of those."""
SHARE_BINS = 5


def run_report(page: Page, inputs: Inputs) -> None:
    header_facts(page, inputs, single=True)
    lf, level = inputs.decisions.lazy(), inputs.level
    rates = violation_rate_by_round(lf, unit=inputs.unit, n_boot=inputs.n_boot, seed=inputs.seed)
    p_curve = mean_p_violate_by_round(lf)
    tips = tipping_times(lf, level=level)
    last = rates.filter(pl.col("violation_rate").is_not_null()).tail(1)
    tip = tips.row(0, named=True)
    pooled = f" (pooled over {', '.join(inputs.by)})" if inputs.by else ""
    page.facts += [
        ("interval unit", f"{NAMES[inputs.unit]} (cluster bootstrap)"),
        (
            f"final violation rate{pooled}",
            ci(last.item(0, "violation_rate"), last.item(0, "ci_low"), last.item(0, "ci_high"))
            if last.height
            else "n/a",
        ),
        (f"tipping round{pooled} (rate >= {level})", fmt(tip["tipping_round"], none="never")),
        ("change point (PELT)", fmt(tip["change_point_round"], none="none")),
    ]
    section(page, "conditions", by_condition, page, inputs)
    section(page, "tipping curves", tipping_curves, page, inputs, rates, p_curve, tips)
    section(page, "survival", agent_survival, page, inputs)
    section(page, "early-warning signals", early_warning, page, inputs)
    r_eff = section(page, "diffusion", diffusion, page, inputs)
    section(page, "training", training, page, inputs, [])
    section(page, "guard", guard, page, inputs, [])
    section(page, "elasticity", elasticity, page, inputs)
    per_round = rates.select("round", "n_units", "n_valid", "violation_rate", "ci_low", "ci_high")
    per_round = per_round.join(
        p_curve.select("round", "mean_p_violate", "compliance_margin"), on="round", how="left"
    )
    if r_eff is not None:
        per_round = per_round.join(
            r_eff.select("round", "n_new_violators", "r_effective"), on="round", how="left"
        )
    page.table("per_round", per_round, "Per round")


def few_units(page: Page, rates: pl.DataFrame, unit: str) -> str:
    """A warning (also a page note) when fewer than MIN_UNITS units back an interval."""
    fewest = rates.get_column("n_units").min()
    if fewest is None or fewest >= MIN_UNITS:
        return ""
    units = NAMES[unit].removesuffix("s") if fewest == 1 else NAMES[unit]
    warning = (
        f"Intervals backed by only {fewest} independent {units} (fewer than "
        f"{MIN_UNITS}): read them as rough."
    )
    page.notes.append(warning)
    return " " + warning


def by_condition(page: Page, inputs: Inputs) -> None:
    """One curve per value of the compared conditions, with cluster-bootstrap intervals."""
    if not inputs.by:
        return
    by, lf, unit = inputs.by, inputs.decisions.lazy(), inputs.unit
    rates = violation_rate_by_round(
        lf, by=by, unit=unit, n_boot=inputs.n_boot, seed=inputs.seed
    ).sort(*by, "round")
    tips = tipping_times(lf, by=by, level=inputs.level)
    final = rates.filter(pl.col("violation_rate").is_not_null()).group_by(by).last()
    for row in final.join(tips, on=by, how="left").sort(by).iter_rows(named=True):
        name = ", ".join(f"{c}={P.value_text(row[c])}" for c in by)
        tipped = "never" if row["tipping_round"] is None else f"round {row['tipping_round']}"
        page.facts.append(
            (
                f"final violation rate, {name}",
                f"{ci(row['violation_rate'], row['ci_low'], row['ci_high'])}; tipped at: {tipped}",
            )
        )
    warning = few_units(page, rates, unit)
    words = ", ".join(by)
    title = f"Violation rate per round by {words} (95% CI over {NAMES[unit]})"
    groups = rates.select(by).unique().height
    if groups > P.OVERLAY:
        P.plot_tipping_panels(rates, by, inputs.level, title, path=page.out / "by_condition.png")
    else:
        P.plot_tipping_curves(rates, by, level=inputs.level, title=title,
                              path=page.out / "by_condition.png")  # fmt: skip
    page.figure(
        "by_condition.png",
        f"By {words}",
        f"Share of valid decisions that violate, one curve per {words}, with a 95% "
        f"cluster-bootstrap interval that resamples whole {NAMES[unit]}.{warning}",
    )
    page.table("by_condition", rates, f"Violation rate per round by {words}")


def tipping_curves(
    page: Page, inputs: Inputs, rates: pl.DataFrame, p_curve: pl.DataFrame, tips: pl.DataFrame
) -> None:
    d, out, unit = inputs.decisions, page.out, inputs.unit
    pooled = f", pooled over {', '.join(inputs.by)}" if inputs.by else ""
    warning = "" if inputs.by else few_units(page, rates, unit)
    P.plot_tipping_curves(
        rates,
        p_curve=p_curve,
        level=inputs.level,
        tipping=tips,
        title=f"Violation rate per round (95% CI over {NAMES[unit]}{pooled})",
        path=out / "tipping_curves.png",
    )
    page.figure(
        "tipping_curves.png",
        "Tipping curve",
        f"Share of valid decisions that violate{pooled}, with a 95% cluster-bootstrap "
        f"interval over {NAMES[unit]}; dashed: mean p_violate (the model's probability of "
        f"the violating label, noise-free); dotted: the tipping level {inputs.level}.{warning}",
    )
    scenarios = d.get_column("scenario").drop_nulls().n_unique()
    if 2 <= scenarios <= P.MAX_LINES and not inputs.by:
        by_s = violation_rate_by_round(
            d.lazy(), by="scenario", unit=unit, n_boot=inputs.n_boot, seed=inputs.seed
        )
        P.plot_tipping_curves(
            by_s,
            by=["scenario"],
            level=inputs.level,
            title="Violation rate per scenario",
            path=out / "tipping_by_scenario.png",
        )
        page.figure(
            "tipping_by_scenario.png",
            "Per scenario",
            "The same curve for each scenario (environment item).",
        )


def agent_survival(page: Page, inputs: Inputs) -> None:
    agents = agent_tipping_times(inputs.decisions.lazy())
    km = survival_curve(agents)
    med = median_time_to_tip(km).item(0, "median_time_to_tip") if km.height else None
    page.facts.append(("median agent time to first violation", fmt(med, none="not reached")))
    if agents.get_column("tipped").sum() == 0:
        page.notes.append("Time to tip: no agent violated; the Kaplan-Meier curve stays at 1.")
        return
    P.plot_survival(
        km, title="Agents' time to first violation (Kaplan-Meier)", path=page.out / "survival.png"
    )
    page.figure(
        "survival.png",
        "Time to tip",
        "Kaplan-Meier estimate of the share of agents that have not violated yet by each "
        "round (Greenwood 95% band); agents that never violated are censored at their "
        "last round (+).",
    )
    page.table("survival", km, "Kaplan-Meier table (agents)")


def early_warning(page: Page, inputs: Inputs) -> None:
    signals = early_warning_signals(inputs.decisions.lazy(), level=inputs.level)
    n = signals.height
    if n < MIN_EWS_ROUNDS:
        page.notes.append(
            f"Early-warning signals need at least {MIN_EWS_ROUNDS} rounds with p_violate "
            f"before tipping; this run has {n}: not shown."
        )
        return
    trends = early_warning_trends(signals)
    t = trends.row(0, named=True)
    page.facts.append(
        (
            "EWS Kendall tau (variance, autocorr.)",
            f"{fmt(t['tau_variance'])}, {fmt(t['tau_autocorrelation'])}",
        )
    )
    P.plot_early_warning(signals, trends, path=page.out / "early_warning.png")
    page.figure(
        "early_warning.png",
        "Early-warning signals",
        "Compliance margin (mean log-odds of complying) before the tipping round, and the "
        "rolling variance and lag-1 autocorrelation of its detrended residual; tau: "
        "Kendall trend against time (rising before tipping = critical slowing down).",
    )


def diffusion(page: Page, inputs: Inputs) -> pl.DataFrame | None:
    """Cascade, reproduction number and exposure-response: only where agents see each other."""
    if not inputs.sees:
        page.notes.append(
            "Agents never see each other's choices in this run (no neighbours or no peer "
            "view): cascade size, reproduction number and exposure-response are not defined."
        )
        return None
    lf = inputs.decisions.lazy()
    r_eff = reproduction_number(lf)
    cascade = cascade_size(lf)
    first = r_eff.filter(pl.col("n_violators") > 0).head(1)
    page.facts += [
        ("cascade size (ever violated)", fmt(cascade.item(0, "cascade_size"))),
        (
            "reproduction number in the first round with violators",
            fmt(first.item(0, "r_effective")) if first.height else "n/a",
        ),
    ]
    page.table("cascade", cascade, "Cascade")
    er = exposure_response(lf, exposure="share_violating_neighbors", bins=SHARE_BINS)
    if er.is_empty():
        page.notes.append("Exposure-response: no complying agent with a neighbour that played.")
        return r_eff
    P.plot_exposure_response(
        er,
        xlabel="share of neighbours violating last round (bin lower edge)",
        path=page.out / "exposure_response.png",
    )
    page.figure(
        "exposure_response.png",
        "Exposure-response",
        "Probability that a complying agent violates next round, by the share of its "
        f"neighbours that violated (bins of 1/{SHARE_BINS}; 95% Wilson interval; n = agent-"
        "rounds at risk).",
    )
    page.table("exposure_response", er, "Exposure-response")
    return r_eff
