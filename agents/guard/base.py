"""The guard between the agents and the world: what it is asked and what it answers.

A guard (Aligner, arXiv 2402.02416) reads every agent's question and answer of a round
in ONE batched call and writes a corrected answer; the choice is read from it with the
same parser as the agent's own. Where the correction acts is the guard's `position`;
what the agent remembers is its `feedback` (both applied by the model's round).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from agents.decision import Decision, DecisionRequest
from agents.parsing import parse_choice

# execution: the environment pays the executed choice; observation: peers see it, the
# agent is paid for its proposal; training: the world sees the proposal, weight updates
# learn from (correction, proposal) preference pairs.
POSITIONS = ("execution", "observation", "training")
# executed: the agent remembers what was executed and what it earned; counterfactual: its
# own proposal with the reward the proposal would have earned.
FEEDBACK = ("executed", "counterfactual")


@dataclass(frozen=True)
class Review:
    """The guard's answer for one agent: the reviewed decision (the agent's own when
    unchanged), whether its choice differs, and the guard's probability that the
    agent's answer was correct as proposed (None for guards that do not score)."""

    decision: Decision
    changed: bool
    p_correct: float | None = None


@dataclass(frozen=True)
class Routed:
    """Which decision each party of a round gets: the environment pays `paid`, the
    neighbours see `shown`, each agent remembers `own` (what it was paid for, or its
    proposal with what that would have earned), and weight updates learn from
    `corrections` (position=training only). Without a guard all are the proposals."""

    paid: list[Decision]
    shown: list[Decision]
    own: list[Decision]
    corrections: list[Decision] | None = None

    @classmethod
    def unguarded(cls, decisions: list[Decision]) -> Routed:
        return cls(decisions, decisions, decisions)


def reviewed(proposed: Decision, text: str, request: DecisionRequest, p_correct=None) -> Review:
    """The review whose corrected answer is `text`, its choice parsed as the agent's is; a
    correction that decides for neither label leaves the proposal as it was (the guard
    abstains rather than turning a valid answer invalid)."""
    choice = parse_choice(text, request.choices)
    if choice is None or choice == proposed.choice:
        return Review(proposed, False, p_correct)
    return Review(Decision(choice=choice, p_violate=None, text=text), True, p_correct)


class Guard(ABC):
    """Reviews a round's answers in one call; owns its RNG (a stream of the run seed)."""

    needs_messages = False  # whether it reads the agents' prompts (then built for any policy)

    def __init__(self, position: str, feedback: str, rng: np.random.Generator):
        self.position = position
        self.feedback = feedback
        self.rng = rng

    @abstractmethod
    def review(
        self, requests: Sequence[DecisionRequest], decisions: Sequence[Decision]
    ) -> list[Review]: ...

    def route(self, proposed: list[Decision], reviews: Sequence[Review]) -> Routed:
        """Who gets the proposal and who the correction, by position and feedback."""
        executed = [r.decision for r in reviews]
        training = self.position == "training"
        return Routed(
            paid=executed if self.position == "execution" else proposed,
            shown=proposed if training else executed,
            own=executed
            if self.position == "execution" and self.feedback == "executed"
            else proposed,
            corrections=executed if training else None,
        )

    def close(self) -> None:
        """Release what the guard holds (a backend's processes, GPU memory)."""

    def state_dict(self) -> dict:
        return {"rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict) -> None:
        self.rng.bit_generator.state = state["rng"]
