"""backend=openai: the population's policy behind any OpenAI-compatible server.

Written against openai-python 3.x (Chat Completions; the client retries connection
errors, 408/409/429 and 5xx answers with exponential backoff) and vLLM's OpenAI server
as of v0.12+ (chat extra parameters `continue_final_message`, `add_generation_prompt`,
`prompt_logprobs`, `return_token_ids`; runtime adapters through
`POST /v1/load_lora_adapter` when started with VLLM_ALLOW_RUNTIME_LORA_UPDATING=True).

One round's requests run concurrently on a bounded thread pool (score mode with LoRA
adapters: one at a time, see `decide`). Generate mode works with any server. Score mode
needs prompt log-probabilities (vLLM's `prompt_logprobs`);
a server without them (hosted APIs, `transformers serve`) is refused up front with one
line. A server that stops answering mid-run ends the run with a ServedModelError; the
rounds already recorded stay on disk. The API key is read from the environment
variable that `backend.api_key_env` names, so it never enters the config, the manifest
or the records.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from time import perf_counter
from typing import TypeVar

import numpy as np
import openai

from agents.backends.adapters import AdapterRegistry
from agents.backends.base import Backend
from agents.backends.scoring import (
    ServedModelError,
    common_prefix_length,
    generated_decision,
    label_logprobs,
    one_line,
    request_seeds,
    score_conversations,
    scored_decision,
)
from agents.backends.settings import OpenAIConfig
from agents.decision import Decision, DecisionRequest
from agents.secrets import register
from envs.base import Choices
from envs.errors import InputError

T = TypeVar("T")
NO_KEY = "EMPTY"  # what local servers started without --api-key accept
# The client's HTTP stack logs every request at INFO: one line per agent and round.
CHATTY_LOGGERS = ("httpx", "httpx2", "openai")
SCORE_EXTRA = {
    "add_generation_prompt": False,
    "continue_final_message": True,
    "prompt_logprobs": 0,
    "return_token_ids": True,
}


def api_key(env_name: str | None) -> str:
    """The key from the environment variable named in config (no name: a local server)."""
    if not env_name:
        return NO_KEY
    key = os.environ.get(env_name)
    if not key:
        raise InputError(
            f"backend.api_key_env: environment variable {env_name} is not set "
            "(set it to the API key, or backend.api_key_env=null for a server without one)"
        )
    return register(key)


def prompt_token_logprobs(body: Mapping) -> tuple[list[int], list[float | None]] | None:
    """Token ids and per-token log-probabilities of a scored prompt (None: the server gave none).

    vLLM answers `prompt_logprobs` (one dict per prompt token, keyed by token id; the first
    is null) and, asked with `return_token_ids`, `prompt_token_ids`; older servers without
    the ids are read from the dicts, which hold the prompt token alone at prompt_logprobs=0.
    """
    entries = body.get("prompt_logprobs")
    if not entries:
        return None
    ids = body.get("prompt_token_ids") or [int(next(iter(e))) if e else -1 for e in entries]
    lps = [None if e is None else e[str(t)]["logprob"] for e, t in zip(entries, ids, strict=True)]
    return list(ids), lps


class RequestRejected(InputError):
    """The server refused a request (4xx): a feature it lacks, a model it does not serve."""

    def __init__(self, message: str, status: int):
        super().__init__(message)
        self.status = status


class OpenAIServer(Backend):
    """Decides a round through an OpenAI-compatible server, one request per agent (and label)."""

    def __init__(self, rng: np.random.Generator, settings: OpenAIConfig):
        super().__init__(rng)
        self.model = settings.model
        self.base_url = settings.base_url
        self.timeout_s = settings.timeout_s
        self.max_retries = settings.max_retries
        self.client = openai.OpenAI(
            base_url=self.base_url,
            api_key=api_key(settings.api_key_env),
            timeout=self.timeout_s,
            max_retries=self.max_retries,
        )
        for name in CHATTY_LOGGERS:
            logging.getLogger(name).setLevel(logging.WARNING)
        self.pool = ThreadPoolExecutor(max_workers=settings.concurrency)
        self.sampling = settings.generate.sampling("max_completion_tokens")
        self.template_kwargs = settings.chat_template_kwargs
        self.adapters = AdapterRegistry()
        self.score_checked = False

    def check_mode(self, mode: str) -> None:
        """Refuse score mode up front when the server gives no prompt log-probabilities."""
        super().check_mode(mode)
        if mode == "score" and not self.score_checked:
            probe = DecisionRequest(
                agent_id=-1,
                adapter=None,
                messages=[{"role": "user", "content": "Choose one."}],
                choices=Choices(comply="yes", violate="no"),
            )
            try:
                scored = self._scored_prompts(probe)
            except RequestRejected as e:
                if e.status not in (400, 422):
                    raise
                scored = None
            if scored is None:
                raise InputError(
                    f"decide.mode=score: {self.base_url} gives no prompt log-probabilities "
                    "(`vllm serve` does); only decide.mode=generate is available with this server"
                )
            self.score_checked = True

    def decide(self, requests: Sequence[DecisionRequest], mode: str) -> list[Decision]:
        self.check_mode(mode)
        if mode == "score":
            draws = self.rng.random(len(requests))
            # Once adapters are on the server, scores are asked one at a time: vLLM batches
            # concurrent requests, and its prompt log-probabilities with LoRA are wrong in a
            # batch (vllm#16668; vLLM's CPU build crashes), exact in a batch of one.
            score = map if self.adapters.by_name else self.pool.map
            return list(score(self._score, requests, draws))
        seeds = request_seeds(self.rng, len(requests))
        return list(self.pool.map(self._generate, requests, seeds))

    def _model(self, request: DecisionRequest) -> str:
        """The served name: the agent's adapter version (loaded on the server) or the base model."""
        adapter = self.adapters.get(request.adapter)
        return self.model if adapter is None else adapter.name

    def _extra(self, **extra) -> dict:
        if self.template_kwargs:
            extra["chat_template_kwargs"] = self.template_kwargs
        return extra

    def _generate(self, request: DecisionRequest, seed: int) -> Decision:
        start = perf_counter()
        response = self._call(
            lambda: self.client.chat.completions.create(
                model=self._model(request),
                messages=request.messages,
                seed=seed,
                extra_body=self._extra() or None,
                **self.sampling,
            )
        )
        usage = response.usage
        return generated_decision(
            response.choices[0].message.content or "",
            request.choices,
            prompt_tokens=usage.prompt_tokens if usage else 0,
            completion_tokens=usage.completion_tokens if usage else 0,
            latency_s=perf_counter() - start,
        )

    def _scored_prompts(self, request: DecisionRequest) -> tuple[list, list, int] | None:
        """Token ids and log-probabilities of both scored prompts, and the tokens they share."""
        bodies = [
            self._call(
                lambda messages=messages: self.client.chat.completions.create(
                    model=self._model(request),
                    messages=messages,
                    max_completion_tokens=1,
                    temperature=0.0,
                    extra_body=self._extra(**SCORE_EXTRA),
                )
            ).model_dump()
            for messages in score_conversations(request)
        ]
        scored = [prompt_token_logprobs(b) for b in bodies]
        if None in scored:
            return None
        ids, lps = zip(*scored, strict=True)
        return ids, lps, common_prefix_length(*ids)

    def _score(self, request: DecisionRequest, draw: float) -> Decision:
        start = perf_counter()
        scored = self._scored_prompts(request)
        if scored is None:
            raise ServedModelError(
                f"backend.openai: {self.base_url} answered without prompt log-probabilities"
            )
        ids, lps, prompt_tokens = scored
        comply, violate = label_logprobs(ids, lps)
        return scored_decision(
            request.choices,
            {request.choices.comply: comply, request.choices.violate: violate},
            draw,
            prompt_tokens=prompt_tokens,
            latency_s=perf_counter() - start,
        )

    def _call(self, send: Callable[[], T]) -> T:
        """One request with the client's retries; failures become one-line errors."""
        where = f"backend.openai: {self.base_url}"
        tries = f"after {self.max_retries} {'retry' if self.max_retries == 1 else 'retries'}"
        try:
            return send()
        except openai.APITimeoutError:
            raise ServedModelError(
                f"{where} did not answer within {self.timeout_s:g} s {tries}; "
                "is the server stopped or overloaded?"
            ) from None
        except openai.APIConnectionError as e:
            cause = one_line(e.__cause__ or e)
            raise ServedModelError(
                f"{where} cannot be reached {tries} ({cause}); is the server running?"
            ) from None
        except openai.AuthenticationError:
            raise InputError(
                f"{where} refused the API key (401); set backend.api_key_env to the "
                "name of the environment variable that holds it"
            ) from None
        except openai.APIStatusError as e:
            detail = one_line(e.message)
            if e.status_code == 429 or e.status_code >= 500:
                raise ServedModelError(
                    f"{where} answered {e.status_code} {tries}: {detail}"
                ) from None
            raise RequestRejected(
                f"{where} rejected the request ({e.status_code}): {detail}", e.status_code
            ) from None

    def load_adapters(self, adapters: Mapping[str, Path]) -> None:
        """Load new adapter versions into the server under their own names (vLLM runtime LoRA)."""
        for name, path in adapters.items():
            adapter = self.adapters.add(name, path)
            self._load_on_server(adapter.name, adapter.path)

    def _load_on_server(self, name: str, path: Path) -> None:
        try:
            self._call(
                lambda: self.client.post(
                    "/load_lora_adapter",
                    body={"lora_name": name, "lora_path": str(path)},
                    cast_to=str,
                )
            )
        except RequestRejected as e:
            raise InputError(
                f"adapter {name!r}: {self.base_url} cannot load LoRA adapters at runtime ({e}); "
                "start vLLM with --enable-lora and VLLM_ALLOW_RUNTIME_LORA_UPDATING=True"
            ) from None

    def state_dict(self) -> dict:
        return {**super().state_dict(), "adapters": self.adapters.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        """Restore the RNG and the adapters, loading on the server those it no longer has."""
        super().load_state_dict(state)
        if not state.get("adapters"):
            return
        served = {m.id for m in self._call(lambda: self.client.models.list()).data}
        for a in state["adapters"]:
            adapter = self.adapters.add(a["name"], a["path"])
            if adapter.name not in served:
                self._load_on_server(adapter.name, adapter.path)

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.client.close()
