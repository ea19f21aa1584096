"""The sections of a single run's report: tipping curves, survival, early warning, diffusion."""

from __future__ import annotations

import polars as pl

from analysis import plots as P
from analysis.diffusion import cascade_size, exposure_response, reproduction_number
from analysis.early_warning import early_warning_signals, early_warning_trends
from analysis.rates import mean_p_violate_by_round, violation_rate_by_round
from analysis.report.page import Inputs, Page, ci, fmt, header_facts, section
from analysis.tipping import agent_tipping_times, median_time_to_tip, survival_curve, tipping_times


def run_report(page: Page, inputs: Inputs) -> None:
    header_facts(page, inputs, single=True)
    lf, level = inputs.decisions.lazy(), inputs.level
    rates = violation_rate_by_round(lf, n_boot=inputs.n_boot, seed=inputs.seed)
    p_curve = mean_p_violate_by_round(lf)
    tips = tipping_times(lf, level=level)
    r_eff = reproduction_number(lf)
    cascade = cascade_size(lf)
    last = rates.filter(pl.col("violation_rate").is_not_null()).tail(1)
    tip = tips.row(0, named=True)
    page.facts += [
        (
            "final violation rate",
            ci(last.item(0, "violation_rate"), last.item(0, "ci_low"), last.item(0, "ci_high"))
            if last.height
            else "n/a",
        ),
        (f"tipping round (rate >= {level})", fmt(tip["tipping_round"], none="never")),
        ("change point (PELT)", fmt(tip["change_point_round"], none="none")),
        ("cascade size (ever violated)", fmt(cascade.item(0, "cascade_size"))),
    ]
    per_round = (
        rates.select("round", "n_valid", "violation_rate", "ci_low", "ci_high")
        .join(
            p_curve.select("round", "mean_p_violate", "compliance_margin"), on="round", how="left"
        )
        .join(r_eff.select("round", "n_new_violators", "r_effective"), on="round", how="left")
    )
    section(page, "tipping curves", tipping_curves, page, inputs, rates, p_curve, tips)
    section(page, "survival", agent_survival, page, inputs)
    section(page, "early-warning signals", early_warning, page, inputs)
    section(page, "diffusion", diffusion, page, inputs, r_eff)
    page.table("per_round", per_round, "Per round")
    page.table("cascade", cascade, "Cascade")


def tipping_curves(
    page: Page, inputs: Inputs, rates: pl.DataFrame, p_curve: pl.DataFrame, tips: pl.DataFrame
) -> None:
    d, out = inputs.decisions, page.out
    P.plot_tipping_curves(
        rates,
        p_curve=p_curve,
        level=inputs.level,
        tipping=tips,
        title="Violation rate per round (95% CI, bootstrap over agents)",
        path=out / "tipping_curves.png",
    )
    page.figure(
        "tipping_curves.png",
        "Tipping curve",
        "Share of valid decisions that violate, with a 95% bootstrap "
        "interval over agents; dashed: mean p_violate (noise-free).",
    )
    scenarios = d.get_column("scenario").drop_nulls().n_unique()
    if 2 <= scenarios <= P.MAX_LINES:
        by_s = violation_rate_by_round(
            d.lazy(), by="scenario", n_boot=inputs.n_boot, seed=inputs.seed
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
    P.plot_survival(
        km, title="Agents' time to first violation (Kaplan-Meier)", path=page.out / "survival.png"
    )
    page.figure(
        "survival.png",
        "Time to tip",
        "Share of agents that have not violated yet; agents that never "
        "violated are censored at their last round (+).",
    )
    page.table("survival", km, "Kaplan-Meier table (agents)")


def early_warning(page: Page, inputs: Inputs) -> None:
    signals = early_warning_signals(inputs.decisions.lazy(), level=inputs.level)
    trends = early_warning_trends(signals)
    if trends.height:
        t = trends.row(0, named=True)
        page.facts.append(
            (
                "EWS Kendall tau (variance, autocorr.)",
                f"{fmt(t['tau_variance'])}, {fmt(t['tau_autocorrelation'])}",
            )
        )
    if signals.get_column("variance").null_count() == signals.height:
        page.notes.append("Early-warning signals: too few rounds with p_violate before tipping.")
        return
    P.plot_early_warning(signals, trends, path=page.out / "early_warning.png")
    page.figure(
        "early_warning.png",
        "Early-warning signals",
        "Compliance log-odds margin before the tipping round, and the "
        "rolling variance and lag-1 autocorrelation of its detrended "
        "residual; tau: Kendall trend (rising before tipping = warning).",
    )


def diffusion(page: Page, inputs: Inputs, r_eff: pl.DataFrame) -> None:
    er = exposure_response(inputs.decisions.lazy())
    mean_r = r_eff.get_column("r_effective").drop_nulls().drop_nans().mean()
    page.facts.append(("mean effective reproduction number", fmt(mean_r)))
    if er.is_empty():
        page.notes.append("Exposure-response: no neighbour exposure recorded.")
        return
    P.plot_exposure_response(er, path=page.out / "exposure_response.png")
    page.figure(
        "exposure_response.png",
        "Exposure-response",
        "Probability that a complying agent violates next round, by its "
        "number of violating neighbours (95% Wilson interval).",
    )
    page.table("exposure_response", er, "Exposure-response")
