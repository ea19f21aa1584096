"""Records of a run: decisions appended and flushed every round, round summaries, updates.

Every file is written to a temporary name and moved into place, so a crash leaves each
completed round readable and never a half-written Parquet file.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import polars as pl

from agents.decision import Decision, DecisionRequest
from analysis.schema import DECISIONS, ROUNDS, UPDATES
from envs.base import Environment, Outcome


def write_atomic(frame: pl.DataFrame, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    frame.write_parquet(tmp)
    os.replace(tmp, path)


def exposure(request: DecisionRequest) -> dict:
    """How many neighbours violated last round, and what violating and complying paid them."""
    peers = [p for p in request.peers if p.violated is not None]
    violating = [p.reward for p in peers if p.violated]
    complying = [p.reward for p in peers if not p.violated]
    return {
        "n_violating_neighbors": len(violating),
        "share_violating_neighbors": len(violating) / len(peers) if peers else None,
        "mean_payoff_violating_neighbors": float(np.mean(violating)) if violating else None,
        "mean_payoff_complying_neighbors": float(np.mean(complying)) if complying else None,
    }


class Recorder:
    """Writes the run directory's Parquet records (layout in README, schema in analysis.schema)."""

    def __init__(self, run_dir: Path, run_id: str):
        self.run_dir = Path(run_dir)
        self.run_id = run_id
        self.decisions_dir = self.run_dir / "decisions.parquet"
        self.decisions_dir.mkdir(parents=True, exist_ok=True)
        self.rounds = self._read(self.run_dir / "rounds.parquet", ROUNDS)
        self.updates = self._read(self.run_dir / "updates.parquet", UPDATES)

    @staticmethod
    def _read(path: Path, schema: pl.Schema) -> pl.DataFrame:
        return pl.read_parquet(path) if path.exists() else pl.DataFrame(schema=schema)

    def write_round(
        self,
        t: int,
        env: Environment,
        supervision: Sequence[str | None],
        requests: Sequence[DecisionRequest],
        decisions: Sequence[Decision],
        outcomes: Sequence[Outcome],
        n_neighbors: Sequence[int],
        decide_s: float,
        wall_s: float,
    ) -> pl.DataFrame:
        """Append round t's decisions and its summary row; returns the decisions frame."""
        n = len(decisions)
        share = decide_s / max(n, 1)
        rows = [
            {
                "run_id": self.run_id,
                "round": t,
                "agent": r.agent_id,
                "group": env.group[r.agent_id],
                "paradigm": env.paradigm,
                "scenario": env.scenarios[r.agent_id].id,
                "supervision": s,
                "choice": d.choice,
                "valid": d.valid,
                "violated": r.choices.is_violation(d.choice),
                "p_violate": d.p_violate,
                "reward": o.reward,
                "capital": o.capital,
                "adapter": r.adapter,
                "n_neighbors": k,
                **exposure(r),
                "prompt_tokens": d.prompt_tokens,
                "completion_tokens": d.completion_tokens,
                "latency_s": d.latency_s or share,
                "text": d.text,
            }
            for r, d, o, s, k in zip(
                requests, decisions, outcomes, supervision, n_neighbors, strict=True
            )
        ]
        frame = pl.DataFrame(rows, schema=DECISIONS)
        write_atomic(frame, self.decisions_dir / f"part-{t:05d}.parquet")
        summary = frame.select(
            pl.lit(self.run_id).alias("run_id"),
            pl.lit(t, pl.Int32).alias("round"),
            pl.len().cast(pl.Int32).alias("n_agents"),
            pl.col("valid").sum().cast(pl.Int32).alias("n_valid"),
            pl.col("violated").mean().alias("violation_rate"),
            pl.col("p_violate").mean().alias("mean_p_violate"),
            pl.col("reward").mean().alias("mean_reward"),
            pl.col("capital").mean().alias("mean_capital"),
            pl.lit(decide_s).alias("decide_s"),
            pl.lit(wall_s).alias("wall_s"),
        ).cast(ROUNDS)
        self.rounds = pl.concat([self.rounds.filter(pl.col("round") != t), summary])
        write_atomic(self.rounds, self.run_dir / "rounds.parquet")
        return frame

    def write_updates(self, rows: Sequence[dict]) -> None:
        """Append rows of LoRA updates (one per new adapter version)."""
        new = pl.DataFrame([{"run_id": self.run_id, **r} for r in rows], schema=UPDATES)
        self.updates = pl.concat([self.updates, new])
        write_atomic(self.updates, self.run_dir / "updates.parquet")
