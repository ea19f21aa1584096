"""evolution.*: the typed view of conf/evolution/, checked before anything loads. It
imports nothing of the training stack, so a run is checked before one is loaded."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

from envs.errors import InputError, Section, integer, number

OBJECTIVES = ("pg", "dpo", "sft")


@dataclass(frozen=True)
class EvolutionConfig(Section):
    """evolution=none, and what every objective has: weights evolve with an objective
    and an update interval."""

    FIELD = "evolution"
    name: str
    every: int

    def __post_init__(self):
        integer(self.every, "evolution.every", minimum=0)
        if self.name not in ("none", *OBJECTIVES):
            raise InputError(f"evolution.name: {self.name!r}; expected none, pg, dpo or sft")

    @property
    def evolving(self) -> bool:
        return self.name != "none" and self.every > 0


@dataclass(frozen=True)
class LoraSettings(Section):
    """evolution.lora; the target modules are checked against the model once it loads."""

    FIELD = "evolution.lora"
    r: int
    alpha: int
    target_modules: list[str]

    def __post_init__(self):
        integer(self.r, "evolution.lora.r")
        integer(self.alpha, "evolution.lora.alpha")


@dataclass(frozen=True)
class UpdatesConfig(EvolutionConfig):
    """evolution=pg|dpo: who owns the adapters, the experience window, the optimiser."""

    SHARING: ClassVar = ("per_agent", "per_group", "shared")
    GROUPS: ClassVar = ("env", "community")
    sharing: str
    groups: str
    window: int | None  # null: the update interval
    beta: float
    lr: float
    steps: int
    batch_size: int
    keep: int | None  # null: every version
    lora: LoraSettings

    def __post_init__(self):
        super().__post_init__()
        self._choice("sharing", self.SHARING)
        self._choice("groups", self.GROUPS)
        self._set("lr", number(self.lr, "evolution.lr", above=True))
        integer(self.steps, "evolution.steps")
        integer(self.batch_size, "evolution.batch_size")
        self._set("beta", number(self.beta, "evolution.beta"))
        for name in ("window", "keep"):
            if getattr(self, name) is not None:
                integer(getattr(self, name), f"evolution.{name}")
        if not isinstance(self.lora, LoraSettings):
            self._set("lora", LoraSettings.of(self.lora))


@dataclass(frozen=True)
class SftConfig(UpdatesConfig):
    """evolution=sft: the top_q share of decisions by reward become the targets."""

    top_q: float

    def __post_init__(self):
        super().__post_init__()
        self._set("top_q", number(self.top_q, "evolution.top_q", high=1.0, above=True))


def evolution_config(values: Mapping) -> EvolutionConfig:
    """The typed evolution section for its objective (an unknown name is named by
    EvolutionConfig's check)."""
    return EvolutionConfig.of_kind(values, KINDS)


KINDS = {"none": EvolutionConfig, "pg": UpdatesConfig, "dpo": UpdatesConfig, "sft": SftConfig}
