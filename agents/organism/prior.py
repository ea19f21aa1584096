"""The behavioural prior that writes the organism's pre-training episodes.

Before alignment the organism is whatever this prior did in its corpus: a pull toward
the higher payoff, reward following from its own remembered rounds, and imitation of
neighbours whose violations paid. The organism can only learn what its prompt shows,
so the prior reads the same remembered rounds and peer view the prompt is built from.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from agents.backends.scripted import ScriptedBackend
from agents.decision import DecisionRequest, Experience, PeerAction

PAYOFF_VIEWS = ("choices_and_payoffs", "full")  # peer views that show what neighbours earned


def gain(reward: float, safe: float) -> float:
    """How much a violation out-earned the safe (compliant) reward, scaled into [-1, 1]."""
    return (reward - safe) / (abs(reward) + abs(safe) + 1e-9)


@dataclass(frozen=True)
class BehaviouralPrior:
    """logit P(violate) = logit(propensity) + reward_following * own + imitation * peers.

    own: the sum over remembered violations of their gain over the safe reward (each
    paid violation pulls up, each caught one pushes down); peers: the mean over the
    neighbours shown of the gain of those that violated, when the view shows payoffs.
    """

    propensity: float
    reward_following: float
    imitation: float

    def p_violate(
        self,
        history: Sequence[Experience],
        peers: Sequence[PeerAction],
        safe_reward: float,
        peer_view: str,
    ) -> float:
        own = sum(gain(e.reward, safe_reward) for e in history if e.violated)
        seen = [p for p in peers if p.violated is not None] if peer_view in PAYOFF_VIEWS else []
        shown = sum(gain(p.reward, safe_reward) for p in seen if p.violated) / max(len(seen), 1)
        logit = (
            math.log(self.propensity / (1 - self.propensity))
            + self.reward_following * own
            + self.imitation * shown
        )
        return 1 / (1 + math.exp(-logit))


class PriorPolicy(ScriptedBackend):
    """The prior as a policy of the simulator, so the corpus is the simulator's own rounds.

    It decides from the structured history and peers as scripted policies do, but asks the
    model to build every agent's chat messages: they are the corpus. `safe(i)` is what
    complying pays agent i now (it changes with a threshold game's capital).
    """

    needs_messages = True

    def __init__(
        self,
        rng: np.random.Generator,
        prior: BehaviouralPrior,
        safe: Callable[[int], float],
        peer_view: str,
    ):
        super().__init__(rng)
        self.prior = prior
        self.safe = safe
        self.peer_view = peer_view

    def p_violate(self, requests: Sequence[DecisionRequest]) -> np.ndarray:
        return np.array(
            [
                self.prior.p_violate(r.history, r.peers, self.safe(r.agent_id), self.peer_view)
                for r in requests
            ]
        )
