"""backend.*: the backend's name, and the typed, checked settings of the scripted rules.

The model backends (organism, hf, vllm, openai) read their nested settings (model,
generate, score, adapters, ...) from the mapping as they load, and check them there, before
the run writes anything.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from envs.errors import InputError, Section, boolean, number

RULES = ("fixed", "fermi", "imitate_best", "linear_threshold", "reward_following")
NAMES = (*RULES, "openai", "vllm", "hf", "organism")


@dataclass(frozen=True)
class BackendConfig(Section):
    """What every backend has: its name."""

    FIELD = "backend"
    name: str

    def __post_init__(self):
        if self.name not in NAMES:
            raise InputError(
                f"backend.name: unknown backend {self.name!r}; expected one of {', '.join(NAMES)}"
            )


@dataclass(frozen=True)
class FixedConfig(BackendConfig):
    """backend=fixed: one violation probability for every agent."""

    p_violate: float

    def __post_init__(self):
        super().__post_init__()
        p = number(self.p_violate, "backend.p_violate", high=1.0, above=True, below=True)
        self._set("p_violate", p)


@dataclass(frozen=True)
class RewardFollowingConfig(BackendConfig):
    """backend=reward_following: p0 moved by how well violating paid."""

    p0: float
    sensitivity: float
    imitation: float

    def __post_init__(self):
        super().__post_init__()
        self._set("p0", number(self.p0, "backend.p0", high=1.0, above=True, below=True))
        self._set("sensitivity", number(self.sensitivity, "backend.sensitivity", -np.inf))
        self._set("imitation", number(self.imitation, "backend.imitation"))


@dataclass(frozen=True)
class ImitationConfig(BackendConfig):
    """backend=imitate_best, and what every imitation rule has: p0 before a first round."""

    p0: float

    def __post_init__(self):
        super().__post_init__()
        self._set("p0", number(self.p0, "backend.p0", high=1.0))


@dataclass(frozen=True)
class FermiConfig(ImitationConfig):
    beta: float

    def __post_init__(self):
        super().__post_init__()
        self._set("beta", number(self.beta, "backend.beta"))


@dataclass(frozen=True)
class LinearThresholdConfig(ImitationConfig):
    DISTRIBUTIONS: ClassVar = ("constant", "uniform", "normal")
    threshold: float
    distribution: str
    spread: float
    progressive: bool

    def __post_init__(self):
        super().__post_init__()
        self._choice("distribution", self.DISTRIBUTIONS)
        self._set("threshold", number(self.threshold, "backend.threshold", high=1.0))
        self._set("spread", number(self.spread, "backend.spread", high=1.0))
        boolean(self.progressive, "backend.progressive")


KINDS: dict[str, type[BackendConfig]] = {
    "fixed": FixedConfig,
    "reward_following": RewardFollowingConfig,
    "imitate_best": ImitationConfig,
    "fermi": FermiConfig,
    "linear_threshold": LinearThresholdConfig,
}


def backend_config(values: Mapping) -> BackendConfig:
    """The typed backend section: a scripted rule's settings, or a model backend's name
    (an unknown name is named by BackendConfig's check)."""
    name = values.get("name") if isinstance(values, Mapping) else None
    return KINDS.get(name, BackendConfig).of(values)
