"""Per-round checkpoints, so an interrupted run continues exactly where it stopped.

A checkpoint holds everything that changes during a run: the round counter, every
agent's memory, last action and adapter, every RNG (environment, policy, Mesa's), the
environment's state (capital) and evolution's (experience buffers, adapter lineage).
Resuming from it yields records identical to an uninterrupted run with the same seed.

Order within a round: decisions and rounds are written, then LoRA updates (adapter
directories, then their rows), then the checkpoint, then the manifest. A crash before
the checkpoint leaves records and adapter versions the checkpoint does not know;
`rewind_records` and the lineage's rewind drop them, and the resumed run writes them
again, once.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import polars as pl

from sim.model import TippingModel, collector_paused

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


def save(model: TippingModel, run_dir: Path, evolution=None) -> None:
    state = model_state(model)
    if evolution is not None:
        state["evolution"] = evolution.state_dict()
    path = run_dir / FILE
    path.parent.mkdir(exist_ok=True)
    tmp = path.with_name(".state.pkl.tmp")
    with collector_paused():
        tmp.write_bytes(pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL))
    os.replace(tmp, path)


def load(run_dir: Path) -> dict | None:
    path = run_dir / FILE
    if not path.exists():
        return None
    with collector_paused():
        return pickle.loads(path.read_bytes())


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
