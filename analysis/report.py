"""The report of a run or a sweep: `PATH/report/` with index.html, summary.md, figures, tables.

    python -m analysis.report PATH [--level 0.5] [--n-boot 500]

PATH is a run directory (holds manifest.json) or a sweep directory (runs below it).
`write_report(path)` is what `sim.run` calls at the end of a run: it reads only the
recorded files, copes with tiny runs (one round, one agent, no neighbours, no
p_violate, no tipping) and takes a few seconds.
"""

from __future__ import annotations

import argparse
import html
import math
import sys
import time
import traceback
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from analysis import metrics as M
from analysis import plots as P
from analysis.load import (
    RUN,
    NoRunError,
    find_runs,
    is_run_dir,
    parameter_columns,
    read_manifest,
    read_manifests,
    scan_decisions,
    swept_parameters,
)

COLUMNS = (
    "run_id",
    "round",
    "agent",
    "group",
    "paradigm",
    "scenario",
    "violated",
    "p_violate",
    "n_violating_neighbors",
)
"""The decision columns the report reads (text and the rest stay on disk)."""


@dataclass(frozen=True)
class Inputs:
    """What every section reads: the records under `root` and the analysis settings."""

    root: Path
    manifests: pl.DataFrame
    decisions: pl.DataFrame
    level: float  # the violation rate that counts as tipped
    n_boot: int
    seed: int


@dataclass
class Page:
    """What the report accumulates in `out`: headline facts, figures, tables, notes."""

    title: str
    out: Path
    facts: list[tuple[str, str]] = field(default_factory=list)
    figures: list[tuple[str, str, str]] = field(default_factory=list)  # file, title, caption
    tables: list[tuple[str, pl.DataFrame, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def figure(self, file: str, title: str, caption: str) -> None:
        """Show `out/file`, a figure already drawn."""
        self.figures.append((file, title, caption))

    def table(self, name: str, frame: pl.DataFrame, title: str, show: bool = True) -> None:
        """Write `out/tables/name.csv`; show it on the page too unless show=False."""
        frame.write_csv(self.out / "tables" / f"{name}.csv")
        if show:
            self.tables.append((name, frame, title))


def write_report(path, level: float = 0.5, n_boot: int = 500, seed: int = 0) -> Path:
    """Write `path/report/` for the run or sweep at `path`; returns the report directory.

    Raises NoRunError (a FileNotFoundError) naming `path` when it holds no run.
    """
    root = Path(path)
    runs = find_runs(root)
    out = root / "report"
    out.mkdir(parents=True, exist_ok=True)
    (out / "tables").mkdir(exist_ok=True)
    for stale in [*out.glob("*.png"), *(out / "tables").glob("*.csv")]:
        stale.unlink()  # figures of an earlier report that this one may not draw
    manifests = read_manifests(root)
    params = parameter_columns(manifests)
    frame = scan_decisions(root).select(*COLUMNS, RUN, "status", "seed", *params).collect()
    single = len(runs) == 1 and is_run_dir(root)
    page = Page(f"tiplab report: {'run' if single else 'sweep'} {root.resolve().name}", out)
    inputs = Inputs(root, manifests, frame, level, n_boot, seed)
    started = time.perf_counter()
    if frame.is_empty():
        page.notes.append("No decisions recorded yet.")
        _facts_header(page, inputs, single)
    elif single:
        _run_report(page, inputs)
    else:
        _sweep_report(page, inputs)
    page.facts.append(("report written in", f"{time.perf_counter() - started:.1f} s"))
    (out / "index.html").write_text(_html(page))
    (out / "summary.md").write_text(_markdown(page))
    return out


# --------------------------------------------------------------------------- sections


def _section(page: Page, name: str, fn: Callable[[], None]) -> None:
    """Run one section; a failure becomes a note on the page, not a failed run."""
    try:
        fn()
    except Exception as e:  # noqa: BLE001  (a report must not sink the run that wrote it)
        page.notes.append(f"{name} failed: {type(e).__name__}: {e}")
        warnings.warn(f"report: {name} failed:\n{traceback.format_exc()}", stacklevel=2)


def _facts_header(page: Page, inputs: Inputs, single: bool) -> None:
    manifests, frame = inputs.manifests, inputs.decisions
    if single:
        m = read_manifest(inputs.root)
        page.facts += [
            ("run id", str(m.get("run_id"))),
            ("status", str(m.get("status", "unknown"))),
            ("rounds", f"{m.get('rounds_completed')} of {m.get('n_rounds')}"),
            ("seed", str(m.get("seed"))),
        ]
        overrides = m.get("overrides") or {}
        if overrides:
            page.facts.append(("overrides", ", ".join(f"{k}={v}" for k, v in overrides.items())))
        if m.get("error"):
            page.facts.append(("error", str(m["error"])))
        if m.get("git_sha"):
            page.facts.append(("git sha", str(m["git_sha"])[:12]))
    else:
        statuses = manifests.group_by("status").len().sort("status")
        page.facts += [
            ("runs", str(manifests.height)),
            ("status", ", ".join(f"{s}: {n}" for s, n in statuses.iter_rows())),
            ("swept parameters", ", ".join(swept_parameters(manifests)) or "none"),
        ]
    if not frame.is_empty():
        page.facts += [
            ("agents", str(frame.select(RUN, "agent").n_unique())),
            ("rounds recorded", str(frame.get_column("round").n_unique())),
            (
                "paradigm",
                ", ".join(sorted(frame.get_column("paradigm").drop_nulls().unique())) or "?",
            ),
        ]


def _run_report(page: Page, inputs: Inputs) -> None:
    _facts_header(page, inputs, single=True)
    d, level, out = inputs.decisions, inputs.level, page.out
    lf = d.lazy()
    rates = M.violation_rate_by_round(lf, n_boot=inputs.n_boot, seed=inputs.seed)
    p_curve = M.mean_p_violate_by_round(lf)
    tips = M.tipping_times(lf, level=level)
    r_eff = M.reproduction_number(lf)
    cascade = M.cascade_size(lf)
    last = rates.filter(pl.col("violation_rate").is_not_null()).tail(1)
    tip = tips.row(0, named=True)
    page.facts += [
        (
            "final violation rate",
            _ci(last.item(0, "violation_rate"), last.item(0, "ci_low"), last.item(0, "ci_high"))
            if last.height
            else "n/a",
        ),
        (f"tipping round (rate >= {level})", _fmt(tip["tipping_round"], none="never")),
        ("change point (PELT)", _fmt(tip["change_point_round"], none="none")),
        ("cascade size (ever violated)", _fmt(cascade.item(0, "cascade_size"))),
    ]
    per_round = (
        rates.select("round", "n_valid", "violation_rate", "ci_low", "ci_high")
        .join(
            p_curve.select("round", "mean_p_violate", "compliance_margin"), on="round", how="left"
        )
        .join(r_eff.select("round", "n_new_violators", "r_effective"), on="round", how="left")
    )

    def curves():
        P.plot_tipping_curves(
            rates,
            p_curve=p_curve,
            level=level,
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
            by_s = M.violation_rate_by_round(
                lf, by="scenario", n_boot=inputs.n_boot, seed=inputs.seed
            )
            P.plot_tipping_curves(
                by_s,
                by=["scenario"],
                level=level,
                title="Violation rate per scenario",
                path=out / "tipping_by_scenario.png",
            )
            page.figure(
                "tipping_by_scenario.png",
                "Per scenario",
                "The same curve for each scenario (environment item).",
            )

    def survival():
        agents = M.agent_tipping_times(lf)
        km = M.survival_curve(agents)
        med = M.median_time_to_tip(km).item(0, "median_time_to_tip") if km.height else None
        page.facts.append(("median agent time to first violation", _fmt(med, none="not reached")))
        P.plot_survival(
            km, title="Agents' time to first violation (Kaplan-Meier)", path=out / "survival.png"
        )
        page.figure(
            "survival.png",
            "Time to tip",
            "Share of agents that have not violated yet; agents that never "
            "violated are censored at their last round (+).",
        )
        page.table("survival", km, "Kaplan-Meier table (agents)")

    def ews():
        signals = M.early_warning_signals(lf, level=level)
        trends = M.early_warning_trends(signals)
        if trends.height:
            t = trends.row(0, named=True)
            page.facts.append(
                (
                    "EWS Kendall tau (variance, autocorr.)",
                    f"{_fmt(t['tau_variance'])}, {_fmt(t['tau_autocorrelation'])}",
                )
            )
        if signals.get_column("variance").null_count() == signals.height:
            page.notes.append(
                "Early-warning signals: too few rounds with p_violate before tipping."
            )
            return
        P.plot_early_warning(signals, trends, path=out / "early_warning.png")
        page.figure(
            "early_warning.png",
            "Early-warning signals",
            "Compliance log-odds margin before the tipping round, and the "
            "rolling variance and lag-1 autocorrelation of its detrended "
            "residual; tau: Kendall trend (rising before tipping = warning).",
        )

    def diffusion():
        er = M.exposure_response(lf)
        mean_r = r_eff.get_column("r_effective").drop_nulls().drop_nans().mean()
        page.facts.append(("mean effective reproduction number", _fmt(mean_r)))
        if er.is_empty():
            page.notes.append("Exposure-response: no neighbour exposure recorded.")
            return
        P.plot_exposure_response(er, path=out / "exposure_response.png")
        page.figure(
            "exposure_response.png",
            "Exposure-response",
            "Probability that a complying agent violates next round, by its "
            "number of violating neighbours (95% Wilson interval).",
        )
        page.table("exposure_response", er, "Exposure-response")

    _section(page, "tipping curves", curves)
    _section(page, "survival", survival)
    _section(page, "early-warning signals", ews)
    _section(page, "diffusion", diffusion)
    page.table("per_round", per_round, "Per round")
    page.table("cascade", cascade, "Cascade")


def _sweep_report(page: Page, inputs: Inputs) -> None:
    _facts_header(page, inputs, single=False)
    manifests, d, level, out = inputs.manifests, inputs.decisions, inputs.level, page.out
    lf = d.lazy()
    swept = swept_parameters(manifests)
    first = swept[:1]
    tips = M.tipping_times(lf, level=level)
    cascade = M.cascade_size(lf)
    runs_table = (
        manifests.select(RUN, *swept, "seed", "status")
        .join(
            tips.select(RUN, "last_round", "tipping_round", "change_point_round"),
            on=RUN,
            how="left",
        )
        .join(cascade.select(RUN, "cascade_size", "final_violation_rate"), on=RUN, how="left")
    )

    def curves():
        per_config = d.select(*swept, RUN).unique().group_by(swept or pl.lit(0)).len()
        unit = "run" if per_config.get_column("len").min() >= 2 else "agent"
        rates = M.violation_rate_by_round(
            lf, by=swept, unit=unit, n_boot=inputs.n_boot, seed=inputs.seed
        )
        p_curve = M.mean_p_violate_by_round(lf, by=swept)
        P.plot_tipping_curves(
            rates,
            by=swept,
            p_curve=p_curve,
            level=level,
            title=f"Violation rate per round (95% CI over {unit}s)",
            path=out / "tipping_curves.png",
        )
        page.figure(
            "tipping_curves.png",
            "Tipping curves",
            f"Violation rate per configuration, pooled over seeds, with a 95% "
            f"bootstrap interval over {unit}s; dashed: mean p_violate.",
        )
        page.table("rates", rates, "Violation rate per round", show=False)

    def survival():
        km = M.survival_curve(tips.join(manifests.select(RUN, *first), on=RUN), by=first)
        P.plot_survival(
            km, by=first, title="Runs' time to tip (Kaplan-Meier)", path=out / "survival.png"
        )
        page.figure(
            "survival.png",
            "Time to tip",
            f"Share of runs whose violation rate has not reached {level}; "
            "runs that never tip are censored at their last round (+).",
        )

    def phase():
        if not swept:
            page.notes.append("No swept parameter: no phase diagram.")
            return
        x, y = swept[0], (swept[1] if len(swept) > 1 else None)
        pd = M.phase_diagram(lf, x, y)
        P.plot_phase_diagram(pd, x, y, path=out / "phase_diagram.png")
        others = f"; averaged over {', '.join(swept[2:])}" if len(swept) > 2 else ""
        page.figure(
            "phase_diagram.png",
            "Phase diagram",
            f"Final violation rate (last round), mean over runs{others}.",
        )
        page.table("phase_diagram", pd, "Phase diagram")

    def diffusion():
        er = M.exposure_response(lf, by=first)
        if er.is_empty():
            page.notes.append("Exposure-response: no neighbour exposure recorded.")
            return
        P.plot_exposure_response(er, by=first, path=out / "exposure_response.png")
        page.figure(
            "exposure_response.png",
            "Exposure-response",
            "Probability that a complying agent violates next round, by its "
            "number of violating neighbours (95% Wilson interval).",
        )

    def ews():
        trends = M.early_warning_trends(M.early_warning_signals(lf, level=level))
        nonlocal runs_table
        runs_table = runs_table.join(
            trends.select(RUN, "tau_variance", "tau_autocorrelation"), on=RUN, how="left"
        )

    _section(page, "tipping curves", curves)
    _section(page, "survival", survival)
    _section(page, "phase diagram", phase)
    _section(page, "diffusion", diffusion)
    _section(page, "early-warning trends", ews)
    tipped = runs_table.get_column("tipping_round").is_not_null().sum()
    page.facts.append((f"runs tipped (rate >= {level})", f"{tipped} of {runs_table.height}"))
    page.table("runs", runs_table, "Runs")


# --------------------------------------------------------------------------- rendering


def _fmt(x, digits: int = 3, none: str = "n/a") -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return none
    if isinstance(x, float):
        return f"{x:.{digits}f}"
    return str(x)


def _ci(x, lo, hi) -> str:
    return f"{_fmt(x)} [{_fmt(lo)}, {_fmt(hi)}]" if lo is not None else _fmt(x)


def _rows(frame: pl.DataFrame, max_rows: int) -> tuple[list[list[str]], int]:
    """Formatted cells; long tables keep their head and tail."""
    if frame.height > max_rows:
        half = max_rows // 2
        shown = pl.concat([frame.head(half), frame.tail(half)])
    else:
        shown = frame
    return [[_fmt(v) for v in row] for row in shown.iter_rows()], frame.height - shown.height


CSS = """
body{font-family:system-ui,sans-serif;max-width:1000px;margin:2em auto;padding:0 1em;color:#222}
h1{font-size:1.5em} h2{font-size:1.2em;margin-top:2em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:.85em;margin:.5em 0}
td,th{border:1px solid #ddd;padding:.25em .6em;text-align:right}
th{background:#f4f4f4} td:first-child,th:first-child{text-align:left}
figure{margin:1em 0} img{max-width:100%;border:1px solid #eee}
figcaption{font-size:.85em;color:#555} .note{color:#865}
"""


def _html(page: Page, max_rows: int = 60) -> str:
    e = html.escape
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>{e(page.title)}</title>",
        f"<style>{CSS}</style></head><body><h1>{e(page.title)}</h1>",
        "<table>",
    ]
    parts += [f"<tr><th>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in page.facts]
    parts.append("</table>")
    parts += [f"<p class='note'>{e(n)}</p>" for n in page.notes]
    for file, title, caption in page.figures:
        parts.append(
            f"<h2>{e(title)}</h2><figure><img src='{e(file)}' alt='{e(title)}'>"
            f"<figcaption>{e(caption)}</figcaption></figure>"
        )
    for name, frame, title in page.tables:
        rows, hidden = _rows(frame, max_rows)
        parts.append(f"<h2>{e(title)}</h2><table><tr>")
        parts += [f"<th>{e(c)}</th>" for c in frame.columns]
        parts.append("</tr>")
        parts += ["<tr>" + "".join(f"<td>{e(c)}</td>" for c in r) + "</tr>" for r in rows]
        parts.append("</table>")
        more = f"{hidden} rows not shown; " if hidden else ""
        parts.append(
            f"<p><small>{more}<a href='tables/{e(name)}.csv'>{e(name)}.csv</a></small></p>"
        )
    parts.append("</body></html>")
    return "\n".join(parts)


def _markdown(page: Page, max_rows: int = 30) -> str:
    lines = [f"# {page.title}", ""]
    lines += [f"- **{k}**: {v}" for k, v in page.facts]
    lines += ["", *[f"> {n}" for n in page.notes]] if page.notes else []
    if page.figures:
        lines += ["", "## Figures", ""]
        lines += [f"- [{title}]({file}): {caption}" for file, title, caption in page.figures]
    for name, frame, title in page.tables:
        rows, hidden = _rows(frame, max_rows)
        lines += [
            "",
            f"## {title}",
            "",
            "| " + " | ".join(frame.columns) + " |",
            "|" + "---|" * frame.width,
        ]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
        if hidden:
            lines.append(f"\n{hidden} rows not shown: tables/{name}.csv")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- CLI


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m analysis.report",
        description="Write PATH/report/ (index.html, summary.md, figures) for a run or sweep.",
    )
    parser.add_argument("path", help="a run directory or a sweep directory")
    parser.add_argument("--level", type=float, default=0.5, help="tipping level (default 0.5)")
    parser.add_argument("--n-boot", type=int, default=500, help="bootstrap replicates")
    args = parser.parse_args(argv)
    if not 0 < args.level <= 1:
        parser.error(f"argument --level: {args.level:g} is not a violation rate in (0, 1]")
    if args.n_boot < 0:
        parser.error(f"argument --n-boot: {args.n_boot} must be >= 0 (0: no intervals)")
    try:
        out = write_report(args.path, level=args.level, n_boot=args.n_boot)
    except NoRunError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"error: {args.path}: {e.strerror or e}", file=sys.stderr)
        return 2
    print(out / "index.html")
    return 0


if __name__ == "__main__":
    sys.exit(main())
