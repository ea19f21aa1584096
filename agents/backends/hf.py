"""backend=hf: any local Hugging Face causal LM, with PEFT LoRA adapters, one batch a round.

score: exact label log-probabilities (agents/backends/label_scorer.py, shared with the
LoRA trainer); the choice is drawn from the pair normalised.

generate: sampled with the run's RNG (one torch.Generator per request, so a request
samples the same text whatever batch it is in) and parsed by agents.parsing.

Requests are sorted by length and cut into micro-batches of at most `batch_tokens`
padded tokens, left-padded; a micro-batch that runs out of device memory is halved, and
the budget lowered, until it fits. A batch mixing LoRA adapters goes through PEFT's
`adapter_names=` in a single forward.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from transformers import DynamicCache, TemperatureLogitsWarper, TopPLogitsWarper

from agents.backends.adapters import AdapterTable
from agents.backends.base import Backend
from agents.backends.batching import left_padded, micro_batches, within_memory
from agents.backends.label_scorer import LabelScorer
from agents.backends.loading import load_checkpoint, resolve_device, resolve_dtype
from agents.backends.scoring import (
    generated_decision,
    request_seeds,
    scored_decision,
    use_chat_template,
)
from agents.backends.settings import HFConfig, LocalConfig
from agents.decision import Decision, DecisionRequest


class HFBackend(Backend):
    """A transformers causal LM deciding a whole round in length-sorted micro-batches."""

    def __init__(
        self,
        rng: np.random.Generator,
        model,
        tokenizer,
        *,
        batch_tokens: int = 16384,
        argmax: bool = False,
        temperature: float = 1.0,
        top_p: float = 1.0,
        max_new_tokens: int = 256,
        chat_template_kwargs: Mapping | None = None,
    ):
        super().__init__(rng)
        self.adapters = AdapterTable(model)
        self.scorer = LabelScorer(self.adapters, tokenizer, chat_template_kwargs)
        self.tokenizer = tokenizer
        self.device = self.scorer.device
        self.batch_tokens = batch_tokens
        self.argmax = argmax
        self.temperature = temperature
        self.top_p = top_p
        self.max_new_tokens = max_new_tokens
        eos = model.generation_config.eos_token_id
        self.eos = set(eos if isinstance(eos, list) else [eos]) | {tokenizer.eos_token_id}
        self.eos.discard(None)

    @classmethod
    def from_config(cls, settings: HFConfig, rng: np.random.Generator) -> HFBackend:
        """backend=hf: the checkpoint at backend.model.path, its adapters and template."""
        model = settings.model
        return cls.serving(
            settings,
            rng,
            model.path,
            model.attn_implementation,
            settings.chat_template,
            settings.adapters,
        )

    @classmethod
    def serving(
        cls,
        settings: LocalConfig,
        rng: np.random.Generator,
        path: str | Path | None,
        attention: str | None = None,
        chat_template: str | None = None,
        adapters: Mapping[str, Path] | None = None,
    ) -> HFBackend:
        """The checkpoint at `path` served with the settings of conf/backend/hf.yaml or
        organism.yaml; `attention`, `chat_template` and `adapters` as backend=hf names
        them (None: transformers' attention, the checkpoint's own template, no adapter)."""
        device = resolve_device(settings.model.device)
        dtype = resolve_dtype(settings.model.dtype, device)
        model, tokenizer = load_checkpoint(path, device, dtype, attention)
        kwargs = settings.chat_template_kwargs
        use_chat_template(tokenizer, chat_template, f"backend.model.path: {path}", kwargs)
        backend = cls(rng, model, tokenizer, **cls.settings(settings))
        if adapters:
            backend.load_adapters(adapters)
        return backend

    @staticmethod
    def settings(settings: LocalConfig) -> dict:
        """The constructor's keywords (batching, scoring, sampling) from typed settings."""
        return {
            "batch_tokens": settings.batch_tokens,
            "argmax": settings.score.argmax,
            **settings.generate.sampling("max_new_tokens"),
            "chat_template_kwargs": settings.chat_template_kwargs,
        }

    @property
    def model(self):
        """The model as it runs now (wrapped by PEFT once it holds an adapter)."""
        return self.adapters.model

    def trainable(self) -> LabelScorer:
        return self.scorer

    def load_adapters(self, adapters: Mapping[str, Path]) -> None:
        """Add PEFT LoRA adapters (name -> directory in PEFT's layout) next to the others."""
        self.adapters.load(adapters)

    # -- deciding --------------------------------------------------------------------

    def decide(self, requests: Sequence[DecisionRequest], mode: str) -> list[Decision]:
        self.check_mode(mode)
        if not requests:
            return []
        if mode == "score":
            return self.scored(requests)
        return self.generated(requests)

    def scored(self, requests: Sequence[DecisionRequest]) -> list[Decision]:
        prompts = [self.scorer.prompt_text(r) for r in requests]
        draws = np.full(len(requests), 0.5) if self.argmax else self.rng.random(len(requests))
        logprobs, n_prompt, latency = self.label_logprobs(requests, prompts)
        return [
            scored_decision(
                r.choices,
                {r.choices.comply: lp[0], r.choices.violate: lp[1]},
                float(draw),
                prompt_tokens=n,
                latency_s=s,
            )
            for r, lp, draw, n, s in zip(requests, logprobs, draws, n_prompt, latency, strict=True)
        ]

    def label_logprobs(
        self, requests: Sequence[DecisionRequest], prompts: Sequence[str]
    ) -> tuple[list[tuple[float, float]], list[int], list[float]]:
        """(log P(comply), log P(violate)) per request, its prompt tokens and batch latency."""
        prefixes, tails, n_prompt = self.scorer.score_inputs(requests, prompts)
        lengths = [len(p) + max(len(t) for t in ts) for p, ts in zip(prefixes, tails, strict=True)]
        out: list[tuple[float, float]] = [(0.0, 0.0)] * len(requests)
        latency = [0.0] * len(requests)

        @torch.inference_mode()
        def scored(batch: list[int]) -> list[list[float]]:
            return self.scorer.tail_logprobs(
                [prefixes[i] for i in batch],
                [tails[i] for i in batch],
                self.adapters.routing([requests[i].adapter for i in batch]),
            ).tolist()

        for batch, scores, took in self.in_batches(lengths, scored):
            for i, s in zip(batch, scores, strict=True):
                out[i], latency[i] = tuple(s), took
        return out, n_prompt, latency

    def in_batches(self, lengths: Sequence[int], compute) -> list[tuple[list[int], object, float]]:
        """(batch, compute(batch), seconds) for length-sorted micro-batches within the budget.

        A batch the device has no memory for is halved until it fits, and the budget
        lowered to what the halves need, with a warning (the run's manifest keeps it with
        its round). Results depend on the batching only in float rounding: a split moves
        log-probabilities by at most 1e-5 (measured 6e-7 in float32; other padding widths
        sum in another order), so a run that split is equal, not bit-identical, to one
        that did not.
        """
        done, halves = within_memory(
            micro_batches(lengths, self.batch_tokens),
            compute,
            self.device,
            lambda row: (
                f"backend.model: one request of {lengths[row]} tokens does not fit in "
                f"{self.device.type} memory; use a smaller model or shorter prompts "
                "(agents.memory_window)"
            ),
        )
        if halves:
            budget = min(len(h) * max(lengths[i] for i in h) for h in halves)
            warnings.warn(
                f"backend.batch_tokens: {self.batch_tokens} ran out of {self.device.type} "
                f"memory; using {budget} from now on",
                stacklevel=3,
            )
            self.batch_tokens = budget
        return done

    def generated(self, requests: Sequence[DecisionRequest]) -> list[Decision]:
        seeds = request_seeds(self.rng, len(requests))
        prompts = self.scorer.encode([self.scorer.prompt_text(r) for r in requests])
        lengths = [len(p) + self.max_new_tokens for p in prompts]
        out: list[Decision | None] = [None] * len(requests)

        def sampled(batch: list[int]) -> list[list[int]]:
            return self.sample(
                [prompts[i] for i in batch],
                [seeds[i] for i in batch],
                self.adapters.routing([requests[i].adapter for i in batch]),
            )

        for batch, completions, took in self.in_batches(lengths, sampled):
            for i, ids in zip(batch, completions, strict=True):
                out[i] = generated_decision(
                    self.tokenizer.decode(ids, skip_special_tokens=True),
                    requests[i].choices,
                    prompt_tokens=len(prompts[i]),
                    completion_tokens=len(ids),
                    latency_s=took,
                )
        return out

    @torch.inference_mode()
    def sample(
        self, prompts: Sequence[Sequence[int]], seeds: Sequence[int], adapter: dict
    ) -> list[list[int]]:
        """Completion token ids per row, up to and including its end token."""
        ids, mask, positions = left_padded(prompts, self.scorer.pad, self.device)
        generators = [torch.Generator(device=self.device).manual_seed(s) for s in seeds]
        warpers = [TemperatureLogitsWarper(self.temperature)] if self.temperature > 0 else []
        if self.top_p < 1.0:
            warpers.append(TopPLogitsWarper(self.top_p))
        cache = DynamicCache(config=self.adapters.model.config)
        done = [False] * len(prompts)
        completions: list[list[int]] = [[] for _ in prompts]
        step_ids, step_positions = ids, positions
        for _ in range(self.max_new_tokens):
            logits = self.scorer.last_logits(step_ids, mask, step_positions, cache, adapter)
            for warp in warpers:
                logits = warp(step_ids, logits)
            if self.temperature > 0:
                probs = logits.softmax(-1)
                chosen = [
                    int(torch.multinomial(probs[b], 1, generator=g))
                    for b, g in enumerate(generators)
                ]
            else:
                chosen = logits.argmax(-1).tolist()
            for b, token in enumerate(chosen):
                if not done[b]:
                    completions[b].append(token)
                    done[b] = token in self.eos
            if all(done):
                break
            step_ids = torch.tensor(chosen, device=self.device)[:, None]
            step_positions = step_positions[:, -1:] + 1
            mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
        return completions
