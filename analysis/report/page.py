"""What a report is made of: its inputs, the page it accumulates, and the header facts."""

from __future__ import annotations

import math
import traceback
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from analysis.load import RUN, read_manifest, swept_parameters


@dataclass(frozen=True)
class Inputs:
    """What every section reads: the records under `root` and the analysis settings."""

    root: Path
    manifests: pl.DataFrame
    decisions: pl.DataFrame
    level: float  # the violation rate that counts as tipped
    n_boot: int
    seed: int
    by: list[str] = field(default_factory=list)  # conditions compared (more than one value)
    unit: str = "agent"  # what the bootstrap resamples within a run (analysis.units)
    sees: bool = False  # whether agents see each other's choices (diffusion is defined)


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


def section(page: Page, name: str, fn: Callable, *args):
    """fn(*args), one section; a failure becomes a note on the page, not a failed run."""
    try:
        return fn(*args)
    except Exception as e:  # noqa: BLE001  (a report must not sink the run that wrote it)
        page.notes.append(f"{name} failed: {type(e).__name__}: {e}")
        warnings.warn(f"report: {name} failed:\n{traceback.format_exc()}", stacklevel=2)
        return None


def fmt(x, digits: int = 3, none: str = "n/a") -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return none
    if isinstance(x, float):
        return f"{x:.{digits}f}"
    return str(x)


def ci(x, lo, hi) -> str:
    return f"{fmt(x)} [{fmt(lo)}, {fmt(hi)}]" if lo is not None else fmt(x)


def header_facts(page: Page, inputs: Inputs, single: bool) -> None:
    """The run's identity (or the sweep's runs and swept parameters), agents, rounds."""
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
