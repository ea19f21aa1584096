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

import os
import time
from pathlib import Path

from analysis.load import (
    RUN,
    find_runs,
    is_run_dir,
    parameter_columns,
    read_manifest,
    read_manifests,
    scan_decisions,
)
from analysis.report.page import Inputs, Page, header_facts
from analysis.report.render import page_html, page_markdown
from analysis.report.run import run_report
from analysis.report.sweep import sweep_report
from analysis.units import coarsest, interaction_unit, sees_neighbours, with_components
from envs.records import DECISIONS

COLUMNS = tuple(c for c in DECISIONS if c not in ("text", "prompt"))
"""The decision columns the report reads (answer texts and prompts stay on disk)."""


class UnknownColumnError(ValueError):
    """A `by` column that the records do not have."""


def write_report(
    path, level: float = 0.5, n_boot: int = 500, seed: int = 0, by: list[str] | None = None
) -> Path:
    """Write `path/report/` for the run or sweep at `path`; returns the report directory.

    by: the condition columns to draw one curve per value of; None takes what the runs'
    configs declare (`report.by` of the experiment preset). Raises NoRunError (a
    FileNotFoundError) naming `path` when it holds no run, UnknownColumnError for a `by`
    column the records lack.
    """
    root = Path(path)
    runs = find_runs(root)
    manifests = read_manifests(root)
    params = parameter_columns(manifests)
    scan = scan_decisions(root)
    configs = [read_manifest(run).get("config") or {} for run in runs]
    if by is None:
        declared = ((c.get("report") or {}).get("by") or [] for c in configs)
        by = list(dict.fromkeys(col for cols in declared for col in cols))
    columns = scan.collect_schema().names()
    unknown = [c for c in by if c not in columns]
    if unknown:
        raise UnknownColumnError(
            f"by: no column {unknown[0]!r} in the records; expected one of "
            f"{', '.join(c for c in columns if c not in ('text', 'prompt'))}"
        )
    out = root / "report"
    out.mkdir(parents=True, exist_ok=True)
    (out / "tables").mkdir(exist_ok=True)
    for stale in [*out.glob("*.png"), *out.glob("*.svg"), *(out / "tables").glob("*.csv")]:
        stale.unlink()  # figures of an earlier report that this one may not draw
    wanted = dict.fromkeys([*COLUMNS, RUN, "status", "seed", *params, *by])
    frame = scan.select(*wanted).collect()
    unit = coarsest(interaction_unit(c) for c in configs)
    if unit == "run":  # a population graph: its connected components, where recorded
        by_run = {run.relative_to(root).as_posix(): c for run, c in zip(runs, configs, strict=True)}
        split = with_components(root, frame, by_run)
        frame, unit = (frame, unit) if split is None else (split, "component")
    single = len(runs) == 1 and is_run_dir(root)
    page = Page(f"tiplab report: {'run' if single else 'sweep'} {root.resolve().name}", out)
    inputs = Inputs(
        root,
        manifests,
        frame,
        level,
        n_boot,
        seed,
        by=[c for c in by if frame.get_column(c).n_unique() > 1],
        unit=unit,
        sees=any(sees_neighbours(c) for c in configs)
        and frame.get_column("n_neighbors").max() not in (None, 0),
    )
    started = time.perf_counter()
    if frame.is_empty():
        page.notes.append("No decisions recorded yet.")
        header_facts(page, inputs, single)
    elif single:
        run_report(page, inputs)
    else:
        sweep_report(page, inputs)
    page.facts.append(("report written in", f"{time.perf_counter() - started:.1f} s"))
    # The page last, whole or not at all: a report cut short (a kill) has no index.html.
    (out / "summary.md").write_text(page_markdown(page))
    tmp = out / ".index.html.tmp"
    tmp.write_text(page_html(page))
    os.replace(tmp, out / "index.html")
    return out
