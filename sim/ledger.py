"""The record ledger: per round, the decision part a run wrote, its rows and its checksum.

Kept in manifest.json under "ledger" (round -> entry), written every round before the
checkpoint. A resumed run checks every round its checkpoint covers against it, and a
run is marked complete only once all its rounds check: a missing, extra, changed or
unreadable record file is an InputError naming the file, never a silently shorter run.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq

from envs.errors import InputError

PART = re.compile(r"part-(\d{5})\.parquet")


def part_path(run_dir: Path, t: int) -> Path:
    return Path(run_dir) / "decisions.parquet" / f"part-{t:05d}.parquet"


def sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def entry(run_dir: Path, t: int, updates: pl.DataFrame) -> dict:
    """Round t's ledger entry: its decision part's rows and checksum, its update rows."""
    path = part_path(run_dir, t)
    return {
        "rows": pq.read_metadata(path).num_rows,
        "sha256": sha256(path),
        "updates": updates.filter(pl.col("round") == t).height,
    }


def readable(path: Path) -> pl.DataFrame:
    try:
        return pl.read_parquet(path)
    except Exception as e:  # polars raises several types for a damaged file
        raise InputError(f"{path}: not a readable Parquet file ({type(e).__name__})") from None


def verify(run_dir: Path, ledger: dict, rounds: int, n_rounds: int) -> None:
    """Rounds 0..rounds-1 on disk are exactly what the ledger records; else an InputError.

    Decision parts of later rounds (written after the last checkpoint) may exist; parts
    beyond the run's n_rounds, or files that are not parts, may not.
    """
    run_dir = Path(run_dir)
    manifest = run_dir / "manifest.json"
    parts = run_dir / "decisions.parquet"
    if rounds and not parts.is_dir():
        raise InputError(f"{parts}: missing; the ledger records {rounds} rounds")
    for path in sorted(parts.iterdir()) if parts.is_dir() else ():
        match = PART.fullmatch(path.name)
        if path.name.startswith("."):
            continue
        if match is None or int(match[1]) >= n_rounds:
            raise InputError(f"{path}: not a record of this run; move it out of the run directory")
    for t in range(rounds):
        recorded = ledger.get(str(t))
        if not isinstance(recorded, dict) or not {"rows", "sha256", "updates"} <= set(recorded):
            raise InputError(f"{manifest}: the ledger has no entry for round {t}")
        path = part_path(run_dir, t)
        if not path.is_file():
            raise InputError(f"{path}: missing; the ledger records {recorded['rows']} rows")
        if sha256(path) != recorded["sha256"]:
            raise InputError(f"{path}: changed or damaged since it was written (checksum differs)")
    check_rounds_file(run_dir, rounds)
    check_updates_file(run_dir, ledger, rounds)


def check_rounds_file(run_dir: Path, rounds: int) -> None:
    path = run_dir / "rounds.parquet"
    if not rounds:
        return
    if not path.is_file():
        raise InputError(f"{path}: missing; the ledger records {rounds} rounds")
    frame = readable(path)
    if "round" not in frame.columns:
        raise InputError(f"{path}: has no 'round' column")
    kept = sorted(r for r in frame["round"].to_list() if r is not None and r < rounds)
    if kept != list(range(rounds)):
        raise InputError(f"{path}: holds rounds {kept[:5]}..., not rounds 0-{rounds - 1}")


def check_updates_file(run_dir: Path, ledger: dict, rounds: int) -> None:
    path = run_dir / "updates.parquet"
    expected = sum(ledger[str(t)]["updates"] for t in range(rounds))
    if not path.is_file():
        if expected:
            raise InputError(f"{path}: missing; the ledger records {expected} updates")
        return
    frame = readable(path)
    if "round" not in frame.columns:
        raise InputError(f"{path}: has no 'round' column")
    found = frame.filter(pl.col("round") < rounds).height
    if found != expected:
        raise InputError(f"{path}: {found} updates where the ledger records {expected}")
