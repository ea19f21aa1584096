"""What flows between agents and policies: one request per agent, one decision back."""

from __future__ import annotations

from dataclasses import dataclass

from envs.base import Choices


@dataclass(frozen=True)
class Experience:
    """One remembered round, as the agent lived it."""

    round: int
    prompt: str
    answer: str
    choice: str | None
    violated: bool | None
    reward: float
    feedback: str  # reward explanation, plus what the neighbours did when they are visible
    p_violate: float | None = None


@dataclass(frozen=True)
class PeerAction:
    """What a neighbour did in its last round, as others may see it."""

    agent: int
    choice: str | None
    violated: bool | None
    reward: float
    text: str


@dataclass(frozen=True)
class DecisionRequest:
    """Everything a policy needs to decide for one agent in one round.

    LLM backends read `messages`; scripted policies read the structured `history` and
    `peers` the messages were rendered from, so both decide on the same information.
    """

    agent_id: int
    adapter: str | None
    messages: list[dict[str, str]]
    choices: Choices
    history: tuple[Experience, ...] = ()
    peers: tuple[PeerAction, ...] = ()


@dataclass(frozen=True)
class Decision:
    """A policy's answer: the label chosen (None if unparseable) and how it got there."""

    choice: str | None
    p_violate: float | None
    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_s: float = 0.0

    @property
    def valid(self) -> bool:
        return self.choice is not None
