"""Exact label log-probabilities from a transformers model: what score mode reads and
what LoRA updates train on, computed the same way for both.

The prompt is the model's own chat template with a generation prompt, followed by ATP's
whole answer for each label (`{"choice": "<label>"}`): scoring the complete object, not
a cut-off prefix of it, tokenises it as the model would generate it (a tokenizer may
merge the closing quote with the brace). Both labels' token sequences share a prefix;
one forward of it (its KV cache kept) and one short forward per label give
log P(answer tail | prefix) exactly, however the labels tokenise.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import transformers
from packaging.version import Version
from transformers import DynamicCache

from agents.backends.adapters import AdapterTable
from agents.backends.batching import left_padded, right_padded
from agents.backends.scoring import common_prefix_length
from agents.decision import DecisionRequest
from agents.parsing import decision_json

# transformers 5.24 renamed the forward's past_key_values to cache (the old name goes in
# 5.40); vLLM's GPU environment runs the transformers vLLM pins, which may be 4.x.
CACHE = "cache" if Version(transformers.__version__) >= Version("5.24") else "past_key_values"


class LabelScorer:
    """A model's view for scoring labels: its adapter table, tokenizer and chat template.

    backend=hf decides with it and the LoRA trainer trains through it; both share the
    one adapter table, so a version the trainer adds is the version the backend runs.
    """

    def __init__(self, adapters: AdapterTable, tokenizer, template_kwargs: Mapping | None = None):
        self.adapters = adapters
        self.tokenizer = tokenizer
        self.template_kwargs = dict(template_kwargs or {})
        self.device = next(adapters.model.parameters()).device
        self.pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0

    def module_names(self) -> set[str]:
        """The short names of the model's modules (what LoRA's target_modules name)."""
        return {name.rsplit(".", 1)[-1] for name, _ in self.adapters.model.named_modules()}

    def prompt_text(self, request: DecisionRequest) -> str:
        return self.tokenizer.apply_chat_template(
            request.messages, tokenize=False, add_generation_prompt=True, **self.template_kwargs
        )

    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        return self.tokenizer(list(texts), add_special_tokens=False)["input_ids"]

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
            self.adapters.model(
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
        cache = DynamicCache(config=self.adapters.model.config)
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
        logits = self.adapters.model(
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
