"""Per-round checkpoints, so an interrupted run continues exactly where it stopped.

A checkpoint holds everything that changes during a run: the round counter, every
agent's memory, last action and adapter, every RNG (environment, policy, Mesa's), the
environment's state (capital) and each learner's (evolution: experience buffers, adapter
lineage).
Resuming from it yields records identical to an uninterrupted run with the same seed.

It is JSON, never pickle: loading one runs no code. Dataclasses are written with their
name and rebuilt only from a fixed list of the project's record types; tuples keep
their type (Python's random state needs them). A file that is not such a checkpoint,
or one written by another run, is an InputError naming it, and nothing is deleted.

Order within a round: decisions and rounds are written, then LoRA updates (adapter
directories, then their rows), then the manifest's ledger, then the checkpoint. A crash
before the checkpoint leaves records and adapter versions the checkpoint does not know;
`rewind_records` and the lineage's rewind drop them, and the resumed run writes them
again, once.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import os
from pathlib import Path

import numpy as np
import polars as pl

from envs.errors import InputError
from sim.model import TippingModel, collector_paused

FILE = Path("checkpoint") / "state.json"
FORMAT = "tiplab-checkpoint/1"
# The only types a checkpoint may name (module, class): records, never code.
TYPES = {
    "envs.base.Choices",
    "agents.decision.Experience",
    "agents.decision.PeerAction",
    "agents.decision.DecisionRequest",
    "agents.decision.Decision",
    "agents.evolution.buffer.Sample",
    "agents.evolution.lineage.Version",
}


def encode(obj):
    """obj as JSON-ready data: dataclasses and tuples tagged, numpy scalars as Python's."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        name = f"{type(obj).__module__}.{type(obj).__qualname__}"
        if name not in TYPES:
            raise TypeError(f"checkpoint: {name} is not a checkpoint record type")
        fields = {f.name: encode(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
        return {"__type__": name, "fields": fields}
    if isinstance(obj, tuple):
        return {"__tuple__": [encode(x) for x in obj]}
    if isinstance(obj, list):
        return [encode(x) for x in obj]
    if isinstance(obj, dict):
        if all(isinstance(k, str) for k in obj):
            return {k: encode(v) for k, v in obj.items()}
        return {"__items__": [[encode(k), encode(v)] for k, v in obj.items()]}
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    return obj


def decode(data, path: Path):
    """The inverse of encode; an unknown type name is an InputError naming path."""
    if isinstance(data, list):
        return [decode(x, path) for x in data]
    if not isinstance(data, dict):
        return data
    if "__tuple__" in data:
        return tuple(decode(x, path) for x in data["__tuple__"])
    if "__items__" in data:
        return {decode(k, path): decode(v, path) for k, v in data["__items__"]}
    if "__type__" in data:
        name = data["__type__"]
        if name not in TYPES:
            raise InputError(f"{path}: names type {name!r}, not a checkpoint record type")
        module, _, cls = name.rpartition(".")
        fields = {k: decode(v, path) for k, v in data["fields"].items()}
        return getattr(importlib.import_module(module), cls)(**fields)
    return {k: decode(v, path) for k, v in data.items()}


def model_state(model: TippingModel) -> dict:
    guard = {} if model.guard is None else {"guard": model.guard.state_dict()}
    return {
        **guard,
        "round": model.steps,
        "agents": [
            {"memory": list(a.memory), "action": action, "adapter": a.adapter}
            for a, action in zip(model.population, model.actions, strict=True)
        ],
        "env": model.env.state_dict(),
        "backend": model.backend.state_dict(),
        "rng": model.rng.bit_generator.state,
        "random": model.random.getstate(),
    }


def load_model_state(model: TippingModel, state: dict) -> None:
    model.steps = model.round = state["round"]
    model.actions = [saved["action"] for saved in state["agents"]]
    for agent, saved in zip(model.population, state["agents"], strict=True):
        agent.memory.clear()
        agent.memory.extend(saved["memory"])
        agent.adapter = saved["adapter"]
    model.env.load_state_dict(state["env"])
    model.backend.load_state_dict(state["backend"])
    model.rng.bit_generator.state = state["rng"]
    model.random.setstate(state["random"])
    for learner in model.learners:
        learner.load_state_dict(state[learner.name])
    if model.guard is not None:
        model.guard.load_state_dict(state["guard"])


def save(model: TippingModel, run_dir: Path, run_id: str) -> None:
    state = model_state(model)
    for learner in model.learners:
        state[learner.name] = learner.state_dict()
    path = run_dir / FILE
    path.parent.mkdir(exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with collector_paused():
        tmp.write_text(json.dumps({"format": FORMAT, "run_id": run_id, "state": encode(state)}))
    os.replace(tmp, path)


def load(run_dir: Path, run_id: str, n_rounds: int, n_agents: int) -> dict | None:
    """The state saved by run run_id in run_dir (None without one), checked before use."""
    path = run_dir / FILE
    if (run_dir / "checkpoint" / "state.pkl").exists():
        raise InputError(
            f"{run_dir / 'checkpoint' / 'state.pkl'}: a pickle checkpoint from an older "
            "tiplab; it is not loaded (checkpoints are JSON now): start the run again elsewhere"
        )
    if not path.exists():
        return None
    try:
        with collector_paused():
            saved = json.loads(path.read_bytes())
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise InputError(f"{path}: not a readable checkpoint ({type(e).__name__})") from None
    if not isinstance(saved, dict) or saved.get("format") != FORMAT:
        raise InputError(f"{path}: not a tiplab checkpoint (expected format {FORMAT})")
    if saved.get("run_id") != run_id:
        raise InputError(f"{path}: a checkpoint of run {saved.get('run_id')!r}, not of {run_id}")
    try:
        with collector_paused():
            state = decode(saved["state"], path)
        t, agents = state["round"], state["agents"]
        ok = isinstance(t, int) and 0 <= t <= n_rounds and len(agents) == n_agents
    except (KeyError, TypeError, ValueError) as e:
        raise InputError(f"{path}: damaged checkpoint ({type(e).__name__}: {e})") from None
    if not ok:
        raise InputError(f"{path}: damaged checkpoint (round {t!r}, {len(agents)} agents)")
    return state


def rewind_records(run_dir: Path, next_round: int) -> None:
    """Drop every record of rounds >= next_round (written after the last checkpoint)."""
    for part in (run_dir / "decisions.parquet").glob("part-*.parquet"):
        if int(part.stem.split("-")[1]) >= next_round:
            part.unlink()
    for name in ("rounds.parquet", "updates.parquet", "references.parquet"):
        path = run_dir / name
        if path.exists():
            kept = pl.read_parquet(path).filter(pl.col("round") < next_round)
            tmp = path.with_name(f".{name}.tmp")
            kept.write_parquet(tmp)
            os.replace(tmp, path)
