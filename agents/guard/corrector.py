"""The corrector the project trains itself: Aligner's recipe on the simulator's own decisions.

A triplet is Aligner's (arXiv 2402.02416) `{"question", "answer", "correction"}`, as in its
template-dataset.json: the question is the agent's prompt, the answer its answer, and the
correction the compliant answer when the answer broke the rule, or the answer copied
unchanged when it did not (Aligner's identity mapping, about a fifth of the data). The
corrector is its base causal LM (the organism's checkpoint) fine-tuned by the organism's
supervised loop to write the correction after Aligner's prompt: first a warm-up on the
identity triplets, then on all of them. The decisions come from the simulator's rounds
(sim/corrector.py).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from agents.decision import Decision, DecisionRequest
from agents.guard.aligner import TEMPLATE, question
from agents.parsing import decision_json
from envs.errors import InputError

FIELDS = ("question", "answer", "correction")
Pair = tuple[DecisionRequest, Decision]


def triplet(request: DecisionRequest, decision: Decision) -> dict[str, str]:
    """Aligner's triplet for one valid decision: a violation corrected to the compliant
    answer, a compliant answer copied as it is."""
    violated = request.choices.is_violation(decision.choice)
    correction = decision_json(request.choices.comply) if violated else decision.text
    return {"question": question(request), "answer": decision.text, "correction": correction}


def valid(pairs: Sequence[Pair]) -> tuple[list[Pair], list[Pair]]:
    """(violating, compliant) decisions; invalid answers have nothing to correct."""
    verdicts = [r.choices.is_violation(d.choice) for r, d in pairs]
    return (
        [p for p, v in zip(pairs, verdicts, strict=True) if v is True],
        [p for p, v in zip(pairs, verdicts, strict=True) if v is False],
    )


def dataset(pairs: Sequence[Pair], identity_share: float, seed: int) -> list[dict[str, str]]:
    """Every violation's triplet, and as many compliant answers copied unchanged (drawn
    with the seed) as make `identity_share` of the whole, as far as there are enough."""
    violating, compliant = valid(pairs)
    if not violating:
        raise InputError(
            "guard.corrector.data: the simulator's decisions held no violation to correct; "
            "raise data.scenarios or data.rounds"
        )
    wanted = round(len(violating) * identity_share / (1 - identity_share))
    chosen = np.random.default_rng(seed).permutation(len(compliant))[:wanted]
    return [triplet(*p) for p in violating] + [triplet(*compliant[i]) for i in sorted(chosen)]


def write_triplets(triplets: Sequence[Mapping], path: Path) -> Path:
    path.write_text(json.dumps(list(triplets), indent=1, ensure_ascii=False) + "\n")
    return path


def read_triplets(path: str | Path) -> list[dict[str, str]]:
    """A dataset in Aligner's format: a JSON list of objects with three strings each."""
    path = Path(path)
    try:
        rows = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise InputError(f"{path}: not a readable JSON file ({e})") from None
    if not isinstance(rows, list) or not rows:
        raise InputError(f"{path}: expected a non-empty JSON list of {{{', '.join(FIELDS)}}}")
    for i, row in enumerate(rows):
        if not isinstance(row, dict) or any(not isinstance(row.get(k), str) for k in FIELDS):
            raise InputError(f"{path}: item {i} needs string fields {', '.join(FIELDS)}")
    return rows


def conversation(t: Mapping) -> list[dict[str, str]]:
    """Aligner's prompt as the user's turn, the correction as the assistant's (the turn a
    model guard is asked in, agents/guard/aligner.py)."""
    return [
        {"role": "user", "content": TEMPLATE.format(**t)},
        {"role": "assistant", "content": t["correction"]},
    ]


def examples(tokenizer, triplets: Sequence[Mapping]) -> list:
    """The triplets through the base's chat template, the correction's tokens the targets
    (the template marks them as the assistant's, as the organism's does)."""
    from agents.organism.train import Example

    out = []
    for t in triplets:
        enc = tokenizer.apply_chat_template(
            conversation(t), tokenize=True, return_dict=True, return_assistant_tokens_mask=True
        )
        if not any(enc["assistant_masks"]):
            raise InputError(
                "guard.backend: the base's chat template does not mark the assistant's "
                "tokens ({% generation %}); the corrector trains from the organism's checkpoints"
            )
        out.append(Example(list(enc["input_ids"]), list(enc["assistant_masks"])))
    return out


def train(model, tokenizer, triplets: Sequence[Mapping], cfg: Mapping) -> dict:
    """The base fine-tuned in place into a corrector by the organism's supervised loop
    (loss on the correction's tokens): Aligner's identity warm-up (the triplets whose
    correction is the answer), then every triplet; returns the steps and last loss."""
    from agents.organism.train import train as supervised

    settings = cfg["train"]
    identity = [t for t in triplets if t["correction"] == t["answer"]]
    phases = [("identity warm-up", identity, settings["warmup_epochs"])]
    phases.append(("corrections", triplets, settings["epochs"]))
    log = {}
    for k, (name, rows, epochs) in enumerate(phases):
        if rows and epochs:
            log[name] = supervised(
                model,
                examples(tokenizer, rows),
                pad=tokenizer.pad_token_id,
                epochs=epochs,
                lr=settings["lr"],
                batch_tokens=settings["batch_tokens"],
                seed=cfg["seed"] + k,
                desc=f"corrector: {name}",
            )
    return log


def rates(p_correct: Sequence[float], violated: Sequence[bool]) -> dict[str, float | int]:
    """The guard's correction rate on violating answers (its probability of the compliant
    label there) and false-edit rate on compliant ones (its probability of the violating
    label), from its probability of each proposed label."""
    p = np.asarray(p_correct, dtype=float)
    v = np.asarray(violated, dtype=bool)
    return {
        "correction_rate": float(np.mean(1 - p[v])) if v.any() else float("nan"),
        "false_edit_rate": float(np.mean(1 - p[~v])) if (~v).any() else float("nan"),
        "violating": int(v.sum()),
        "compliant": int((~v).sum()),
    }
