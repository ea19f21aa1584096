"""Policy backends by name: `make_backend(cfg, rng)` builds the one the config asks for."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

from agents.backends.base import MODES, Backend
from agents.backends.imitation import Fermi, ImitateBest, LinearThreshold
from agents.backends.scripted import FixedRate, RewardFollowing
from agents.backends.settings import (
    BackendConfig,
    HFConfig,
    OpenAIConfig,
    OrganismConfig,
    VLLMConfig,
    backend_config,
)
from envs.errors import InputError

Factory = Callable[[BackendConfig, np.random.Generator], Backend]


def openai_server(settings: OpenAIConfig, rng: np.random.Generator) -> Backend:
    """Imported on use: the openai client is an optional extra."""
    try:
        import openai  # noqa: F401
    except ImportError:
        raise InputError(
            "backend=openai: the openai client is not installed; pip install -e '.[openai]'"
        ) from None
    from agents.backends.openai_server import OpenAIServer

    return OpenAIServer(rng, settings)


def vllm_engine(settings: VLLMConfig, rng: np.random.Generator) -> Backend:
    """Imported on use, so the CPU stack never imports vLLM (which checks for itself)."""
    from agents.backends.vllm_engine import VLLMEngine

    return VLLMEngine(rng, settings)


def hf_model(settings: HFConfig, rng: np.random.Generator) -> Backend:
    """Imported on use, so scripted runs never load torch and transformers."""
    from agents.backends.hf import HFBackend

    return HFBackend.from_config(settings, rng)


def organism(settings: OrganismConfig, rng: np.random.Generator) -> Backend:
    """Imported on use; builds the organism on first use (cached by its config)."""
    from agents.backends.organism import organism_backend

    return organism_backend(settings, rng)


RULES = {
    "fixed": FixedRate,
    "fermi": Fermi,
    "imitate_best": ImitateBest,
    "linear_threshold": LinearThreshold,
    "reward_following": RewardFollowing,
}
MODELS: dict[str, Factory] = {
    "openai": openai_server,
    "vllm": vllm_engine,
    "hf": hf_model,
    "organism": organism,
}


def make_backend(cfg: Mapping, rng: np.random.Generator) -> Backend:
    """The backend named by `cfg["name"]`, from its typed settings."""
    settings = backend_config(cfg)
    if settings.name in RULES:
        return RULES[settings.name](rng, settings)
    return MODELS[settings.name](settings, rng)


__all__ = ["MODES", "Backend", "make_backend"]
