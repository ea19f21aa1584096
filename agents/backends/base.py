"""The interface every policy implements: decide a whole round in one call."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from agents.decision import Decision, DecisionRequest
from envs.errors import InputError

MODES = ("score", "generate")


class Backend(ABC):
    """A policy for the whole population.

    `decide` receives every agent's request of one round and returns one decision per
    request, in order. `mode="score"` reads the probability of each choice label;
    `mode="generate"` samples text and parses the choice from it.
    """

    modes: tuple[str, ...] = MODES
    # False for policies that decide from `history` and `peers` alone: the model then
    # skips building chat messages, the bulk of a scripted round's cost.
    needs_messages: bool = True
    # True for policies that read the agent's own last round (agents.memory_window >= 1).
    needs_history: bool = False

    def __init__(self, rng: np.random.Generator):
        self.rng = rng

    def check_mode(self, mode: str) -> None:
        if mode not in self.modes:
            raise InputError(
                f"decide.mode: {mode!r} is not supported by backend {type(self).__name__}; "
                f"expected one of {', '.join(self.modes)}"
            )

    @abstractmethod
    def decide(self, requests: Sequence[DecisionRequest], mode: str) -> list[Decision]: ...

    def load_adapters(self, adapters: Mapping[str, Path]) -> None:
        """Make new adapter versions (name -> PEFT directory) available to later rounds."""
        raise InputError(f"backend {type(self).__name__} cannot load LoRA adapters")

    def trainable(self):
        """The view of the backend's own weights that LoRA updates train through (a
        `LabelScorer` over its adapter table), or None: a policy with no weights of its
        own here (scripted rules, a served model) cannot be trained in place."""
        return None

    def close(self) -> None:
        """Release what the backend holds (processes, GPU memory)."""

    def state_dict(self) -> dict:
        return {"rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict) -> None:
        self.rng.bit_generator.state = state["rng"]
