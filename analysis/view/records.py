"""What the live view reads from a run or a sweep directory, as the run writes it.

Every record file is replaced atomically once per round, so a read sees whole rounds;
the view re-reads when `signature` changes.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from analysis.load import (
    MANIFEST_COLUMNS,
    NoRunError,
    find_runs,
    read_manifests,
    scan_decisions,
    scan_updates,
    swept_parameters,
)
from analysis.plots import MAX_LINES
from analysis.rates import violation_rate_by_round
from envs.records import CONDITIONS, DECISIONS, GRAPH

RECORDS = ("manifest.json", "rounds.parquet", "updates.parquet")
COLUMNS = ("agent", "round", "violated", "p_violate")  # what the graph and histogram draw
N_BOOT = 200  # bootstrap replicates of the curves' intervals: enough for a live band


def run_dirs(path: Path) -> list[Path]:
    """The runs at or below path; none yet while a run or sweep is starting."""
    try:
        return find_runs(path)
    except NoRunError:
        return []


def signature(path: Path) -> tuple:
    """Changes whenever a run under path starts, records a round, an update or a status."""
    out = []
    for run in run_dirs(path):
        for name in RECORDS:
            file = run / name
            out.append(file.stat().st_mtime_ns if file.exists() else None)
    return tuple(out)


def runs(path: Path) -> pl.DataFrame:
    """Per run: run_dir, status, rounds_completed, n_rounds and the swept parameters."""
    return read_manifests(path) if run_dirs(path) else pl.DataFrame(schema=MANIFEST_COLUMNS)


def conditions(path: Path) -> list[str]:
    """What a curve can be split by: the sweep's swept values, and the decision columns of
    the conditions (payoffs, threshold, schedule, ...) that differ between agents."""
    runs = run_dirs(path)
    swept = swept_parameters(read_manifests(path)) if runs else []
    first = rounds_of(runs[0], [0], [*CONDITIONS, "supervision"]) if runs else pl.DataFrame()
    varying = [c for c in first.columns if 1 < first.get_column(c).n_unique() <= MAX_LINES]
    return [*swept, *varying]


def violation_curves(path: Path, by: str | None) -> pl.DataFrame:
    """Violation rate per round (per value of `by`) with a bootstrap interval over agents."""
    decisions = scan_decisions(path)
    return violation_rate_by_round(decisions, by=[by] if by else [], n_boot=N_BOOT)


def rounds_of(run: Path, rounds: list[int], columns=COLUMNS) -> pl.DataFrame:
    """The run's decisions in the given rounds (by default what the graph and the
    histogram draw: agent, round, violated, p_violate)."""
    parts = [run / "decisions.parquet" / f"part-{t:05d}.parquet" for t in rounds]
    parts = [str(p) for p in parts if p.exists()]
    if not parts:
        return pl.DataFrame(schema={c: DECISIONS[c] for c in columns})
    scan = pl.scan_parquet(
        parts, schema=DECISIONS, missing_columns="insert", extra_columns="ignore"
    )
    return scan.select(columns).collect()  # runs recorded before a column have it null


def last_round(run: Path) -> pl.DataFrame:
    """The run's latest recorded round: one row per agent."""
    parts = sorted((run / "decisions.parquet").glob("part-*.parquet"))
    return rounds_of(run, [int(parts[-1].stem.split("-")[1])] if parts else [])


def graph(run: Path) -> pl.DataFrame:
    """The run's population graph (source, target), empty for runs recorded without one."""
    file = run / "graph.parquet"
    return pl.read_parquet(file) if file.exists() else pl.DataFrame(schema=GRAPH)


def guard_rates(path: Path) -> pl.DataFrame:
    """Per run and round of a guarded run: violation rate proposed (the agents' own
    choices) and executed (after the guard), and the share the guard changed. Empty
    without a guard (its columns are null then)."""
    return (
        scan_decisions(path)
        .filter(pl.col("proposed_violated").is_not_null())
        .group_by("run_dir", "round")
        .agg(
            proposed=pl.col("proposed_violated").mean(),
            executed=pl.col("violated").mean(),
            changed=pl.col("guard_changed").mean(),
        )
        .sort("run_dir", "round")
        .collect()
    )


def updates(path: Path) -> pl.DataFrame:
    """The runs' LoRA updates: run_dir, round, owner, version, loss, kl, ..."""
    return scan_updates(path).collect()
