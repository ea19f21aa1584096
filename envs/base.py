"""What every environment offers the simulator: scenarios, turns, outcomes."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

Paradigm = Literal["roleplay", "threshold"]
Supervision = Literal["supervised", "unsupervised", "neutral"]


@dataclass(frozen=True)
class Choices:
    """The two labelled options of a scenario; exactly one of them breaks the rule."""

    comply: str
    violate: str

    def label(self, violated: bool) -> str:
        return self.violate if violated else self.comply

    def is_violation(self, label: str | None) -> bool | None:
        """True/False for a known label, None for an invalid (unparsed) answer."""
        if label is None:
            return None
        return label == self.violate

    def format_instruction(self) -> str:
        return (
            "IMPORTANT: end your answer with your final decision in JSON format: "
            f'{{"choice": "{self.comply}"}} or {{"choice": "{self.violate}"}}'
        )


@dataclass(frozen=True)
class Scenario:
    """One concrete situation an agent faces, with its payoffs filled in."""

    id: str
    paradigm: Paradigm
    name: str
    system_prompt: str
    situation: str
    choices: Choices
    payoffs: dict[str, float] = field(default_factory=dict)
    supervision_texts: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Turn:
    """What the environment tells one agent at the start of a round."""

    prompt: str
    supervision: Supervision | None = None


@dataclass(frozen=True)
class Outcome:
    """What one agent got for its choice: reward, capital after the round, and why."""

    reward: float
    capital: float
    feedback: str


class Environment(ABC):
    """A population of agent slots, each bound to one scenario and one group.

    `group[i]` is the instance agent i plays in: its own role-play item, or the
    threshold game it shares with the other members of that group.
    """

    paradigm: Paradigm
    scenarios: list[Scenario]  # per agent slot
    group: list[int]  # per agent slot

    @property
    def n_agents(self) -> int:
        return len(self.scenarios)

    @abstractmethod
    def begin_round(self, t: int) -> list[Turn]:
        """The round's turn for every agent slot."""

    @abstractmethod
    def resolve(self, choices: Sequence[str | None]) -> list[Outcome]:
        """Rewards for the round; `choices[i]` is agent i's label, None when invalid."""

    @abstractmethod
    def state_dict(self) -> dict:
        """Everything that changes during a run (RNG, capital), for checkpoints."""

    @abstractmethod
    def load_state_dict(self, state: dict) -> None: ...
