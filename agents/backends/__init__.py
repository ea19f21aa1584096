"""Policy backends by name: `make_backend(cfg, rng)` builds the one the config asks for."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from agents.backends.base import MODES, Backend
from agents.backends.imitation import Fermi, ImitateBest, LinearThreshold
from agents.backends.scripted import FixedRate, RewardFollowing
from envs.errors import InputError

Factory = Callable[[dict, np.random.Generator], Backend]


def openai_server(cfg: dict, rng: np.random.Generator) -> Backend:
    """Imported on use: the openai client is an optional extra."""
    try:
        import openai  # noqa: F401
    except ImportError:
        raise InputError(
            "backend=openai: the openai client is not installed; pip install -e '.[openai]'"
        ) from None
    from agents.backends.openai_server import OpenAIServer

    return OpenAIServer(rng, cfg)


def vllm_engine(cfg: dict, rng: np.random.Generator) -> Backend:
    """Imported on use, so the CPU stack never imports vLLM (which checks for itself)."""
    from agents.backends.vllm_engine import VLLMEngine

    return VLLMEngine(rng, cfg)


def hf_model(cfg: dict, rng: np.random.Generator) -> Backend:
    """Imported on use, so scripted runs never load torch and transformers."""
    from agents.backends.hf import HFBackend

    return HFBackend.from_config(cfg, rng)


def organism(cfg: dict, rng: np.random.Generator) -> Backend:
    """Imported on use; builds the organism on first use (cached by its config)."""
    from agents.backends.organism import organism_backend

    return organism_backend(cfg, rng)


BACKENDS: dict[str, Factory] = {
    "fixed": lambda cfg, rng: FixedRate(rng, p_violate=cfg["p_violate"]),
    "fermi": lambda cfg, rng: Fermi(rng, beta=cfg["beta"], p0=cfg["p0"]),
    "imitate_best": lambda cfg, rng: ImitateBest(rng, p0=cfg["p0"]),
    "linear_threshold": lambda cfg, rng: LinearThreshold(
        rng,
        threshold=cfg["threshold"],
        distribution=cfg["distribution"],
        spread=cfg["spread"],
        progressive=cfg["progressive"],
        p0=cfg["p0"],
    ),
    "reward_following": lambda cfg, rng: RewardFollowing(
        rng, p0=cfg["p0"], sensitivity=cfg["sensitivity"], imitation=cfg.get("imitation", 0.0)
    ),
    "openai": openai_server,
    "vllm": vllm_engine,
    "hf": hf_model,
    "organism": organism,
}


def make_backend(cfg: dict, rng: np.random.Generator) -> Backend:
    """The backend named by `cfg["name"]`, configured from the rest of `cfg`."""
    name = cfg.get("name")
    if name not in BACKENDS:
        raise InputError(
            f"backend.name: unknown backend {name!r}; expected one of {', '.join(BACKENDS)}"
        )
    return BACKENDS[name](cfg, rng)


__all__ = ["BACKENDS", "MODES", "Backend", "make_backend"]
