"""Records of a run: decisions appended and flushed every round, round summaries, updates.

Every file is written to a temporary name and moved into place, so a crash leaves each
completed round readable and never a half-written Parquet file.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from functools import cached_property
from pathlib import Path

import numpy as np
import polars as pl

from agents.decision import Decision, DecisionRequest, PeerAction
from agents.guard import Review
from envs.base import Environment, Outcome
from envs.records import CONDITIONS, DECISIONS, GRAPH, GUARD, REFERENCES, ROUNDS, UPDATES
from sim.graph import Neighbors


def write_atomic(frame: pl.DataFrame, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    frame.write_parquet(tmp)
    os.replace(tmp, path)


def exposure(neighbors: Neighbors, actions: Sequence[PeerAction | None]) -> dict[str, pl.Series]:
    """Per agent, what its neighbours did in their last round, as the decision columns.

    n_violating_neighbors is null while no neighbour has played; the share counts only
    neighbours with a valid choice (null without one); each mean payoff is null without
    a neighbour of that kind. One vectorised pass over the neighbour arrays.
    """
    n = len(actions)
    played = np.fromiter((a is not None for a in actions), float, n)
    violated = np.fromiter((a is not None and a.violated is True for a in actions), float, n)
    complied = np.fromiter((a is not None and a.violated is False for a in actions), float, n)
    reward = np.fromiter((0.0 if a is None else a.reward for a in actions), float, n)
    seen, n_violating, n_complying = (neighbors.sums(x) for x in (played, violated, complied))
    with np.errstate(divide="ignore", invalid="ignore"):
        columns = {
            "n_violating_neighbors": np.where(seen > 0, n_violating, np.nan),
            "share_violating_neighbors": n_violating / (n_violating + n_complying),
            "mean_payoff_violating_neighbors": neighbors.sums(reward * violated) / n_violating,
            "mean_payoff_complying_neighbors": neighbors.sums(reward * complied) / n_complying,
        }
    return {
        name: pl.Series(name, values, nan_to_null=True).cast(DECISIONS[name])
        for name, values in columns.items()
    }


def guard_columns(
    requests: Sequence[DecisionRequest], proposed: Sequence[Decision], reviews: Sequence[Review]
) -> dict[str, list]:
    """The GUARD columns of a guarded round: the proposal and what the guard made of it."""
    return {
        "proposed": [d.choice for d in proposed],
        "proposed_violated": [
            r.choices.is_violation(d.choice) for r, d in zip(requests, proposed, strict=True)
        ],
        "guard_changed": [r.changed for r in reviews],
        "guard_p_correct": [r.p_correct for r in reviews],
    }


class Recorder:
    """Writes the run directory's Parquet records (layout in README, schema in envs.records)."""

    def __init__(self, run_dir: Path, run_id: str, record_prompts: bool = False):
        self.run_dir = Path(run_dir)
        self.run_id = run_id
        self.record_prompts = record_prompts
        self.decisions_dir = self.run_dir / "decisions.parquet"
        self._conditions: tuple[Environment, pl.DataFrame] | None = None

    @cached_property
    def rounds(self) -> pl.DataFrame:
        """The round summaries so far: read at first use, so that a resumed run's records
        are those left after rewinding to its checkpoint."""
        return self._read(self.run_dir / "rounds.parquet", ROUNDS)

    @cached_property
    def updates(self) -> pl.DataFrame:
        return self._read(self.run_dir / "updates.parquet", UPDATES)

    @cached_property
    def references(self) -> pl.DataFrame:
        return self._read(self.run_dir / "references.parquet", REFERENCES)

    @staticmethod
    def _read(path: Path, schema: pl.Schema) -> pl.DataFrame:
        return pl.read_parquet(path) if path.exists() else pl.DataFrame(schema=schema)

    def conditions(self, env: Environment) -> pl.DataFrame:
        """The environment's condition columns, one row per agent slot (computed once)."""
        if self._conditions is None or self._conditions[0] is not env:
            rows = [tuple(getattr(c, name) for name in CONDITIONS) for c in env.conditions()]
            frame = pl.DataFrame(rows, schema=CONDITIONS, orient="row")
            self._conditions = (env, frame)
        return self._conditions[1]

    def write_round(
        self,
        t: int,
        env: Environment,
        supervision: Sequence[str | None],
        requests: Sequence[DecisionRequest],
        decisions: Sequence[Decision],
        outcomes: Sequence[Outcome],
        n_neighbors: np.ndarray,
        exposure: Mapping[str, pl.Series],
        decide_s: float,
        wall_s: float,
        reviews: Sequence[Review] | None = None,
    ) -> pl.DataFrame:
        """Append round t's decisions and its summary row; returns the decisions frame.

        With a guard's `reviews`, the choice columns are the reviewed (executed) choice's
        and the GUARD columns hold the proposal. Built column by column: one list per
        field rather than one dict per agent.
        """
        share = decide_s / max(len(decisions), 1)
        agent = [r.agent_id for r in requests]
        executed = decisions if reviews is None else [r.decision for r in reviews]
        choice = [d.choice for d in executed]
        conditions = self.conditions(env)[agent]
        columns = {
            "run_id": self.run_id,
            "round": t,
            "agent": agent,
            "group": [env.group[i] for i in agent],
            "paradigm": env.paradigm,
            "scenario": [env.scenarios[i].id for i in agent],
            **conditions.to_dict(),
            "supervision": list(supervision),
            "choice": choice,
            "valid": [c is not None for c in choice],
            "violated": [r.choices.is_violation(c) for r, c in zip(requests, choice, strict=True)],
            "p_violate": [d.p_violate for d in decisions],
            "reward": [o.reward for o in outcomes],
            "capital": [o.capital for o in outcomes],
            "adapter": [r.adapter for r in requests],
            "n_neighbors": n_neighbors,
            **exposure,
            "prompt_tokens": [d.prompt_tokens for d in decisions],
            "completion_tokens": [d.completion_tokens for d in decisions],
            "latency_s": [d.latency_s or share for d in decisions],
            "text": [d.text for d in decisions],
            "prompt": [json.dumps(r.messages) if r.messages else None for r in requests]
            if self.record_prompts
            else None,
        }
        schema = DECISIONS
        if reviews is None:
            schema = pl.Schema({k: v for k, v in DECISIONS.items() if k not in GUARD})
        else:
            columns |= guard_columns(requests, decisions, reviews)
        frame = pl.DataFrame({name: columns[name] for name in schema}, schema=schema)
        self.decisions_dir.mkdir(parents=True, exist_ok=True)
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

    def write_references(self, rows: Sequence[dict]) -> None:
        """Append rows of reference distances (agents/reference.py)."""
        new = pl.DataFrame([{"run_id": self.run_id, **r} for r in rows], schema=REFERENCES)
        self.references = pl.concat([self.references, new])
        write_atomic(self.references, self.run_dir / "references.parquet")

    def write_graph(self, neighbors: Neighbors) -> None:
        """graph.parquet: who sees whom, so readers (the live view) draw the population."""
        source, target = neighbors.rows, neighbors.indices
        edges = {"source": source[source < target], "target": target[source < target]}
        self.run_dir.mkdir(parents=True, exist_ok=True)
        write_atomic(pl.DataFrame(edges, schema=GRAPH), self.run_dir / "graph.parquet")
