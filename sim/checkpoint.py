"""Per-round checkpoints, so an interrupted run continues exactly where it stopped.

A checkpoint holds everything that changes during a run: the round counter, every
agent's memory and last action, every RNG (environment, policy, Mesa's), and the
environment's state (capital). Resuming from it yields records identical to an
uninterrupted run with the same seed.

Order within a round: decisions and rounds are written, then the checkpoint, then the
manifest. A crash between the first and the second leaves a recorded round without a
checkpoint; `rewind_records` drops it so that the resumed run writes it again, once.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import polars as pl

from sim.model import TippingModel

FILE = Path("checkpoint") / "state.pkl"


def model_state(model: TippingModel) -> dict:
    return {
        "round": model.round,
        "agents": [
            {"memory": list(a.memory), "action": a.action, "adapter": a.adapter}
            for a in model.population
        ],
        "env": model.env.state_dict(),
        "backend": model.backend.state_dict(),
        "rng": model.rng.bit_generator.state,
        "random": model.random.getstate(),
    }


def load_model_state(model: TippingModel, state: dict) -> None:
    model.round = state["round"]
    for agent, saved in zip(model.population, state["agents"], strict=True):
        agent.memory.clear()
        agent.memory.extend(saved["memory"])
        agent.action = saved["action"]
        agent.adapter = saved["adapter"]
    model.env.load_state_dict(state["env"])
    model.backend.load_state_dict(state["backend"])
    model.rng.bit_generator.state = state["rng"]
    model.random.setstate(state["random"])


def save(model: TippingModel, run_dir: Path) -> None:
    path = run_dir / FILE
    path.parent.mkdir(exist_ok=True)
    tmp = path.with_name(".state.pkl.tmp")
    tmp.write_bytes(pickle.dumps(model_state(model), protocol=pickle.HIGHEST_PROTOCOL))
    os.replace(tmp, path)


def load(run_dir: Path) -> dict | None:
    path = run_dir / FILE
    return pickle.loads(path.read_bytes()) if path.exists() else None


def rewind_records(run_dir: Path, next_round: int) -> None:
    """Drop every record of rounds >= next_round (written after the last checkpoint)."""
    for part in (run_dir / "decisions.parquet").glob("part-*.parquet"):
        if int(part.stem.split("-")[1]) >= next_round:
            part.unlink()
    for name in ("rounds.parquet", "updates.parquet"):
        path = run_dir / name
        if path.exists():
            kept = pl.read_parquet(path).filter(pl.col("round") < next_round)
            tmp = path.with_name(f".{name}.tmp")
            kept.write_parquet(tmp)
            os.replace(tmp, path)
