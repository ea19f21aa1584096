"""Seconds per LoRA update round with per-agent adapters: one adapter at a time vs batched.

Batched: every agent's new adapter version trains in the same forward/backward passes
(PEFT mixed-adapter batches; each adapter still gets exactly its own gradient).
One at a time: the same update as a loop over agents, one adapter per pass.
Both train the same examples with the same settings, side by side in one process.

    python benchmarks/evolution_update.py --model PATH [--agents 8 64] [--rounds 2]

PATH is a local Hugging Face model directory (e.g. the organism in ~/.cache/tiplab);
without --model the default organism is built or taken from the cache.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path
from time import perf_counter

import numpy as np
import torch
import yaml

from agents.backends.hf import HFBackend, load_checkpoint
from agents.evolution.evolution import Evolution
from agents.evolution.trainer import LoraTrainer
from sim.build import build_environment, seeds
from sim.model import TippingModel
from sim.recorder import Recorder

ROOT = Path(__file__).resolve().parent.parent


def default_model() -> Path:
    from agents.backends import make_backend

    cfg = yaml.safe_load((ROOT / "conf/backend/organism.yaml").read_text())
    return Path(make_backend(cfg, np.random.default_rng(0)).path)


def played_rounds(model_dir: Path, n_agents: int, rounds: int, work: Path):
    """A role-play population that has played `rounds` rounds: its experience to learn from."""
    env_cfg = yaml.safe_load((ROOT / "conf/env/roleplay.yaml").read_text())
    env_cfg.update(professions="all", payoffs=[[1.0, 3.1]], schedule="alternating")
    rng = seeds(0)
    env = build_environment(env_cfg, rounds, rng["env"])
    env.scenarios, env.group = env.scenarios[:n_agents], env.group[:n_agents]
    import networkx as nx

    graph = nx.empty_graph(n_agents)
    model, tokenizer = load_checkpoint(model_dir, torch.device("cpu"), torch.float32)
    backend = HFBackend(rng["policy"], model, tokenizer)
    sim = TippingModel(env, backend, graph, Recorder(work / "run", "bench"), seed=0)
    history = []
    for _ in range(rounds):
        sim.step()
        history.append(sim.last_round)
    return backend, env, history


def update_seconds(backend, env, history, work: Path, batched: bool) -> float:
    cfg = yaml.safe_load((ROOT / "conf/evolution/pg.yaml").read_text())
    cfg.update(every=len(history), window=len(history))
    trainer = LoraTrainer(backend, cfg["lora"], cfg["lr"], cfg["steps"], cfg["batch_size"], 0)
    owners = [f"{'b' if batched else 's'}{i}" for i in range(env.n_agents)]
    run_dir = Path(tempfile.mkdtemp(dir=work))
    evolution = Evolution(cfg, trainer, owners, run_dir)
    for t, (requests, decisions, outcomes) in enumerate(history):
        evolution.observe(t, requests, decisions, outcomes, [s.id for s in env.scenarios])
    t = len(history) - 1
    tic = perf_counter()
    if batched:
        evolution.update(t)
    else:
        everyone = evolution.owner_of
        for owner in sorted(set(everyone)):
            evolution.owner_of = [o if o == owner else "" for o in everyone]
            evolution.update(t)
        evolution.owner_of = everyone
    return perf_counter() - tic


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--agents", type=int, nargs="+", default=[8, 64])
    parser.add_argument("--rounds", type=int, default=4, help="rounds of experience per update")
    args = parser.parse_args()
    model_dir = args.model or default_model()
    torch.manual_seed(0)
    work = Path(tempfile.mkdtemp(prefix="tiplab-bench-"))
    try:
        print(f"model: {model_dir}")
        print(f"{'agents':>6} {'one at a time (s)':>18} {'batched (s)':>12} {'ratio':>7}")
        for n in args.agents:
            backend, env, history = played_rounds(model_dir, n, args.rounds, work)
            single = update_seconds(backend, env, history, work, batched=False)
            batched = update_seconds(backend, env, history, work, batched=True)
            print(f"{n:>6} {single:>18.2f} {batched:>12.2f} {single / batched:>6.1f}x")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
