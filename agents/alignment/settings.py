"""align.* (conf/align/<method>.yaml) and data.* (conf/align_data/): typed, checked views.

The mappings, as written, are what aligned organisms' cache keys hash and what the card
records; these views only read them. Values are checked, never converted (lora.alpha 16
stays the integer PEFT writes into adapter_config.json), so the view and the mapping agree.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

from envs.errors import InputError, Section, integer, number

METHODS = ("sft", "dpo", "grpo")


@dataclass(frozen=True)
class LoraRecipe(Section):
    """align.lora: the adapter trained, then merged (checked when align.peft=lora)."""

    FIELD = "align.lora"
    r: int
    alpha: float
    dropout: float
    target_modules: str | list[str]


@dataclass(frozen=True)
class Recipe(Section):
    """align=sft, and what every method has."""

    FIELD = "align"
    PEFT: ClassVar = ("lora", "full")
    method: str
    epochs: float
    lr: float
    batch_size: int
    peft: str
    lora: LoraRecipe

    def __post_init__(self):
        number(self.epochs, "align.epochs", above=True)
        number(self.lr, "align.lr", above=True)
        integer(self.batch_size, "align.batch_size")
        self._choice("peft", self.PEFT)
        self._set("lora", LoraRecipe.of(self.lora))
        if self.peft == "lora":
            integer(self.lora.r, "align.lora.r")
            number(self.lora.alpha, "align.lora.alpha", above=True)
            number(self.lora.dropout, "align.lora.dropout", high=1.0, below=True)


@dataclass(frozen=True)
class DPORecipe(Recipe):
    beta: float

    def __post_init__(self):
        super().__post_init__()
        number(self.beta, "align.beta", above=True)


@dataclass(frozen=True)
class Rewards(Section):
    """align.rewards: GRPO's reward for the supervised, the better-paying and an invalid
    answer (ATP's rule)."""

    FIELD = "align.rewards"
    supervised: float
    better: float
    invalid: float

    def __post_init__(self):
        for key in ("supervised", "better", "invalid"):
            number(getattr(self, key), f"align.rewards.{key}", low=-float("inf"))


@dataclass(frozen=True)
class GRPORecipe(Recipe):
    num_generations: int
    beta: float
    max_completion_length: int
    temperature: float
    rewards: Rewards

    def __post_init__(self):
        super().__post_init__()
        integer(self.num_generations, "align.num_generations", minimum=2)
        number(self.beta, "align.beta")
        integer(self.max_completion_length, "align.max_completion_length")
        number(self.temperature, "align.temperature", above=True)
        self._set("rewards", Rewards.of(self.rewards))


RECIPES: dict[str, type[Recipe]] = {"sft": Recipe, "dpo": DPORecipe, "grpo": GRPORecipe}


def recipe_config(values: Mapping) -> Recipe:
    """The typed recipe for its method; every setting a user can get wrong named by its
    config field."""
    method = values.get("method") if isinstance(values, Mapping) else None
    if method not in RECIPES:
        raise InputError(f"align.method: {method!r}; expected one of {', '.join(METHODS)}")
    return RECIPES[method].of(values)


@dataclass(frozen=True)
class AlignData(Section):
    """data (conf/align_data/<name>.yaml): the prompts aligned on; item names, payoffs and
    games are checked where envs.catalog reads them. `data.target` (comply, or violate for
    inverse alignment) is no YAML key: code passes it, and the mapping hashed stays as is."""

    FIELD = "data"
    SOURCES: ClassVar = ("generator", "atp")
    source: str
    atp_file: str | None
    dose: int
    held_out_share: float
    roleplay: dict
    threshold: dict

    def __post_init__(self):
        integer(self.dose, "data.dose")
        share = number(self.held_out_share, "data.held_out_share", high=1.0, above=True, below=True)
        self._set("held_out_share", share)
        self._choice("source", self.SOURCES)
        if self.source == "atp" and not self.atp_file:
            raise InputError("data.atp_file: required when data.source=atp (an ATP training file)")
