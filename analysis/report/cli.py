"""`python -m analysis.report PATH [--by COL,...]`: a run's or a sweep's report.

`by=COL,...` (Hydra's spelling) is accepted for `--by COL,...`.
"""

from __future__ import annotations

import argparse
import sys

import polars as pl
import pyarrow as pa

from analysis.load import NoRunError, find_runs
from analysis.report import UnknownColumnError, write_report

# Columns every recorded decision part has had, in every version of the records.
CORE = ("run_id", "round", "agent", "choice", "violated", "p_violate", "reward")


def check_records(path: str) -> None:
    """Each run's decision parts are Parquet files with the core columns; else NoRunError
    naming the first one that is not, before the report reads anything."""
    for run in find_runs(path):
        for part in sorted((run / "decisions.parquet").glob("part-*.parquet")):
            try:
                names = pl.read_parquet_schema(part)
            except (pl.exceptions.PolarsError, OSError) as e:
                raise NoRunError(
                    f"{part}: not a readable Parquet file ({type(e).__name__})"
                ) from None
            missing = [c for c in CORE if c not in names]
            if missing:
                raise NoRunError(f"{part}: not a decision record (no {', '.join(missing)})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m analysis.report",
        description="Write PATH/report/ (index.html, summary.md, figures) for a run or sweep.",
    )
    parser.add_argument("path", help="a run directory or a sweep directory")
    parser.add_argument("--level", type=float, default=0.5, help="tipping level (default 0.5)")
    parser.add_argument("--n-boot", type=int, default=500, help="bootstrap replicates")
    parser.add_argument(
        "--by",
        help="condition columns to compare, comma-separated (default: the preset's report.by)",
    )
    argv = sys.argv[1:] if argv is None else argv
    args = parser.parse_args([f"--by={a[3:]}" if a.startswith("by=") else a for a in argv])
    by = None if args.by is None else [c.strip() for c in args.by.split(",") if c.strip()]
    if not 0 < args.level <= 1:
        parser.error(f"argument --level: {args.level:g} is not a violation rate in (0, 1]")
    if args.n_boot < 0:
        parser.error(f"argument --n-boot: {args.n_boot} must be >= 0 (0: no intervals)")
    try:
        check_records(args.path)
        out = write_report(args.path, level=args.level, n_boot=args.n_boot, by=by)
    except (NoRunError, UnknownColumnError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"error: {args.path}: {e.strerror or e}", file=sys.stderr)
        return 2
    except (pl.exceptions.PolarsError, pa.ArrowException) as e:  # damaged or foreign records
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        print(
            f"error: {args.path}: unreadable records ({type(e).__name__}: {first})", file=sys.stderr
        )
        return 2
    print(out / "index.html")
    return 0
