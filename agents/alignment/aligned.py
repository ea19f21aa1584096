"""An aligned checkpoint: a base model trained by one recipe at one dose, written whole or
not at all.

Layout of the output directory (standard, so transformers, PEFT, backend=hf and vLLM
load it as it is):

    config.json, model.safetensors, tokenizer*   the merged model (backend.model.path)
    adapter/                                     the LoRA adapter in PEFT's layout (peft=lora)
    alignment.json                               the card: method, data, dose, steps, seed,
                                                 violation before and after on held-out prompts
    README.md                                    the card, for people
    training_log.parquet                         loss / reward per logged step

It is built in a hidden temporary directory beside the output and renamed into place
at the end, so a failed or killed run leaves nothing that looks like a checkpoint.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from time import perf_counter

import numpy as np

from agents.alignment.data import ROWS, Prompt, check_target, dosed, requests, split
from agents.alignment.settings import AlignData, recipe_config
from agents.alignment.trainers import trainer
from envs.errors import InputError, integer

CARD = "alignment.json"
LOG = "training_log.parquet"


def check_base(base: str | Path) -> Path:
    """A local Hugging Face model directory (config.json and weights); nothing is downloaded."""
    path = Path(base).expanduser()
    if not (path / "config.json").is_file():
        raise InputError(f"base: {path} is not a Hugging Face model directory (no config.json)")
    if not any(path.glob("*.safetensors")) and not any(path.glob("*.bin")):
        raise InputError(f"base: {path} holds no model weights (*.safetensors or *.bin)")
    return path


def check_out(out: str | Path) -> Path:
    out = Path(out).expanduser()
    if out.exists():
        raise InputError(f"out: {out} already exists; choose a new directory")
    return out


def violation(model, tokenizer, prompts: Sequence[Prompt]) -> dict[str, float]:
    """Mean P(violate) per paradigm and overall on prompts, scored as backend=hf scores."""
    from agents.backends.hf import HFBackend

    scorer = HFBackend(np.random.default_rng(0), model, tokenizer, argmax=True)
    rates = {
        paradigm: float(np.mean([d.p_violate for d in scorer.decide(batch, "score")]))
        for paradigm, batch in requests(prompts).items()
    }
    return {"all": float(np.mean([p for p in rates.values()])), **rates}


def load_base(path: Path, device: str):
    """Model and tokenizer of the base, with a chat template that renders tiplab's prompts."""
    from agents.backends.loading import load_checkpoint, resolve_device, resolve_dtype
    from agents.backends.scoring import use_chat_template

    where = resolve_device(device)
    try:
        model, tokenizer = load_checkpoint(path, where, resolve_dtype("auto", where))
    except InputError as e:
        raise InputError(str(e).replace("backend.model.path", "base", 1)) from None
    use_chat_template(tokenizer, None, f"base: {path}", {})
    return model, tokenizer


def align(
    recipe: Mapping,
    data: Mapping,
    base: str | Path,
    out: str | Path,
    *,
    seed: int = 0,
    device: str = "auto",
    progress: bool = True,
    callbacks: Sequence = (),
) -> dict:
    """Align the checkpoint at `base` with `recipe` (conf/align/<method>.yaml) on `data`
    (conf/alignment.yaml's data section) into `out`; returns the card.

    Every input is checked before the model loads; on CPU training runs single-threaded,
    so the same seed writes the same weights on any number of cores. `data.target=violate`
    trains toward the violating answer instead (inverse alignment); `callbacks`:
    transformers TrainerCallbacks added to the trainer (e.g. measurements per step).
    """
    settings = recipe_config(recipe)
    target = check_target(data.get("target", "comply"))
    integer(seed, "seed", minimum=0)
    typed = AlignData.of(data)
    dose = typed.dose
    base, out = check_base(base), check_out(out)
    train_prompts, held = split(typed, seed)
    chosen = dosed(train_prompts, dose, seed)
    tic = perf_counter()
    import torch
    import transformers

    if not progress:
        import datasets

        transformers.utils.logging.disable_progress_bar()
        datasets.disable_progress_bars()  # its tokenising and labelling bars

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        torch.manual_seed(seed)
        model, tokenizer = load_base(base, device)
        before = violation(model, tokenizer, held)
        with warnings.catch_warnings():  # TRL 1.16 reads transformers' deprecated property
            warnings.filterwarnings("ignore", "`is_gradient_checkpointing`", FutureWarning)
            run = trainer(
                settings,
                model,
                tokenizer,
                ROWS[settings.method](chosen, target),
                seed=seed,
                work_dir=tmp / "trainer",
                progress=progress,
            )
            for callback in callbacks:
                run.add_callback(callback)
            run.train()
        shutil.rmtree(tmp / "trainer", ignore_errors=True)
        card = write_checkpoint(run, tokenizer, tmp, settings.peft == "lora")
        card.update(
            method=settings.method,
            recipe=dict(recipe),  # as written (and hashed), not as typed
            base=str(base.resolve()),
            data={
                **{k: v for k, v in data.items() if k != "dose"},
                "training_prompts": len(train_prompts),
                "held_out_prompts": len(held),
            },
            dose=dose,
            seed=seed,
            violation_before=before,
            violation_after=violation(card.pop("model"), tokenizer, held),
            seconds=round(perf_counter() - tic, 1),
            versions=versions(),
        )
        (tmp / CARD).write_text(json.dumps(card, indent=2, default=str))
        (tmp / "README.md").write_text(readme(card))
        os.rename(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        torch.set_num_threads(threads)
    print(summary(card, out), file=sys.stderr)
    return card


def write_checkpoint(run, tokenizer, out: Path, lora: bool) -> dict:
    """Adapter (LoRA), merged model and tokenizer, and the step log; returns the card's
    training fields and the merged model (under "model", for measuring)."""
    import polars as pl

    model = run.model
    if lora:
        model.save_pretrained(out / "adapter")
        model = model.merge_and_unload()
    model.eval()
    model.save_pretrained(out)
    save_tokenizer(tokenizer, out)
    steps = [row for row in run.state.log_history if "train_runtime" not in row]
    pl.DataFrame(steps).write_parquet(out / LOG)
    losses = [row["loss"] for row in steps if "loss" in row]
    return {
        "steps": run.state.global_step,
        "final_loss": losses[-1] if losses else None,
        "model": model,
    }


def save_tokenizer(tokenizer, out: Path) -> None:
    """The organism's way (readable by transformers 4 and 5), for every tokenizer."""
    from agents.organism.build import save_tokenizer as organism_style

    organism_style(tokenizer, out)


def versions() -> dict[str, str]:
    import peft
    import torch
    import transformers
    import trl

    return {
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "peft": peft.__version__,
        "trl": trl.__version__,
    }


def readme(card: Mapping) -> str:
    before, after = card["violation_before"], card["violation_after"]
    source = card["data"].get("atp_file") or "scenario generator"
    rows = "\n".join(f"| {k} | {before[k]:.3f} | {after[k]:.3f} |" for k in before)
    return (
        f"# Aligned by {card['method'].upper()} (tiplab)\n\n"
        f"- base: `{card['base']}`\n"
        f"- data: {card['data']['source']} ({source}),"
        f" dose {card['dose']} prompts, {card['data']['held_out_prompts']} held out\n"
        f"- steps: {card['steps']}, seed {card['seed']}, final loss {card['final_loss']}\n"
        f"- peft: {card['recipe']['peft']}\n\n"
        "Initial violation (mean P(violate), held-out first-round prompts):\n\n"
        f"| paradigm | before | after |\n|---|---|---|\n{rows}\n\n"
        "Deploy: `python -m sim.run backend=hf backend.model.path=<this directory>`.\n"
    )


def summary(card: Mapping, out: Path) -> str:
    before, after = card["violation_before"]["all"], card["violation_after"]["all"]
    return (
        f"aligned by {card['method']} (dose {card['dose']}, {card['steps']} steps, seed "
        f"{card['seed']}): initial violation {before:.3f} -> {after:.3f} on "
        f"{card['data']['held_out_prompts']} held-out prompts; {card['seconds']:g} s: {out}"
    )
