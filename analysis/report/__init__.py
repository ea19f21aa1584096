"""The report of a run or a sweep: `PATH/report/` with index.html, summary.md, figures, tables.

    python -m analysis.report PATH [--level 0.5] [--n-boot 500]

PATH is a run directory (holds manifest.json) or a sweep directory (runs below it).
`write_report(path)` is what a run's Hydra callback calls at its end: it reads only the
recorded files, copes with tiny runs (one round, one agent, no neighbours, no
p_violate, no tipping) and takes a few seconds. Sections live in `report.run` and
`report.sweep`, the page and its header in `report.page`, HTML and Markdown in
`report.render`, the command line in `report.cli`.
"""

from __future__ import annotations

import time
from pathlib import Path

from analysis.load import (
    RUN,
    find_runs,
    is_run_dir,
    parameter_columns,
    read_manifests,
    scan_decisions,
)
from analysis.report.page import Inputs, Page, header_facts
from analysis.report.render import page_html, page_markdown
from analysis.report.run import run_report
from analysis.report.sweep import sweep_report

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
        header_facts(page, inputs, single)
    elif single:
        run_report(page, inputs)
    else:
        sweep_report(page, inputs)
    page.facts.append(("report written in", f"{time.perf_counter() - started:.1f} s"))
    (out / "index.html").write_text(page_html(page))
    (out / "summary.md").write_text(page_markdown(page))
    return out
