"""What the round's learners receive and hand back.

A learner (self-evolution in weights today; reference probes and guards that learn
later) is a component the model calls after every round with what was played. It owns
its state and its part of the checkpoint; what it changes in the population it returns
here, and the model applies it, so no learner reaches into the model or a backend.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from agents.decision import Decision, DecisionRequest
from envs.base import Outcome


@dataclass(frozen=True)
class PlayedRound:
    """One round as learners see it: the policy's own decisions only (planted deviants'
    forced violations are not experience), as the agents remember them."""

    round: int
    requests: list[DecisionRequest]
    decisions: list[Decision]
    outcomes: list[Outcome]
    # a guard at position=training: its reviewed decision per request (the correction is
    # preferred over the proposal wherever its choice differs); None without one
    corrections: list[Decision] | None = None


@dataclass(frozen=True)
class Learned:
    """What a learner changed: adapter versions per agent from the next round on, and
    rows for `updates.parquet` and `references.parquet`."""

    adapters: dict[int, str] = field(default_factory=dict)
    updates: list[dict] = field(default_factory=list)
    references: list[dict] = field(default_factory=list)


class Learner(Protocol):
    name: str  # its key in the checkpoint

    def after_round(self, played: PlayedRound) -> Learned: ...

    def state_dict(self) -> dict: ...

    def load_state_dict(self, state: dict) -> None: ...
