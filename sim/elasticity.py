"""experiment=elasticity: how fast an aligned model springs back toward its pre-trained base
("Language Models Resist Alignment", arXiv 2406.06144), on the organism or backend=hf.

For every seed and alignment dose, four fine-tunings by the alignment recipe (TRL's
SFTTrainer through agents.alignment, LoRA merged after each), each starting where the
previous one ended:

    align     the base toward the compliant answer, `dose` prompts        (forward)
    inverse   the aligned model toward the violating answer, tip_steps     (inverse alignment)
    realign   the tipped model by the same recipe and dose as `align`
    retip     the re-aligned model as `inverse`

After every optimiser step (and before the first) the model is scored on the probe set
(held-out first-round prompts of the alignment data); elasticity.parquet holds per step
its training loss, mean P(violate), and exact two-choice KL and difference in P(violate)
to the base and to the aligned model (the end of `align`). Then each aligned model drifts
in the simulator under temptation with evolution=pg (runs under drift/, their
references.parquet). analysis/elasticity.py and the report's elasticity section read it.
"""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from envs.errors import InputError, Section, integer, listed, number

PHASES = (  # name, what it starts from, target answer, whether it is `align`'s recipe and dose
    ("align", "base", "comply", True),
    ("inverse", "align", "violate", False),
    ("realign", "inverse", "comply", True),
    ("retip", "realign", "violate", False),
)
STEPS = pl.Schema(
    {
        "seed": pl.Int64,
        "dose": pl.Int32,  # prompts the alignment trained on
        "phase": pl.String,  # align | inverse | realign | retip
        "step": pl.Int32,  # optimiser steps taken in the phase (0: before the first)
        "samples": pl.Int32,  # training examples seen in the phase
        "loss": pl.Float64,  # TRL's training loss of the step (null at step 0)
        "p_violate": pl.Float64,  # mean P(violate) on the probes
        "kl_base": pl.Float64,  # mean two-choice KL(model || base)
        "dp_base": pl.Float64,
        "kl_aligned": pl.Float64,  # mean two-choice KL(model || the aligned model)
        "dp_aligned": pl.Float64,
    }
)


@dataclass(frozen=True)
class ElasticityConfig(Section):
    """elasticity.*; recipe and data stay the mappings conf/align/ and conf/align_data/
    write, as agents/alignment reads them (and hashes them into its checkpoints' keys)."""

    FIELD = "elasticity"
    doses: list[int]
    seeds: list[int]
    tip_steps: int
    epsilon: float
    drift_rounds: int
    recipe: Mapping
    data: Mapping

    def __post_init__(self):
        from agents.alignment.data import split
        from agents.alignment.settings import AlignData, recipe_config

        for dose in listed(self.doses, "elasticity.doses"):
            integer(dose, "elasticity.doses")
        for seed in listed(self.seeds, "elasticity.seeds"):
            integer(seed, "elasticity.seeds", minimum=0)
        if not self.doses or not self.seeds:
            raise InputError("elasticity.doses, elasticity.seeds: at least one each")
        integer(self.tip_steps, "elasticity.tip_steps")
        number(self.epsilon, "elasticity.epsilon", above=True)
        integer(self.drift_rounds, "elasticity.drift_rounds")
        try:
            recipe_config(self.recipe)
        except InputError as e:  # named as this experiment's fields
            raise InputError(str(e).replace("align.", "elasticity.recipe.", 1)) from None
        try:
            split(AlignData.of(self.data), 0)
        except InputError as e:
            raise InputError(str(e).replace("data.", "elasticity.data.", 1)) from None


def elasticity_config(cfg: Mapping) -> ElasticityConfig:
    """experiment=elasticity's settings, and the backend and probes it needs, checked
    before anything loads."""
    if cfg["backend"]["name"] not in ("organism", "hf"):
        raise InputError(
            f"backend={cfg['backend']['name']}: experiment=elasticity fine-tunes the model, "
            "so it needs backend=organism or backend=hf (backend.model.path: the base)"
        )
    if cfg["backend"]["name"] == "hf":
        from agents.alignment.aligned import check_base

        try:
            check_base((cfg["backend"].get("model") or {}).get("path") or "")
        except InputError as e:
            raise InputError(str(e).replace("base:", "backend.model.path:", 1)) from None
    integer(cfg["reference"]["probes"], "reference.probes")
    return ElasticityConfig.of(cfg["elasticity"])


def base_path(backend: Mapping) -> Path:
    """The pre-trained base: the organism's pre-trained stage, or backend.model.path."""
    if backend["name"] == "organism":
        from agents.alignment.organism import organism_base

        return organism_base(backend["organism"], backend["cache_dir"])
    return Path(backend["model"]["path"]).expanduser()


def probe_requests(data: Mapping, n: int) -> list:
    """n held-out first-round prompts of the alignment data, evenly spread."""
    from agents.alignment.data import split
    from agents.alignment.settings import AlignData
    from agents.decision import DecisionRequest

    held = split(AlignData.of(data), 0)[1]
    chosen = held[:: max(1, len(held) // n)][:n]
    return [DecisionRequest(i, None, p.messages, p.choices) for i, p in enumerate(chosen)]


def run_elasticity(cfg: Mapping, run_dir: Path) -> pl.DataFrame:
    """Play the experiment into run_dir; returns the per-step rows (elasticity.parquet)."""
    el = elasticity_config(cfg)
    base = base_path(cfg["backend"])
    probes = probe_requests(el.data, cfg["reference"]["probes"])
    device = (cfg["backend"].get("model") or {}).get("device", "auto")
    base_logp = checkpoint_logprobs(base, probes, device)
    run_dir.mkdir(parents=True, exist_ok=True)
    settings = {k: v for k, v in cfg["elasticity"].items() if k not in ("recipe", "data")}
    (run_dir / "elasticity.json").write_text(json.dumps({**settings, "base": str(base)}))
    frames = []
    for seed in el.seeds:
        for dose in el.doses:
            work = run_dir / "checkpoints" / f"dose{dose}-seed{seed}"
            phases = fine_tunings(el, base, probes, dose, seed, work, device)
            frames.append(step_rows(phases, base_logp, seed, dose))
            drift(cfg, el, work / "align", base, run_dir / "drift" / f"dose{dose}-seed{seed}", seed)
            shutil.rmtree(work)
            rows = pl.concat(frames)
            rows.write_parquet(run_dir / "elasticity.parquet")
            print(f"elasticity: dose {dose}, seed {seed} done", file=sys.stderr)
    shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)
    return rows


def fine_tunings(
    el: ElasticityConfig, base: Path, probes, dose: int, seed: int, work: Path, device: str
) -> dict:
    """The four phases' probe scores per step and losses, each from the previous checkpoint."""
    from agents.alignment import align
    from agents.alignment.settings import recipe_config
    from agents.reference import StepProbes

    recipe = el.recipe  # the mapping align hashes and cards; read through its typed view
    batch = recipe_config(recipe).batch_size
    tip_recipe = {**recipe, "epochs": 1.0}
    tip_dose = el.tip_steps * batch
    done: dict[str, dict] = {}
    for name, start, target, aligning in PHASES:
        probe = StepProbes(probes)
        align(
            recipe if aligning else tip_recipe,
            {**el.data, "dose": dose if aligning else tip_dose, "target": target},
            base if start == "base" else work / start,
            work / name,
            seed=seed,
            device=device,
            progress=False,
            callbacks=[probe],
        )
        log = pl.read_parquet(work / name / "training_log.parquet")
        losses = dict(zip(log["step"].to_list(), log["loss"].to_list(), strict=True))
        done[name] = {"logp": probe.steps, "loss": losses, "batch": batch}
    return done


def step_rows(phases: Mapping, base_logp, seed: int, dose: int) -> pl.DataFrame:
    from agents.reference import distances

    aligned_logp = phases["align"]["logp"][-1][1]
    rows = []
    for name, phase in phases.items():
        for step, logp in phase["logp"]:
            rows.append(
                {
                    "seed": seed,
                    "dose": dose,
                    "phase": name,
                    "step": step,
                    "samples": step * phase["batch"],
                    "loss": phase["loss"].get(step),
                    **distances(logp, {"base": base_logp, "aligned": aligned_logp}),
                }
            )
    return pl.DataFrame(rows, schema=STEPS)


def checkpoint_logprobs(path: Path, probes, device: str):
    """The probes' label log-probabilities under the checkpoint at path."""
    from agents.alignment.aligned import load_base
    from agents.backends.adapters import AdapterTable
    from agents.backends.label_scorer import LabelScorer
    from agents.reference import probe_logprobs

    model, tokenizer = load_base(path, device)
    return probe_logprobs(LabelScorer(AdapterTable(model), tokenizer), probes, [None] * len(probes))


def drift(
    cfg: Mapping, el: ElasticityConfig, aligned: Path, base: Path, run_dir: Path, seed: int
) -> None:
    """The aligned model in the simulator under temptation, evolving by cfg's evolution
    (pg): a run of its own (records, references.parquet against the base and itself)."""
    from sim.run import run_experiment

    model = {**(cfg["backend"].get("model") or {}), "path": str(aligned)}
    backend = {**cfg["backend"], "name": "hf", "model": model}
    run = {**cfg["run"], "rounds": el.drift_rounds, "progress": False}
    run_experiment(
        {
            **{k: v for k, v in cfg.items() if k != "elasticity"},
            "seed": seed,
            "backend": backend,
            "run": {**run, "report": False},
            "reference": {**cfg["reference"], "base": str(base)},
        },
        run_dir,
    )
