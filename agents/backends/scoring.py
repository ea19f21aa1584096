"""Label scoring that every LLM backend and trainer shares: prompts, answers, decisions.

`backend=hf`, `backend=vllm` (vLLM's offline engine) and `backend=openai` (any
OpenAI-compatible server) build the same prompts and read the answers the same way, so
a run records the same kind of decisions whichever way the model is run:

- generate: the agent's chat messages; the sampled answer is parsed for ATP's
  `{"choice": ...}` JSON (agents.parsing, thinking stripped).
- score: for each of the two labels, the conversation followed by the whole answer
  (`{"choice": "<label>"}`): rendered here as backend=hf renders it (vLLM engine), or
  sent as an assistant turn the server continues (OpenAI server,
  `continue_final_message`). The prompt log-probabilities of the tokens after the two
  prompts' common prefix give log P(label | context) exactly, however the labels
  tokenise; the choice is drawn from the pair normalised.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from agents.decision import Decision, DecisionRequest
from agents.parsing import decision_json, parse_choice
from envs.base import Choices
from envs.errors import InputError


class ServedModelError(InputError):
    """The served model failed mid-run: server unreachable or silent, or changed answers.

    A subclass of InputError so that entry points report it the same way, as one line
    with exit code 2, while the rounds already recorded stay on disk.
    """


def one_line(text: str, limit: int = 200) -> str:
    """A server's message squeezed onto one line, so errors stay one line."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def score_conversations(request: DecisionRequest) -> list[list[dict]]:
    """The two conversations to score, comply first: the messages, then the whole answer."""
    return [
        [*request.messages, {"role": "assistant", "content": decision_json(label)}]
        for label in (request.choices.comply, request.choices.violate)
    ]


def use_chat_template(tokenizer, file: str | None, checkpoint: str, template_kwargs) -> None:
    """Give the tokenizer the Jinja chat template in `file`, or keep the checkpoint's own;
    either way render a short conversation now, so that a model without a template, or a
    template that cannot render tiplab's messages, stops the run before its first round.

    `checkpoint` names the model's config field and value, for the error messages.
    """
    if file:
        path = Path(file).expanduser()
        if not path.is_file():
            raise InputError(f"backend.chat_template: {path} is not a file (a Jinja chat template)")
        tokenizer.chat_template = path.read_text()
    elif hasattr(tokenizer, "chat_template") and not tokenizer.chat_template:  # HF tokenizers
        raise InputError(
            f"{checkpoint} has no chat template (a base model?); "
            "give one with backend.chat_template=FILE.jinja"
        )
    where = f"backend.chat_template: {file}" if file else f"{checkpoint}: its chat template"
    probe = [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}]
    try:
        prompt_text(tokenizer, probe, **template_kwargs)
    except Exception as e:  # noqa: BLE001  (Jinja raises many kinds; all mean the same here)
        raise InputError(
            f"{where} cannot render a system and a user message: {one_line(e)}"
        ) from None


def prompt_text(tokenizer, messages: list[dict], **template_kwargs) -> str:
    """The conversation as the model's chat template renders it, opening the assistant's turn."""
    return tokenizer.apply_chat_template(
        messages, tokenize=False, add_generation_prompt=True, **template_kwargs
    )


def scored_token_ids(tokenizer, request: DecisionRequest, **template_kwargs) -> list[list[int]]:
    """The two scored prompts as token ids, comply first, rendered as backend=hf renders them.

    Text is the chat template's prompt followed by the whole answer; the template adds any
    special tokens itself.
    """
    prompt = prompt_text(tokenizer, request.messages, **template_kwargs)
    return [
        tokenizer.encode(prompt + decision_json(label), add_special_tokens=False)
        for label in (request.choices.comply, request.choices.violate)
    ]


def common_prefix_length(a: Sequence[int], b: Sequence[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def label_logprobs(
    token_ids: Sequence[Sequence[int]], token_logprobs: Sequence[Sequence[float | None]]
) -> list[float]:
    """log P(tail | shared prefix) of each scored prompt (the label and the rest of the answer).

    `token_ids[k]` are prompt k's tokens and `token_logprobs[k][i]` the log-probability
    of token i given the tokens before it (None for the first token, which has none).
    """
    start = common_prefix_length(*token_ids)
    if start == 0 or any(start >= len(ids) for ids in token_ids):
        raise ServedModelError(
            "score mode: the two scored prompts share no context or one contains the other; "
            "the server did not render the assistant prefill (continue_final_message)"
        )
    return [float(sum(lps[start:])) for lps in token_logprobs]


def p_violate(logprobs: Mapping[str, float], choices: Choices) -> float:
    """P(violate) from the two labels' log-probabilities, normalised over the pair."""
    return 1.0 / (1.0 + math.exp(logprobs[choices.comply] - logprobs[choices.violate]))


def scored_decision(
    choices: Choices,
    logprobs: Mapping[str, float],
    draw: float,
    prompt_tokens: int = 0,
    latency_s: float = 0.0,
) -> Decision:
    """The decision drawn (with uniform `draw`) from the labels' exact probabilities."""
    p = p_violate(logprobs, choices)
    label = choices.label(draw < p)
    return Decision(
        choice=label,
        p_violate=p,
        text=decision_json(label),
        prompt_tokens=prompt_tokens,
        latency_s=latency_s,
    )


def generated_decision(
    text: str,
    choices: Choices,
    prompt_tokens: int = 0,
    completion_tokens: int = 0,
    latency_s: float = 0.0,
) -> Decision:
    """The decision parsed from a sampled answer (choice None when it names neither label)."""
    return Decision(
        choice=parse_choice(text, choices),
        p_violate=None,
        text=text,
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        latency_s=latency_s,
    )


def constrained_answers(choices: Choices) -> list[str]:
    """The only two answers a constrained generation may give."""
    return [decision_json(label) for label in (choices.comply, choices.violate)]


def request_seeds(rng: np.random.Generator, n: int) -> list[int]:
    """One sampling seed per request, from the run's policy stream (reproducible runs)."""
    return [int(s) for s in rng.integers(0, 2**31 - 1, size=n)]
