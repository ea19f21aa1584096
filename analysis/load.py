"""Lazy scans of recorded runs: one run directory, or every run under a sweep directory.

A run is a directory holding `manifest.json` (a directory holding only
`decisions.parquet/` is accepted too, as a run without a manifest). Every scan uses the
explicit schemas of `envs.records`, so runs written by older recorders (missing
columns) mix with new ones: absent columns read as null.

Every scanned row carries the run's identity and parameters as columns:

- `run_dir`: the run directory relative to the scanned path (`"."` for the path itself);
- `status`, `seed`: from the manifest (`status` is `"unknown"` without one);
- one column per command-line override of the run, named by its dotted key
  (`env.threshold`, `policy.model`, ...): the swept parameters of a sweep.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import polars as pl

from analysis.conditions import backfilled
from envs.records import DECISIONS, ROUNDS, UPDATES

RUN = "run_dir"
"""The column that identifies a run in every scanned frame."""

MANIFEST_COLUMNS = pl.Schema(
    {
        RUN: pl.String,
        "run_id": pl.String,
        "seed": pl.Int64,
        "status": pl.String,
        "rounds_completed": pl.Int64,
        "n_rounds": pl.Int64,
        "git_sha": pl.String,
        "started": pl.String,
        "finished": pl.String,
    }
)
"""Columns of `read_manifests` before the parameter columns."""

ROW_COLUMNS = (RUN, "status", "seed")
"""Manifest columns attached to every scanned row (besides the parameters)."""

_SKIP_DIRS = {"report", "adapters", "checkpoint", "decisions.parquet", ".hydra", "__pycache__"}
_CAST = pl.ScanCastOptions(integer_cast="upcast", float_cast="upcast")


class NoRunError(FileNotFoundError):
    """The given path is not a run directory and holds no run below it."""


def is_run_dir(path: Path) -> bool:
    """A run directory holds manifest.json, or at least decisions.parquet."""
    return (path / "manifest.json").is_file() or (path / "decisions.parquet").exists()


def find_runs(path: str | os.PathLike) -> list[Path]:
    """Every run directory at or below `path`, sorted (numerically where names are numbers).

    Raises NoRunError naming `path` when it does not exist or holds no run.
    """
    root = Path(path)
    if not root.exists():
        raise NoRunError(f"{root}: no such directory")
    if not root.is_dir():
        raise NoRunError(f"{root}: not a directory (expected a run or sweep directory)")
    runs: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        dirnames[:] = [d for d in dirnames if d not in _SKIP_DIRS and not d.startswith(".")]
        if "manifest.json" in filenames or (here == root and is_run_dir(here)):
            runs.append(here)
    if not runs:
        raise NoRunError(f"{root}: holds no run (no manifest.json at or below it)")
    return sorted(runs, key=lambda p: _natural_key(p.relative_to(root)))


def _natural_key(rel: Path) -> list[tuple[int, int | str]]:
    return [(0, int(part)) if part.isdigit() else (1, part) for part in rel.parts]


def read_manifest(run: Path) -> dict:
    """The run's manifest as a dict ({} when absent or unreadable, with a warning)."""
    path = Path(run) / "manifest.json"
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        warnings.warn(f"{path}: unreadable manifest ({e}); scanning without it", stacklevel=2)
        return {}
    if not isinstance(data, dict):
        warnings.warn(f"{path}: not a manifest (a JSON object); scanning without it", stacklevel=2)
        return {}
    return data


def _dig(config: dict, dotted: str):
    node = config
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _column_dtype(values: Sequence) -> pl.DataType:
    present = [v for v in values if v is not None]
    if not present:
        return pl.String
    if all(isinstance(v, bool) for v in present):
        return pl.Boolean
    if all(isinstance(v, int) and not isinstance(v, bool) for v in present):
        return pl.Int64
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in present):
        return pl.Float64
    return pl.String


def _as(value, dtype: pl.DataType):
    if value is None:
        return None
    if dtype == pl.String:
        return value if isinstance(value, str) else json.dumps(value, default=str)
    if dtype == pl.Float64:
        return float(value)
    return value


def read_manifests(path: str | os.PathLike, config_keys: Iterable[str] = ()) -> pl.DataFrame:
    """One row per run under `path`: identity, status, and one column per override.

    `config_keys` adds dotted keys of the resolved config (e.g. `"policy.model"`) as
    further columns, for parameters that were not overridden on the command line.
    Override values of one key that mix numbers and text become text.
    """
    root = Path(path)
    runs = find_runs(root)
    config_keys = list(config_keys)
    base, params = [], {}
    for run in runs:
        m = read_manifest(run)
        rel = run.relative_to(root).as_posix()
        base.append(
            {
                RUN: rel,
                "run_id": m.get("run_id"),
                "seed": m.get("seed") if isinstance(m.get("seed"), int) else None,
                "status": m.get("status", "unknown"),
                "rounds_completed": m.get("rounds_completed"),
                "n_rounds": m.get("n_rounds"),
                "git_sha": m.get("git_sha"),
                "started": m.get("started"),
                "finished": m.get("finished"),
            }
        )
        overrides = m.get("overrides") or {}
        if isinstance(overrides, list):  # tolerate raw "key=value" strings
            overrides = dict(o.split("=", 1) for o in overrides if "=" in o)
        row = {k.lstrip("+~"): v for k, v in overrides.items() if not k.startswith("hydra.")}
        for key in config_keys:
            row.setdefault(key, _dig(m.get("config") or {}, key))
        params[rel] = row
    keys: list[str] = []
    for row in params.values():
        keys += [k for k in row if k not in keys]
    reserved = set(MANIFEST_COLUMNS) | set(DECISIONS) | set(ROUNDS) | set(UPDATES)
    columns = {}
    for key in keys:
        if key == "seed":  # the manifest's own seed column already says it
            continue
        values = [params[r[RUN]].get(key) for r in base]
        dtype = _column_dtype(values)
        name = f"param.{key}" if key in reserved else key
        columns[name] = pl.Series(name, [_as(v, dtype) for v in values], dtype=dtype)
    frame = pl.DataFrame(base, schema=MANIFEST_COLUMNS)
    return frame.with_columns(**columns) if columns else frame


def parameter_columns(manifests: pl.DataFrame) -> list[str]:
    """The override (and config) columns of a `read_manifests` frame."""
    return [c for c in manifests.columns if c not in MANIFEST_COLUMNS]


def swept_parameters(manifests: pl.DataFrame) -> list[str]:
    """Parameter columns that take more than one value across the runs (seed excluded)."""
    return [
        c
        for c in parameter_columns(manifests)
        if manifests.get_column(c).n_unique() > 1 and c not in ("seed", "run.seed")
    ]


def _scan_table(
    root: Path,
    name: str,
    schema: pl.Schema,
    config_keys: Iterable[str],
    fill: Callable[[pl.LazyFrame, dict], pl.LazyFrame] | None = None,
) -> pl.LazyFrame:
    manifests = read_manifests(root, config_keys)
    attach = list(ROW_COLUMNS) + parameter_columns(manifests)
    frames = []
    for row in manifests.select(attach).iter_rows(named=True):
        source = root / row[RUN] / name
        if source.is_dir():
            files = sorted(str(p) for p in source.glob("*.parquet") if p.is_file())
        elif source.is_file():
            files = [str(source)]
        else:
            files = []
        if files:
            scan = pl.scan_parquet(
                files,
                schema=schema,
                missing_columns="insert",
                extra_columns="ignore",
                cast_options=_CAST,
                hive_partitioning=False,
                glob=False,
            )
        else:
            scan = pl.LazyFrame(schema=schema)
        if fill is not None:
            scan = fill(scan, read_manifest(root / row[RUN]).get("config") or {})
        meta = [pl.lit(row[c], dtype=manifests.schema[c]).alias(c) for c in attach]
        frames.append(scan.with_columns(meta))
    return pl.concat(frames, how="vertical")


def scan_decisions(path: str | os.PathLike, config_keys: Iterable[str] = ()) -> pl.LazyFrame:
    """Lazy scan of `decisions.parquet/` (one row per agent per round) of a run or sweep.

    Columns: `envs.records.DECISIONS`, then `run_dir`, `status`, `seed` and one
    column per override (see `read_manifests`). A run with no decisions yet adds no rows.
    Condition columns of runs recorded before they existed are filled from the scenario
    id and the config (`analysis.conditions`).
    """
    return _scan_table(Path(path), "decisions.parquet", DECISIONS, config_keys, backfilled)


def scan_rounds(path: str | os.PathLike, config_keys: Iterable[str] = ()) -> pl.LazyFrame:
    """Lazy scan of `rounds.parquet` (one row per round) of a run or sweep, like scan_decisions."""
    return _scan_table(Path(path), "rounds.parquet", ROUNDS, config_keys)


def scan_updates(path: str | os.PathLike, config_keys: Iterable[str] = ()) -> pl.LazyFrame:
    """Lazy scan of `updates.parquet` (one row per LoRA update); empty when never written."""
    return _scan_table(Path(path), "updates.parquet", UPDATES, config_keys)


def latest_run(root: str | os.PathLike) -> Path | None:
    """The most recently started run at or below `root` (by manifest mtime), or None."""
    try:
        runs = find_runs(root)
    except NoRunError:
        return None
    return max(
        runs,
        key=lambda r: (
            (r / "manifest.json").stat().st_mtime if (r / "manifest.json").exists() else 0.0
        ),
    )
