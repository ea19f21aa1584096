"""backend=hf: any local Hugging Face causal LM, with PEFT LoRA adapters, one batch a round.

score: the prompt is the model's own chat template with a generation prompt, followed
by ATP's whole answer for each label (`{"choice": "<label>"}`): scoring the complete
object, not a cut-off prefix of it, tokenises it as the model would generate it (a
tokenizer may merge the closing quote with the brace). Both labels' token sequences
share a prefix; one forward of it (its KV cache kept) and one short forward per label
give log P(answer tail | prefix) exactly, however the labels tokenise. The choice is
drawn from the pair normalised.

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
from time import perf_counter

import numpy as np
import torch
import transformers
from packaging.version import Version
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    DynamicCache,
    TemperatureLogitsWarper,
    TopPLogitsWarper,
)

from agents.backends.base import Backend
from agents.backends.served import (
    common_prefix_length,
    generated_decision,
    request_seeds,
    sampling_settings,
    scored_decision,
    use_chat_template,
)
from agents.decision import Decision, DecisionRequest
from agents.parsing import decision_json
from envs.errors import InputError, boolean, integer

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
# transformers 5.24 renamed the forward's past_key_values to cache (the old name goes in
# 5.40); vLLM's GPU environment runs the transformers vLLM pins, which may be 4.x.
CACHE = "cache" if Version(transformers.__version__) >= Version("5.24") else "past_key_values"
BASE = "__base__"  # PEFT's name for "no adapter" in a mixed batch


def resolve_device(name: str) -> torch.device:
    """auto: the GPU when torch finds one, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    expected = InputError(f"backend.model.device: {name!r}; expected auto, cpu or cuda[:N]")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise expected from None
    if device.type not in ("cpu", "cuda"):
        raise expected
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"backend.model.device: {name}, but torch finds no CUDA GPU here")
    return device


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    """auto: bfloat16 on a GPU, float32 on a CPU."""
    if name == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    if name not in DTYPES:
        raise InputError(
            f"backend.model.dtype: {name!r}; expected auto or one of {', '.join(DTYPES)}"
        )
    return DTYPES[name]


def load_checkpoint(
    path: str | Path | None,
    device: torch.device,
    dtype: torch.dtype,
    attention: str | None = None,
):
    """Model and tokenizer from a local Hugging Face directory (never from the hub).

    `attention`: transformers' attn_implementation (None: its default, sdpa).
    """
    if not path:
        raise InputError("backend.model.path: required (a local Hugging Face model directory)")
    path = Path(path).expanduser()
    if not (path / "config.json").is_file():
        raise InputError(f"backend.model.path: {path} is not a Hugging Face model directory")
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, local_files_only=True)
    except (OSError, ValueError) as e:
        raise InputError(f"backend.model.path: cannot load {path}: {first_line(e)}") from None
    if attention is not None:
        try:
            model.set_attn_implementation(attention)
        except (ImportError, ValueError) as e:
            raise InputError(f"backend.model.attn_implementation: {first_line(e)}") from None
    return model.to(device).eval(), tokenizer


def first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def micro_batches(lengths: Sequence[int], budget: int) -> list[list[int]]:
    """Indices sorted by length, cut so that rows x longest row <= budget (one row at least)."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    batches: list[list[int]] = []
    for i in order:
        if batches and (len(batches[-1]) + 1) * lengths[i] <= budget:
            batches[-1].append(i)
        else:
            batches.append([i])
    return batches


def within_memory(
    parts: Sequence[Sequence[int]], compute, device: torch.device, too_large
) -> tuple[list[tuple[Sequence[int], object, float]], list[Sequence[int]]]:
    """(part, compute(part), seconds) for each part of row indices, in order, and the halves
    made on the way: a part the device has no memory for is split in two until it fits.

    compute must leave nothing behind when it fails; a single row that does not fit is an
    InputError with the message too_large(row).
    """
    done, halves, pending = [], [], list(parts)
    while pending:
        part = pending.pop(0)
        tic = perf_counter()
        try:
            done.append((part, compute(part), perf_counter() - tic))
        except torch.OutOfMemoryError:
            if len(part) == 1:
                raise InputError(too_large(part[0])) from None
            if device.type == "cuda":
                torch.cuda.empty_cache()
            middle = len(part) // 2
            pending[:0] = [part[:middle], part[middle:]]
            halves += pending[:2]
    return done, halves


def left_padded(rows: Sequence[Sequence[int]], pad: int, device: torch.device):
    """input_ids, attention_mask and position_ids of rows padded on the left."""
    width = max(len(r) for r in rows)
    ids = torch.tensor([[pad] * (width - len(r)) + list(r) for r in rows], dtype=torch.long)
    lengths = torch.tensor([len(r) for r in rows])
    mask = (torch.arange(width) >= width - lengths[:, None]).long()
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    return ids.to(device), mask.to(device), positions.to(device)


def right_padded(rows: Sequence[Sequence[int]], pad: int, device: torch.device):
    """input_ids and attention_mask of rows padded on the right (width at least 1)."""
    width = max(1, max(len(r) for r in rows))
    ids = torch.tensor([list(r) + [pad] * (width - len(r)) for r in rows], dtype=torch.long)
    lengths = torch.tensor([len(r) for r in rows])
    mask = (torch.arange(width) < lengths[:, None]).long()
    return ids.to(device), mask.to(device)


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
        self.model = model
        self.tokenizer = tokenizer
        self.device = next(model.parameters()).device
        self.pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        self.batch_tokens = batch_tokens
        self.argmax = argmax
        self.temperature = temperature
        self.top_p = top_p
        self.max_new_tokens = max_new_tokens
        self.template_kwargs = dict(chat_template_kwargs or {})
        self.peft_names: dict[str, str] = {}  # adapter version name -> the PEFT adapter it runs as
        eos = model.generation_config.eos_token_id
        self.eos = set(eos if isinstance(eos, list) else [eos]) | {tokenizer.eos_token_id}
        self.eos.discard(None)

    @classmethod
    def from_config(cls, cfg: Mapping, rng: np.random.Generator) -> HFBackend:
        """backend=hf: the checkpoint at cfg.model.path and the settings of conf/backend/hf.yaml."""
        model_cfg = cfg.get("model") or {}
        device = resolve_device(model_cfg.get("device", "auto"))
        dtype = resolve_dtype(model_cfg.get("dtype", "auto"), device)
        model, tokenizer = load_checkpoint(
            model_cfg.get("path"), device, dtype, model_cfg.get("attn_implementation")
        )
        use_chat_template(
            tokenizer,
            cfg.get("chat_template"),
            f"backend.model.path: {model_cfg['path']}",
            cfg.get("chat_template_kwargs") or {},
        )
        backend = cls.from_settings(rng, model, tokenizer, cfg)
        if cfg.get("adapters"):
            backend.load_adapters(cfg["adapters"])
        return backend

    @classmethod
    def from_settings(cls, rng, model, tokenizer, cfg: Mapping) -> HFBackend:
        temperature, top_p, max_new_tokens = sampling_settings(cfg.get("generate", {}))
        return cls(
            rng,
            model,
            tokenizer,
            batch_tokens=integer(cfg.get("batch_tokens", 16384), "backend.batch_tokens"),
            argmax=boolean(cfg.get("score", {}).get("argmax", False), "backend.score.argmax"),
            temperature=temperature,
            top_p=top_p,
            max_new_tokens=max_new_tokens,
            chat_template_kwargs=cfg.get("chat_template_kwargs") or {},
        )

    # -- prompts ---------------------------------------------------------------------

    def prompt_text(self, request: DecisionRequest) -> str:
        return self.tokenizer.apply_chat_template(
            request.messages, tokenize=False, add_generation_prompt=True, **self.template_kwargs
        )

    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        return self.tokenizer(list(texts), add_special_tokens=False)["input_ids"]

    # -- adapters --------------------------------------------------------------------

    def load_adapters(self, adapters: Mapping[str, Path]) -> None:
        """Add PEFT LoRA adapters (name -> directory in PEFT's layout) next to the others."""
        from peft import PeftModel

        for name, path in adapters.items():
            path = Path(path).expanduser()
            if not (path / "adapter_config.json").is_file():
                raise InputError(f"adapter {name!r}: {path} holds no PEFT adapter_config.json")
            if name in self.peft_names:
                raise InputError(
                    f"adapter {name!r}: already loaded; a new version needs a new name"
                )
            if isinstance(self.model, PeftModel):
                self.model.load_adapter(str(path), adapter_name=name)
            else:
                self.model = PeftModel.from_pretrained(self.model, str(path), adapter_name=name)
            self.peft_names[name] = name
        self.model.eval()

    def adapter_kwargs(self, requests: Sequence[DecisionRequest]) -> dict:
        """PEFT's per-row adapter names for a batch; nothing when no adapter is loaded."""
        names = [r.adapter for r in requests]
        unknown = sorted({n for n in names if n is not None and n not in self.peft_names})
        if unknown:
            raise InputError(f"adapter {unknown[0]!r}: requested before it was loaded")
        if not self.peft_names:
            return {}
        return {"adapter_names": [self.peft_names[n] if n is not None else BASE for n in names]}

    # -- deciding --------------------------------------------------------------------

    def decide(self, requests: Sequence[DecisionRequest], mode: str) -> list[Decision]:
        self.check_mode(mode)
        if not requests:
            return []
        if mode == "score":
            return self.scored(requests)
        return self.generated(requests)

    def scored(self, requests: Sequence[DecisionRequest]) -> list[Decision]:
        prompts = [self.prompt_text(r) for r in requests]
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

    def score_inputs(self, requests: Sequence[DecisionRequest], prompts: Sequence[str]):
        """Per request: the tokens both answers share, each answer's own tail, prompt size.

        Prompts and answers are tokenised apart and joined (a round has few distinct
        answers) when that gives the tokens of the whole text, as it does for templates
        whose generation prompt ends in a special token or a newline; the first request
        checks it, and otherwise every whole text is tokenised.
        """
        labels = [(r.choices.comply, r.choices.violate) for r in requests]
        answers = sorted({decision_json(x) for pair in labels for x in pair})
        encoded = self.encode([*prompts, *answers, prompts[0] + decision_json(labels[0][0])])
        prompt_ids, whole = encoded[: len(prompts)], encoded[-1]
        answer_ids = dict(zip(answers, encoded[len(prompts) : -1], strict=True))
        if whole == prompt_ids[0] + answer_ids[decision_json(labels[0][0])]:
            pairs = [
                [ids + answer_ids[decision_json(x)] for x in pair]
                for ids, pair in zip(prompt_ids, labels, strict=True)
            ]
        else:
            texts = [
                p + decision_json(x) for p, pair in zip(prompts, labels, strict=True) for x in pair
            ]
            flat = self.encode(texts)
            pairs = [flat[i : i + 2] for i in range(0, len(flat), 2)]
        shared = [common_prefix_length(*pair) for pair in pairs]
        prefixes = [pair[0][:c] for pair, c in zip(pairs, shared, strict=True)]
        tails = [(pair[0][c:], pair[1][c:]) for pair, c in zip(pairs, shared, strict=True)]
        return prefixes, tails, [len(ids) for ids in prompt_ids]

    def label_logprobs(
        self, requests: Sequence[DecisionRequest], prompts: Sequence[str]
    ) -> tuple[list[tuple[float, float]], list[int], list[float]]:
        """(log P(comply), log P(violate)) per request, its prompt tokens and batch latency."""
        prefixes, tails, n_prompt = self.score_inputs(requests, prompts)
        lengths = [len(p) + max(len(t) for t in ts) for p, ts in zip(prefixes, tails, strict=True)]
        out: list[tuple[float, float]] = [(0.0, 0.0)] * len(requests)
        latency = [0.0] * len(requests)

        @torch.inference_mode()
        def scored(batch: list[int]) -> list[list[float]]:
            return self.tail_logprobs(
                [prefixes[i] for i in batch],
                [tails[i] for i in batch],
                self.adapter_kwargs([requests[i] for i in batch]),
            ).tolist()

        for batch, scores, took in self.in_batches(lengths, scored):
            for i, s in zip(batch, scores, strict=True):
                out[i], latency[i] = tuple(s), took
        return out, n_prompt, latency

    def in_batches(self, lengths: Sequence[int], compute) -> list[tuple[list[int], object, float]]:
        """(batch, compute(batch), seconds) for length-sorted micro-batches within the budget.

        A batch the device has no memory for is halved until it fits, and the budget
        lowered to what the halves need; results do not depend on how rows are batched.
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

    def label_logprob_tensor(
        self, requests: Sequence[DecisionRequest], adapter_names: Sequence[str]
    ) -> torch.Tensor:
        """[n, 2] log P(comply), log P(violate), differentiable, under the named PEFT adapters.

        What LoRA updates train on: the same prompts and answers that score mode reads.
        """
        prompts = [self.prompt_text(r) for r in requests]
        prefixes, tails, _ = self.score_inputs(requests, prompts)
        return self.tail_logprobs(prefixes, tails, {"adapter_names": list(adapter_names)})

    def last_logits(self, ids, mask, positions, cache: DynamicCache, adapter: dict):
        """[n, vocab] float logits at each row's last position; `cache` grows by `ids`."""
        return (
            self.model(
                input_ids=ids,
                attention_mask=mask,
                position_ids=positions,
                use_cache=True,
                logits_to_keep=1,
                **{CACHE: cache},
                **adapter,
            )
            .logits[:, -1]
            .float()
        )

    def tail_logprobs(
        self,
        prefixes: Sequence[Sequence[int]],
        tails: Sequence[tuple[Sequence[int], Sequence[int]]],
        adapter: dict,
    ) -> torch.Tensor:
        """[n, 2] log P(tail | prefix) for both tails of every row.

        One forward of the prefixes, keeping their KV cache; then one forward of both
        tails of every row at once: the cache repeated, row 2i going on with the first
        tail and row 2i+1 with the second.
        """
        ids, mask, positions = left_padded(prefixes, self.pad, self.device)
        cache = DynamicCache(config=self.model.config)
        first = self.last_logits(ids, mask, positions, cache, adapter).log_softmax(-1)
        both = [tail for pair in tails for tail in pair]
        heads = torch.tensor([tail[0] for tail in both], device=self.device).view(-1, 2)
        total = first.gather(1, heads)
        rest = [list(tail[1:]) for tail in both]
        if not any(rest):
            return total
        cache.batch_repeat_interleave(2)
        tail_ids, tail_mask = right_padded([tail[:-1] for tail in both], self.pad, self.device)
        targets, target_mask = right_padded(rest, self.pad, self.device)
        mask = mask.repeat_interleave(2, dim=0)
        logits = self.model(
            input_ids=tail_ids,
            attention_mask=torch.cat([mask, tail_mask], dim=1),
            position_ids=mask.sum(-1, keepdim=True) + torch.arange(tail_ids.shape[1]).to(mask),
            use_cache=True,
            **{CACHE: cache},
            **{key: [name for name in names for _ in (0, 1)] for key, names in adapter.items()},
        ).logits.float()
        lp = logits.log_softmax(-1)[:, : targets.shape[1]]
        rest_lp = (lp.gather(2, targets[..., None])[..., 0] * target_mask).sum(-1)
        return total + rest_lp.view(-1, 2)

    def generated(self, requests: Sequence[DecisionRequest]) -> list[Decision]:
        seeds = request_seeds(self.rng, len(requests))
        prompts = self.encode([self.prompt_text(r) for r in requests])
        lengths = [len(p) + self.max_new_tokens for p in prompts]
        out: list[Decision | None] = [None] * len(requests)

        def sampled(batch: list[int]) -> list[list[int]]:
            return self.sample(
                [prompts[i] for i in batch],
                [seeds[i] for i in batch],
                self.adapter_kwargs([requests[i] for i in batch]),
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
        ids, mask, positions = left_padded(prompts, self.pad, self.device)
        generators = [torch.Generator(device=self.device).manual_seed(s) for s in seeds]
        warpers = [TemperatureLogitsWarper(self.temperature)] if self.temperature > 0 else []
        if self.top_p < 1.0:
            warpers.append(TopPLogitsWarper(self.top_p))
        cache = DynamicCache(config=self.model.config)
        done = [False] * len(prompts)
        completions: list[list[int]] = [[] for _ in prompts]
        step_ids, step_positions = ids, positions
        for _ in range(self.max_new_tokens):
            logits = self.last_logits(step_ids, mask, step_positions, cache, adapter)
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
