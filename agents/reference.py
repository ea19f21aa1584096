"""Reference distances: how far the policy has moved from its pre-trained base and from its
aligned starting point, read on a fixed probe set after every round.

The probes are first-round prompts (no memory) of the run's own scenarios, so the
distance measures the weights, not the context. On each probe the policy is the
two-choice distribution score mode samples from, and the distance to a reference is
the exact two-choice KL(policy || reference) and the difference in P(violate); a row
holds their means over the probes. The references never change during a run: the base
is scored once (its checkpoint loaded, scored, freed) and the aligned start is the
serving model without adapters; each new adapter version is scored once, all new
versions of a round in one batched call.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from transformers import TrainerCallback

from agents.backends.adapters import AdapterTable
from agents.backends.batching import within_memory
from agents.backends.label_scorer import LabelScorer
from agents.decision import DecisionRequest
from agents.evolution.objectives import bernoulli_kl
from agents.learning import Learned, PlayedRound
from envs.errors import InputError

POPULATION = "population"  # the owner of every agent when no weights evolve


def base_checkpoint(base: str | None, backend: Mapping) -> Path | None:
    """The pre-trained base the policy is measured against (reference.base), or None (no
    KL to the base).

    auto: for the organism its pre-trained stage; for a local checkpoint aligned by
    sim.align the base its card names; otherwise none.
    """
    if base != "auto":
        return None if base is None else Path(str(base)).expanduser()
    if backend["name"] == "organism":
        from agents.alignment.organism import organism_base

        return organism_base(backend["organism"], backend["cache_dir"])
    served = checkpoint_path(backend)
    card = served / "alignment.json" if served is not None else None
    return Path(json.loads(card.read_text())["base"]) if card and card.is_file() else None


def checkpoint_path(backend: Mapping) -> Path | None:
    """The local checkpoint a backend's config names: `backend.model.path` (hf) or
    `backend.model` (vllm); None when it names none."""
    model = backend.get("model")
    path = model.get("path") if isinstance(model, Mapping) else model
    return Path(str(path)).expanduser() if path else None


def probe_logprobs(
    scorer: LabelScorer, probes: Sequence[DecisionRequest], adapters: Sequence[str | None]
) -> torch.Tensor:
    """[rows, 2] log P(comply), log P(violate) of the probes, repeated once per adapter
    (`adapters` has one name per row, None the model without adapters), in one call, or
    in halves of it when the device has no memory for all rows at once (as deciding does).
    """
    requests = [probes[i % len(probes)] for i in range(len(adapters))]
    prompts = [scorer.prompt_text(r) for r in requests]
    prefixes, tails, _ = scorer.score_inputs(requests, prompts)

    @torch.inference_mode()
    def scored(rows: Sequence[int]) -> torch.Tensor:
        return scorer.tail_logprobs(
            [prefixes[i] for i in rows],
            [tails[i] for i in rows],
            scorer.adapters.routing([adapters[i] for i in rows]),
        )

    done, _ = within_memory(
        [range(len(requests))],
        scored,
        scorer.device,
        lambda row: (
            f"reference.probes: one probe of {len(prefixes[row])} tokens does not fit "
            f"in {scorer.device.type} memory; set reference.probes=0"
        ),
    )
    logp = torch.cat([part for _, part, _ in done])
    return logp.double().cpu()  # the KL of near distributions needs the precision


def distances(logp: torch.Tensor, references: Mapping[str, torch.Tensor | None]) -> dict:
    """Mean P(violate) over the probes, and per reference the mean two-choice
    KL(policy || reference) and the difference in mean P(violate) (None without one)."""
    p = logp.softmax(-1)[:, 1]
    out = {"p_violate": float(p.mean())}
    for name, ref in references.items():
        known = ref is not None
        out[f"kl_{name}"] = float(bernoulli_kl(logp, ref).mean()) if known else None
        out[f"dp_{name}"] = float(p.mean() - ref.softmax(-1)[:, 1].mean()) if known else None
    return out


class StepProbes(TrainerCallback):
    """A transformers callback: the probes' label log-probabilities under the model being
    trained, before the first optimiser step and after each; `steps`: (step, [n, 2])."""

    def __init__(self, probes: Sequence[DecisionRequest]):
        self.probes = list(probes)
        self.steps: list[tuple[int, torch.Tensor]] = []

    def measure(self, state, model, processing_class) -> None:
        training = model.training
        model.eval()
        scorer = LabelScorer(AdapterTable(model), processing_class)
        self.steps.append(
            (state.global_step, probe_logprobs(scorer, self.probes, [None] * len(self.probes)))
        )
        model.train(training)

    def on_train_begin(self, args, state, control, model=None, processing_class=None, **kw):
        self.measure(state, model, processing_class)

    def on_step_end(self, args, state, control, model=None, processing_class=None, **kw):
        self.measure(state, model, processing_class)


class ReferenceProbes:
    """A learner that records the policy's distances to its references after every round:
    a "round" row per owner for the adapter its agents decided with, and an "update" row
    per owner whose adapter a learner replaced in that round."""

    name = "reference"

    def __init__(
        self,
        scorer: LabelScorer,
        probes: Sequence[DecisionRequest],
        base: Path | None,
        policy: Path | None,
        evolution=None,
    ):
        self.scorer = scorer
        self.probes = list(probes)
        self.base = base
        self.policy = policy
        self.evolution = evolution
        owners = sorted(set(evolution.owner_of)) if evolution is not None else [POPULATION]
        self.deciding: dict[str, str | None] = dict.fromkeys(owners)
        self.scores: dict[str | None, torch.Tensor] = {}  # adapter -> [probes, 2] log-probs
        self.references: dict[str, torch.Tensor | None] | None = None

    def current(self) -> dict[str, str | None]:
        """Every owner's adapter version now (None: the aligned model itself)."""
        if self.evolution is None:
            return dict(self.deciding)
        versions = self.evolution.lineage.current
        return {o: versions[o].name if o in versions else None for o in self.deciding}

    def after_round(self, played: PlayedRound) -> Learned:
        now = self.current()
        self.score([*self.deciding.values(), *now.values()])
        rows = [self.row(played.round, "round", o, a) for o, a in self.deciding.items()]
        rows += [
            self.row(played.round, "update", o, a) for o, a in now.items() if a != self.deciding[o]
        ]
        self.deciding = now
        self.scores = {a: s for a, s in self.scores.items() if a in set(now.values())}
        return Learned(references=rows)

    def score(self, adapters: Sequence[str | None]) -> None:
        """Label log-probabilities of the probes under every adapter not scored yet, in one
        batched call; the references first (once per run)."""
        if self.references is None:
            aligned = probe_logprobs(self.scorer, self.probes, [None] * len(self.probes))
            self.references = {"aligned": aligned, "base": self.base_logprobs(aligned)}
        new = sorted({a for a in adapters if a not in self.scores}, key=str)
        if not new:
            return
        names = [a for a in new for _ in self.probes]
        scored = probe_logprobs(self.scorer, self.probes, names).view(len(new), len(self.probes), 2)
        self.scores.update(zip(new, scored, strict=True))

    def base_logprobs(self, aligned: torch.Tensor) -> torch.Tensor | None:
        """The probes under the pre-trained base: the aligned scores when the policy is the
        base itself, else its checkpoint loaded, scored with the policy's tokenizer and
        chat template, and freed."""
        if self.base is None:
            return None
        if self.policy is not None and self.base.resolve() == self.policy.resolve():
            return aligned
        from agents.backends.loading import load_checkpoint

        model, tokenizer = load_checkpoint(
            self.base, self.scorer.device, next(self.scorer.adapters.model.parameters()).dtype
        )
        if len(tokenizer) != len(self.scorer.tokenizer):
            raise InputError(
                f"reference.base: {self.base} has a vocabulary of {len(tokenizer)} tokens, the "
                f"policy {len(self.scorer.tokenizer)}; the base must share the policy's tokenizer"
            )
        base = LabelScorer(AdapterTable(model), self.scorer.tokenizer, self.scorer.template_kwargs)
        scores = probe_logprobs(base, self.probes, [None] * len(self.probes))
        del base, model
        return scores

    def row(self, t: int, stage: str, owner: str, adapter: str | None) -> dict:
        out = {"round": t, "stage": stage, "owner": owner, "adapter": adapter}
        return {
            **out,
            "probes": len(self.probes),
            **distances(self.scores[adapter], self.references),
        }

    def state_dict(self) -> dict:
        return {"deciding": dict(self.deciding)}

    def load_state_dict(self, state: dict) -> None:
        """Restore the owners' adapters and score them now: a learner before this one may
        retire them in the next round (evolution loads its versions first)."""
        self.deciding = dict(state["deciding"])
        self.scores = {}
        self.score(list(self.deciding.values()))
