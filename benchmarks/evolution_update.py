"""Seconds per LoRA update round with per-agent adapters: one adapter at a time vs batched.

Batched: every agent's new adapter version trains in the same forward/backward passes
(PEFT mixed-adapter batches; each adapter still gets exactly its own gradient).
One at a time: the same update as a loop over agents, one adapter per pass.
Both train the same examples with the same settings, side by side in one process, each
on a freshly loaded model whose agents already have a first version (a run's steady
state), alternating which goes first; the best of --repeats is kept.

    python benchmarks/evolution_update.py [--model PATH] [--agents 8 64] [--rounds 4]

PATH is a local Hugging Face model directory (e.g. the organism in ~/.cache/tiplab);
without --model the default organism is built or taken from the cache.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path
from time import perf_counter

import networkx as nx
import numpy as np
import torch
import yaml
from omegaconf import OmegaConf

from agents.backends.hf import HFBackend
from agents.backends.loading import load_checkpoint
from agents.evolution.evolution import Evolution
from agents.evolution.settings import evolution_config
from agents.evolution.trainer import LoraTrainer
from agents.learning import Learned, PlayedRound
from agents.organism.build import organism_dir
from sim.build import build_environment, seeds
from sim.config import env_config
from sim.model import TippingModel
from sim.recorder import Recorder

ROOT = Path(__file__).resolve().parent.parent


def default_model() -> Path:
    cfg = OmegaConf.to_container(OmegaConf.load(ROOT / "conf/backend/organism.yaml"), resolve=True)
    return organism_dir(cfg["organism"], cfg["cache_dir"])


def fresh_backend(model_dir: Path, rng) -> HFBackend:
    model, tokenizer = load_checkpoint(model_dir, torch.device("cpu"), torch.float32)
    return HFBackend(rng, model, tokenizer)


class Played:
    """A learner that keeps every round it is shown: the experience updates learn from."""

    name = "played"

    def __init__(self):
        self.rounds: list[PlayedRound] = []

    def after_round(self, played: PlayedRound) -> Learned:
        self.rounds.append(played)
        return Learned()


def played_rounds(model_dir: Path, n_agents: int, rounds: int, work: Path):
    """A role-play population that has played `rounds` rounds: its experience to learn from."""
    env_cfg = yaml.safe_load((ROOT / "conf/env/roleplay.yaml").read_text())
    env_cfg.update(schedule="alternating", replicates=-(-n_agents // 76))  # 19 x 4 items
    rng = seeds(0)
    env = build_environment(env_config(env_cfg), rounds, rng["env"])
    env.scenarios, env.group = env.scenarios[:n_agents], env.group[:n_agents]
    assert env.n_agents == n_agents, f"the role-play grid has only {env.n_agents} items"
    graph = nx.empty_graph(n_agents)
    backend = fresh_backend(model_dir, rng["policy"])
    played = Played()
    sim = TippingModel(
        env, backend, graph, Recorder(work / "run", "bench"), seed=0, learners=[played]
    )
    for _ in range(rounds):
        sim.step()
    return env, played.rounds


def update_seconds(model_dir: Path, env, history, work: Path, batched: bool) -> float:
    """Wall time of an update of every agent's adapter, on a freshly loaded model whose
    agents already have a first version (the steady state of a run)."""
    backend = fresh_backend(model_dir, np.random.default_rng(0))
    values = yaml.safe_load((ROOT / "conf/evolution/pg.yaml").read_text())
    cfg = evolution_config({**values, "every": len(history), "window": len(history)})
    trainer = LoraTrainer(backend.trainable(), cfg.lora, cfg.lr, cfg.steps, cfg.batch_size, 0)
    owners = [f"{'b' if batched else 's'}{i}" for i in range(env.n_agents)]
    run_dir = Path(tempfile.mkdtemp(dir=work))
    evolution = Evolution(cfg, trainer, owners, [s.id for s in env.scenarios], run_dir)
    for played in history:
        evolution.observe(played)
    t = len(history) - 1
    evolution.update(t)  # first versions
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
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    model_dir = args.model or default_model()
    torch.manual_seed(0)
    work = Path(tempfile.mkdtemp(prefix="tiplab-bench-"))
    try:
        print(f"model: {model_dir}")
        print(f"{'agents':>6} {'one at a time (s)':>18} {'batched (s)':>12} {'ratio':>7}")
        for n in args.agents:
            env, history = played_rounds(model_dir, n, args.rounds, work)
            times = {True: [], False: []}
            for r in range(args.repeats):
                for batched in (r % 2 == 0, r % 2 == 1):
                    times[batched].append(update_seconds(model_dir, env, history, work, batched))
            single, batched = min(times[False]), min(times[True])
            print(f"{n:>6} {single:>18.2f} {batched:>12.2f} {single / batched:>6.1f}x")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
