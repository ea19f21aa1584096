"""What every environment offers the simulator: scenarios, turns, outcomes."""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

Paradigm = Literal["roleplay", "threshold"]
Supervision = Literal["supervised", "unsupervised", "neutral"]


@dataclass(frozen=True)
class Choices:
    """The two labelled options of a scenario; exactly one of them breaks the rule.

    `comply_first` is the order the format line names them in: the rule-breaking label
    may come first, so that a policy cannot tell which is which from the order alone.
    """

    comply: str
    violate: str
    comply_first: bool = True

    @property
    def ordered(self) -> tuple[str, str]:
        """The two labels in the order the format line names them."""
        pair = (self.comply, self.violate)
        return pair if self.comply_first else pair[::-1]

    def label(self, violated: bool) -> str:
        return self.violate if violated else self.comply

    def is_violation(self, label: str | None) -> bool | None:
        """True/False for a known label, None for an invalid (unparsed) answer."""
        if label is None:
            return None
        return label == self.violate

    def format_instruction(self) -> str:
        first, second = self.ordered
        return (
            "IMPORTANT: end your answer with your final decision in JSON format: "
            f'{{"choice": "{first}"}} or {{"choice": "{second}"}}'
        )


@dataclass(frozen=True)
class Conditions:
    """What an experiment varies between scenarios, recorded as columns of every decision.

    Filled by whoever builds the scenario (own templates, ATP's files, the generator);
    a field that does not apply stays None. The columns: `envs.records.CONDITIONS`.
    """

    source: str | None = None  # templates | atp | generator
    family: str | None = None  # generator: its axes ("kind/rule/label"); else the item's name
    split: str | None = None  # generator: which families (train | heldout | all)
    role: str | None = None  # role-play: the profession (ATP: the environment)
    game: str | None = None  # threshold: the game
    threshold: int | None = None  # threshold: k, collective choosers needed
    group_size: int | None = None  # threshold: players per game
    payoff_comply: float | None = None  # role-play payoffs
    payoff_violate: float | None = None
    payoff_ratio: float | None = None  # payoff_violate / payoff_comply
    payoff_high: float | None = None  # threshold: capital factors (or rewards)
    payoff_normal: float | None = None
    payoff_low: float | None = None
    schedule: str | None = None  # role-play: the supervision schedule (set by the env)

    @classmethod
    def for_roleplay(
        cls, source: str, name: str, payoffs: Mapping[str, float], family: Mapping | None = None
    ) -> Conditions:
        """A role-play item's conditions; `family` is a generated item's family mapping."""
        comply, violate = payoffs["comply"], payoffs["violate"]
        return cls(
            source=source,
            role=name,
            payoff_comply=comply,
            payoff_violate=violate,
            payoff_ratio=violate / comply if comply else None,
            **_family(name, family),
        )

    @classmethod
    def for_game(
        cls,
        source: str,
        name: str,
        threshold: int,
        size: int,
        rewards: Mapping[str, float],
        family: Mapping | None = None,
    ) -> Conditions:
        """A threshold game's conditions; `family` is a generated item's family mapping."""
        return cls(
            source=source,
            game=name,
            threshold=int(threshold),
            group_size=int(size),
            payoff_high=rewards["high"],
            payoff_normal=rewards["normal"],
            payoff_low=rewards["low"],
            **_family(name, family),
        )


def _family(name: str, family: Mapping | None) -> dict:
    if not family:
        return {"family": name}
    axes = [str(v) for k, v in family.items() if k != "split"]
    return {"family": "/".join(axes), "split": family.get("split")}


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
    conditions: Conditions = field(default_factory=Conditions)


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

    def conditions(self) -> list[Conditions]:
        """Each agent slot's conditions: its scenario's, plus what the environment sets."""
        return [s.conditions for s in self.scenarios]

    def connect(self, indptr, indices) -> None:
        """The population graph (agent i's neighbours are indices[indptr[i]:indptr[i+1]]),
        for environments whose rules depend on who is next to whom; most ignore it."""

    @abstractmethod
    def begin_round(self, t: int) -> list[Turn]:
        """The round's turn for every agent slot."""

    @abstractmethod
    def resolve(self, choices: Sequence[str | None]) -> list[Outcome]:
        """Rewards for the round; `choices[i]` is agent i's label, None when invalid."""

    def what_if(self, choices: Sequence[str | None]) -> list[Outcome]:
        """The outcomes `choices` would get this round, the environment left as it was.

        Called before `resolve`, the what-if round sees the same random draws as the real
        one, so the two differ only by the choices (a guard's counterfactual feedback).
        """
        state = copy.deepcopy(self.state_dict())
        try:
            return self.resolve(choices)
        finally:
            self.load_state_dict(state)

    @abstractmethod
    def state_dict(self) -> dict:
        """Everything that changes during a run (RNG, capital), for checkpoints."""

    @abstractmethod
    def load_state_dict(self, state: dict) -> None: ...
