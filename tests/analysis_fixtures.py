"""Run directories written directly with the record schema, for the analysis tests.

`write_run` lays out what sim/recorder.py writes: decisions.parquet/part-NNNNN.parquet
(one part per round), rounds.parquet and manifest.json.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl

from envs.records import DECISIONS, ROUNDS


def decisions_frame(rows: list[dict] | dict, run_id: str = "run") -> pl.DataFrame:
    """A DECISIONS-schema frame from partial rows (missing columns null, valid derived)."""
    frame = pl.DataFrame(rows)
    frame = frame.with_columns(
        [
            pl.lit(None, dtype=dtype).alias(name)
            for name, dtype in DECISIONS.items()
            if name not in frame.columns
        ]
    )
    frame = frame.with_columns(
        run_id=pl.col("run_id").fill_null(run_id),
        valid=pl.col("valid").fill_null(pl.col("violated").is_not_null()),
        group=pl.col("group").fill_null(0),
        paradigm=pl.col("paradigm").fill_null("threshold"),
    )
    return frame.select(DECISIONS.names()).cast(DECISIONS)


def write_run(
    run_dir: Path,
    decisions: pl.DataFrame,
    overrides: dict | None = None,
    status: str = "complete",
    seed: int = 0,
    manifest: bool = True,
    config: dict | None = None,
) -> Path:
    """Write a run directory from a DECISIONS frame; returns run_dir."""
    run_dir = Path(run_dir)
    parts = run_dir / "decisions.parquet"
    parts.mkdir(parents=True, exist_ok=True)
    rounds = sorted(decisions.get_column("round").unique().to_list())
    for t in rounds:
        decisions.filter(pl.col("round") == t).write_parquet(parts / f"part-{t:05d}.parquet")
    summary = (
        decisions.group_by("run_id", "round")
        .agg(
            n_agents=pl.len(),
            n_valid=pl.col("valid").sum(),
            violation_rate=pl.col("violated").mean(),
            mean_p_violate=pl.col("p_violate").mean(),
            mean_reward=pl.col("reward").mean(),
            mean_capital=pl.col("capital").mean(),
        )
        .with_columns(decide_s=pl.lit(0.01), wall_s=pl.lit(0.02))
        .sort("round")
        .cast({k: v for k, v in ROUNDS.items()})
        .select(ROUNDS.names())
    )
    summary.write_parquet(run_dir / "rounds.parquet")
    if manifest:
        run_id = decisions.get_column("run_id").first() if len(decisions) else run_dir.name
        data = {
            "run_id": run_id,
            "seed": seed,
            "status": status,
            "rounds_completed": len(rounds),
            "n_rounds": len(rounds),
            "overrides": {"seed": seed, **(overrides or {})},
            "config": {"seed": seed, "env": {"name": "threshold"}, **(config or {})},
            "packages": {},
            "git_sha": None,
            "started": "2025-01-01T00:00:00+00:00",
            "finished": "2025-01-01T00:01:00+00:00",
        }
        (run_dir / "manifest.json").write_text(json.dumps(data))
    return run_dir


def synthetic_decisions(
    n_agents: int = 12,
    n_rounds: int = 20,
    tip_round: int | None = 10,
    seed: int = 0,
    run_id: str = "run",
    ring: bool = True,
    p_start: float = 0.05,
    p_end: float = 0.95,
) -> pl.DataFrame:
    """A small run whose p_violate rises logistically around `tip_round`; agents on a ring.

    Violations are drawn from p_violate; neighbour counts are those of the ring's two
    neighbours in the previous round. tip_round=None keeps p at p_start throughout.
    """
    rng = np.random.default_rng(seed)
    t = np.arange(n_rounds)
    if tip_round is None:
        p_round = np.full(n_rounds, p_start)
    else:
        p_round = p_start + (p_end - p_start) / (1 + np.exp(-(t - tip_round + 0.5) * 1.2))
    p = np.clip(p_round[:, None] + rng.normal(0, 0.02, (n_rounds, n_agents)), 0.001, 0.999)
    v = rng.random((n_rounds, n_agents)) < p
    left, right = np.roll(v, 1, axis=1), np.roll(v, -1, axis=1)
    nviol = np.zeros_like(v, dtype=int)
    nviol[1:] = (left[:-1].astype(int) + right[:-1].astype(int)) if ring else 0
    rounds, agents = np.meshgrid(t, np.arange(n_agents), indexing="ij")
    rows = {
        "round": rounds.ravel(),
        "agent": agents.ravel(),
        "group": agents.ravel() % 3,
        "violated": v.ravel(),
        "choice": np.where(v.ravel(), "A", "B"),
        "p_violate": p.ravel(),
        "reward": np.where(v.ravel(), 2.0, 1.0),
        "n_neighbors": np.full(v.size, 2 if ring else 0),
    }
    frame = decisions_frame(rows, run_id=run_id)
    if ring:
        share = np.where(rounds.ravel() > 0, nviol.ravel() / 2, np.nan)
        frame = frame.with_columns(
            n_violating_neighbors=pl.Series(nviol.ravel(), dtype=pl.Int32),
            share_violating_neighbors=pl.Series(share).fill_nan(None),
        )
    return frame
