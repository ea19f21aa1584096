"""backend=vllm: vLLM's offline engine in this process, one batched call per round, multi-LoRA.

Written against vLLM v0.12+ (checked on the main branch of May 2026): `LLM(...,
enable_lora, max_loras, max_lora_rank, max_cpu_loras, enable_sleep_mode)`,
`LLM.generate(prompts, sampling_params, lora_request=[LoRARequest | None per prompt])`,
`SamplingParams(prompt_logprobs=0, structured_outputs=StructuredOutputsParams(choice=...))`
(the `guided_decoding`/`GuidedDecodingParams` names were removed in v0.12),
`LoRARequest(lora_name, lora_int_id, lora_path)`, `LLM.sleep(level=1)` and `LLM.wake_up()`.

vLLM brings its own CUDA torch and transformers (4.x before vLLM 0.24, >= 5.5.3 since), so
it lives in a separate GPU environment (see README); this module is imported only when
backend=vllm is chosen, and says in one line what is missing otherwise.
"""

from __future__ import annotations

import gc
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from agents.backends.adapters import AdapterRegistry
from agents.backends.base import Backend
from agents.backends.scoring import (
    ServedModelError,
    common_prefix_length,
    constrained_answers,
    generated_decision,
    label_logprobs,
    prompt_text,
    request_seeds,
    sampling_settings,
    scored_decision,
    scored_token_ids,
    use_chat_template,
)
from agents.decision import Decision, DecisionRequest
from envs.errors import InputError, boolean

ENGINE_SETTINGS = (
    "dtype",
    "tensor_parallel_size",
    "gpu_memory_utilization",
    "max_model_len",
    "enable_lora",
    "max_loras",
    "max_lora_rank",
    "max_cpu_loras",
    "enable_sleep_mode",
    "enable_prefix_caching",
    "enforce_eager",
)
# One fixed prompt each active adapter answers greedily before sleep and after wake-up.
CHECK_MESSAGES = [{"role": "user", "content": 'Answer with {"choice": "yes"} or {"choice": "no"}.'}]
CHECK_TOKENS = 8


def import_vllm() -> SimpleNamespace:
    """vLLM's classes, or a one-line InputError naming what is missing (vLLM, v0.12+, a GPU)."""
    try:
        import vllm
    except ImportError:
        raise InputError(
            "backend=vllm: vLLM is not installed here; install tiplab[vllm] in a separate "
            "GPU environment (README: 'GPU environment'), or serve the model and use "
            "backend=openai"
        ) from None
    try:
        from vllm import LLM, SamplingParams
        from vllm.lora.request import LoRARequest
        from vllm.sampling_params import StructuredOutputsParams
    except ImportError:
        raise InputError(
            f"backend=vllm: vLLM {vllm.__version__} is too old; tiplab needs vLLM >= 0.12"
        ) from None
    import torch

    if not torch.cuda.is_available():
        raise InputError("backend=vllm: no CUDA GPU is visible; vLLM's engine needs one")
    return SimpleNamespace(
        LLM=LLM,
        SamplingParams=SamplingParams,
        LoRARequest=LoRARequest,
        StructuredOutputsParams=StructuredOutputsParams,
    )


def prompt_token_logprobs(output) -> tuple[list[int], list[float | None]]:
    """A RequestOutput's prompt tokens and their log-probabilities (None for the first)."""
    ids = list(output.prompt_token_ids)
    entries = output.prompt_logprobs
    return ids, [None if e is None else e[t].logprob for e, t in zip(entries, ids, strict=True)]


class VLLMEngine(Backend):
    """Decides each round with one `LLM.generate` call, each request with its agent's LoRA."""

    def __init__(self, rng: np.random.Generator, cfg: Mapping):
        super().__init__(rng)
        if not cfg.get("model"):
            raise InputError("backend.model: required (a local checkpoint directory or hub id)")
        self.vllm = import_vllm()
        settings = {k: cfg[k] for k in ENGINE_SETTINGS if cfg.get(k) is not None}
        self.llm = self.vllm.LLM(model=str(cfg["model"]), seed=int(cfg["seed"]), **settings)
        self.tokenizer = self.llm.get_tokenizer()
        self.template_kwargs = dict(cfg.get("chat_template_kwargs") or {})
        use_chat_template(
            self.tokenizer,
            cfg.get("chat_template"),
            f"backend.model: {cfg['model']}",
            self.template_kwargs,
        )
        gen = cfg["generate"]
        temperature, top_p, max_new_tokens = sampling_settings(gen)
        self.sampling = {"temperature": temperature, "top_p": top_p, "max_tokens": max_new_tokens}
        self.constrained = boolean(gen.get("constrained", False), "backend.generate.constrained")
        self.adapters = AdapterRegistry()
        self.loras: dict[str, object] = {}
        self.active: list[str | None] = [None]
        self.answers_before_sleep: dict[str | None, list[int]] = {}

    def decide(self, requests: Sequence[DecisionRequest], mode: str) -> list[Decision]:
        self.check_mode(mode)
        self.active = sorted({r.adapter for r in requests}, key=lambda a: a or "")
        if mode == "score":
            return self._score(requests)
        return self._generate(requests)

    def _lora(self, adapter: str | None):
        found = self.adapters.get(adapter)
        return None if found is None else self.loras[found.name]

    def _score(self, requests: Sequence[DecisionRequest]) -> list[Decision]:
        pairs = [scored_token_ids(self.tokenizer, r, **self.template_kwargs) for r in requests]
        outputs = self.llm.generate(
            [{"prompt_token_ids": ids} for pair in pairs for ids in pair],
            self.vllm.SamplingParams(max_tokens=1, temperature=0.0, prompt_logprobs=0),
            lora_request=[self._lora(r.adapter) for r in requests for _ in range(2)],
            use_tqdm=False,
        )
        draws = self.rng.random(len(requests))
        decisions = []
        for i, r in enumerate(requests):
            ids, lps = zip(
                *(prompt_token_logprobs(o) for o in outputs[2 * i : 2 * i + 2]), strict=True
            )
            comply, violate = label_logprobs(ids, lps)
            decisions.append(
                scored_decision(
                    r.choices,
                    {r.choices.comply: comply, r.choices.violate: violate},
                    float(draws[i]),
                    prompt_tokens=common_prefix_length(*ids),
                )
            )
        return decisions

    def _prompt(self, messages: list[dict]) -> dict:
        text = prompt_text(self.tokenizer, messages, **self.template_kwargs)
        return {"prompt_token_ids": self.tokenizer.encode(text, add_special_tokens=False)}

    def _sampling(self, request: DecisionRequest, seed: int):
        structured = (
            self.vllm.StructuredOutputsParams(choice=constrained_answers(request.choices))
            if self.constrained
            else None
        )
        return self.vllm.SamplingParams(**self.sampling, seed=seed, structured_outputs=structured)

    def _generate(self, requests: Sequence[DecisionRequest]) -> list[Decision]:
        seeds = request_seeds(self.rng, len(requests))
        outputs = self.llm.generate(
            [self._prompt(r.messages) for r in requests],
            [self._sampling(r, s) for r, s in zip(requests, seeds, strict=True)],
            lora_request=[self._lora(r.adapter) for r in requests],
            use_tqdm=False,
        )
        return [
            generated_decision(
                o.outputs[0].text,
                r.choices,
                prompt_tokens=len(o.prompt_token_ids),
                completion_tokens=len(o.outputs[0].token_ids),
            )
            for r, o in zip(requests, outputs, strict=True)
        ]

    def load_adapters(self, adapters: Mapping[str, Path]) -> None:
        """Register new versions; vLLM loads each on first use, by its new name, id and path."""
        for name, path in adapters.items():
            adapter = self.adapters.add(name, path)
            self.loras[name] = self.vllm.LoRARequest(adapter.name, adapter.id, str(adapter.path))

    def check_answers(self) -> dict[str | None, list[int]]:
        """Greedy tokens of the fixed check prompt, per active adapter (None: the base model).

        Computed from scratch each time (prefix cache reset, as sleep resets it), so that
        before and after a sleep they go through the same kernels.
        """
        self.llm.reset_prefix_cache()
        outputs = self.llm.generate(
            [self._prompt(CHECK_MESSAGES)] * len(self.active),
            self.vllm.SamplingParams(max_tokens=CHECK_TOKENS, temperature=0.0, seed=0),
            lora_request=[self._lora(a) for a in self.active],
            use_tqdm=False,
        )
        return {a: list(o.outputs[0].token_ids) for a, o in zip(self.active, outputs, strict=True)}

    def sleep(self) -> None:
        """Free the GPU for a LoRA update (level 1: weights to CPU RAM, KV cache dropped)."""
        self.answers_before_sleep = self.check_answers()
        self.llm.sleep(level=1)

    def wake_up(self) -> None:
        """Restore the engine, then check that every active adapter still answers as before."""
        self.llm.wake_up()
        after = self.check_answers()
        changed = [a or "base model" for a in after if after[a] != self.answers_before_sleep[a]]
        if changed:
            raise ServedModelError(
                f"backend.vllm: after wake_up, {', '.join(changed)} answer the check prompt "
                "differently than before sleep; the engine did not restore its weights"
            )

    def state_dict(self) -> dict:
        return {**super().state_dict(), "adapters": self.adapters.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.load_adapters({a["name"]: Path(a["path"]) for a in state.get("adapters", [])})

    def close(self) -> None:
        self.llm = None
        gc.collect()
