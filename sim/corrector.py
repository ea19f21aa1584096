"""guard=corrector: the corrector trained on the simulator's own decisions, built once per
config and cached, then served as a model guard (agents/guard/aligner.py) through
backend=hf.

The guard's backend (the organism by default) plays generated role-play scenarios of the
training families (envs/generator.py, split=train) in the simulator, as the policy of a
run; every decision its rounds send to the guard stage becomes an Aligner triplet
(agents/guard/corrector.py). The backend's checkpoint is fine-tuned on them, and the
corrector is measured on the decisions of a run in the held-out families: its correction
rate on violating answers and false-edit rate on compliant ones, written to corrector.json
beside the checkpoint with the base's own rates in Aligner's format for comparison.

    python -m sim.corrector [guard.corrector.seed=1 ...]   # build (or find) and print the card
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from time import perf_counter

import numpy as np
from omegaconf import OmegaConf
from tqdm import tqdm

from agents.backends.settings import backend_config
from agents.decision import Decision, DecisionRequest
from agents.guard.base import Guard, Review
from agents.guard.corrector import (
    Pair,
    dataset,
    rates,
    read_triplets,
    triplet,
    valid,
    write_triplets,
)
from agents.guard.settings import CorrectorConfig, GuardConfig, guard_config
from envs.errors import InputError

VERSION = 2  # bump when the build changes what a config produces
CARD = "corrector.json"
DATA = "triplets.json"
HELD_OUT = "held_out.json"
BACKENDS = Path(__file__).resolve().parent.parent / "conf" / "backend"


class Collector(Guard):
    """A guard that changes nothing and keeps every question and answer it is shown."""

    needs_messages = True

    def __init__(self):
        super().__init__("execution", "executed", np.random.default_rng(0))
        self.seen: list[Pair] = []

    def review(
        self, requests: Sequence[DecisionRequest], decisions: Sequence[Decision]
    ) -> list[Review]:
        self.seen += zip(requests, decisions, strict=True)
        return [Review(d, False) for d in decisions]


def played(backend: Mapping, split: str, scenarios: int, rounds: int, seed: int, progress) -> list:
    """Every (question, answer) the guard stage sees when `backend` plays `scenarios`
    generated role-play scenarios of `split` for `rounds` rounds (run seed `seed`)."""
    from sim.build import compose, model_arguments
    from sim.model import TippingModel

    overrides = [f"backend={backend['name']}", "env=roleplay", "env.source=generator"]
    values = {
        "seed": seed,
        "backend": dict(backend),
        "env": {"generator": {"scenarios": scenarios, "split": split}},
        "run": {"rounds": rounds, "progress": False, "report": False},
    }
    cfg = compose(overrides, values)
    collector = Collector()
    with tempfile.TemporaryDirectory(prefix="tiplab-corrector-") as run_dir:
        model = TippingModel(**{**model_arguments(cfg, Path(run_dir)), "guard": collector})
        for _ in tqdm(range(rounds), desc=f"corrector: {split} rounds", disable=not progress):
            model.step()
        model.backend.close()
    return collector.seen


def base_path(backend: Mapping) -> Path:
    """The checkpoint the corrector starts from: the guard backend's own."""
    if backend["name"] == "organism":
        from agents.backends.organism import organism_path

        return organism_path(backend_config(backend))
    return Path(backend["model"]["path"]).expanduser().resolve()


def corrector_key(cfg: CorrectorConfig, base: Path) -> str:
    backend = {k: v for k, v in cfg.backend.items() if k not in ("cache_dir", "organism")}
    text = json.dumps(
        {"version": VERSION, "base": str(base), "backend": backend, **cfg.corrector},
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def corrector_dir(cfg: CorrectorConfig, progress: bool = True) -> Path:
    """The corrector for guard config `cfg`, built first if the cache lacks it."""
    from agents.organism.build import locked

    base = base_path(cfg.backend)
    root = Path(cfg.cache_dir).expanduser()
    path = root / f"corrector-{corrector_key(cfg, base)}"
    if (path / CARD).is_file():
        return path
    root.mkdir(parents=True, exist_ok=True)
    with locked(root / f".{path.name}.lock"):
        if not (path / CARD).is_file():
            tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}-", dir=root))
            try:
                build(cfg, base, tmp, progress)
                os.rename(tmp, path)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
    return path


def build(cfg: CorrectorConfig, base: Path, out: Path, progress: bool) -> dict:
    """Play, write the triplets, train, measure, save; single-threaded, so the same seed
    gives the same weights on any number of cores."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return built(cfg, base, out, progress)
    finally:
        torch.set_num_threads(threads)


def built(cfg: CorrectorConfig, base: Path, out: Path, progress: bool) -> dict:
    import torch

    from agents.alignment.aligned import load_base, save_tokenizer, versions
    from agents.guard.corrector import train

    tic = perf_counter()
    settings = cfg.corrector
    data, seed = settings["data"], settings["seed"]
    torch.manual_seed(seed)
    backend = cfg.backend
    pairs = played(backend, "train", data["scenarios"], data["rounds"], seed, progress)
    write_triplets(dataset(pairs, data["identity_share"], seed), out / DATA)
    held = played(backend, "held_out", data["held_out_scenarios"], data["rounds"], seed, progress)
    triplets = read_triplets(out / DATA)  # trained from the file, in Aligner's format
    write_triplets([triplet(*p) for group in valid(held) for p in group], out / HELD_OUT)
    model, tokenizer = load_base(base, "cpu")
    before = measured(model, tokenizer, held, cfg)
    trained = perf_counter()
    log = train(model, tokenizer, triplets, settings)
    trained = perf_counter() - trained
    after = measured(model, tokenizer, held, cfg)
    model.save_pretrained(out)
    save_tokenizer(tokenizer, out)
    card = {
        "config": dict(settings),
        "base": str(base),
        "triplets": len(triplets),
        "identity": sum(t["correction"] == t["answer"] for t in triplets),
        "training": log,
        "held_out": after,
        "held_out_base": before,
        "train_seconds": round(trained, 1),
        "build_seconds": round(perf_counter() - tic, 1),
        "versions": versions(),
    }
    (out / CARD).write_text(json.dumps(card, indent=2, default=str))
    print(summary(card), file=sys.stderr)
    return card


def measured(model, tokenizer, pairs: Sequence[Pair], cfg: CorrectorConfig) -> dict:
    """The model as a guard (Aligner's prompt, score mode) on the held-out decisions."""
    from agents.backends.hf import HFBackend
    from agents.guard.aligner import ModelGuard

    violating, compliant = valid(pairs)
    scored = violating + compliant
    settings = HFBackend.settings(backend_config(cfg.backend))
    backend = HFBackend(np.random.default_rng(0), model, tokenizer, **settings)
    guard = ModelGuard("execution", "executed", np.random.default_rng(0), backend, "score")
    reviews = guard.review([r for r, _ in scored], [d for _, d in scored])
    return rates([r.p_correct for r in reviews], [True] * len(violating) + [False] * len(compliant))


def summary(card: Mapping) -> str:
    after, before = card["held_out"], card["held_out_base"]
    steps = sum(phase["steps"] for phase in card["training"].values())
    return (
        f"corrector: {card['triplets']} triplets ({card['identity']} identity), {steps} "
        f"steps; held out: correction rate {after['correction_rate']:.3f} "
        f"(base {before['correction_rate']:.3f}) on {after['violating']} violating answers, "
        f"false edits {after['false_edit_rate']:.3f} (base {before['false_edit_rate']:.3f}) "
        f"on {after['compliant']} compliant; trained in {card['train_seconds']:g} s, built "
        f"in {card['build_seconds']:g} s"
    )


def served(cfg: GuardConfig, progress: bool = True) -> GuardConfig:
    """guard=corrector as the model guard it is: guard.backend is then backend=hf
    (conf/backend/hf.yaml) at the corrector's checkpoint (built first if needed), with
    the settings the guard backend has of hf's; any other guard as it is."""
    if not isinstance(cfg, CorrectorConfig):
        return cfg
    path = corrector_dir(cfg, progress)
    hf = OmegaConf.to_container(OmegaConf.load(BACKENDS / "hf.yaml"))
    own = {k: v for k, v in cfg.backend.items() if k in hf}
    model = {**hf["model"], **cfg.backend["model"], "path": str(path)}
    return replace(cfg, backend={**hf, **own, "name": "hf", "model": model})


def main(argv: Sequence[str]) -> None:
    """Build (or find) the corrector of conf/guard/corrector.yaml with `argv` overrides."""
    from sim.build import CONF, compose
    from sim.overrides import check_overrides

    overrides = ["guard=corrector", *argv]
    try:
        check_overrides(str(CONF), "config", overrides, check=lambda c: guard_config(c["guard"]))
        path = corrector_dir(guard_config(compose(overrides)["guard"]))
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    print(summary(json.loads((path / CARD).read_text())))
    print(path)


if __name__ == "__main__":
    main(sys.argv[1:])
