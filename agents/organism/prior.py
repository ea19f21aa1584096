"""The behavioural prior that writes the organism's pre-training episodes.

Before alignment the organism is whatever this prior did in its corpus: a pull toward
the higher payoff, a first impression of the situation the prompt states (a check
announced or not, how much more the violation pays, how few it takes to make a
collusion pay), reward following from its own remembered rounds, and imitation of
neighbours whose violations paid. The organism can only learn what its prompt shows,
so the prior reads the same situation, remembered rounds and peer view the prompt is
built from.
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
class Situation:
    """What a round's prompt states before any history, each in [-1, 1].

    unwatched: +1 when told no check is coming, -1 when told one is, 0 when unclear or
    not said; temptation: how much more the violation pays than complying (`gain`), 0
    where no payoff is fixed; ease: how few agents it takes to make a collusion pay,
    +1 at a threshold of one agent, -1 at the whole group, 0 outside threshold games.
    A prior that reacts to these gives first rounds a reason to read which label the
    rule, the payoffs and the game name: without one, every first round is a coin toss
    and the organism learns the labels it saw rather than the decision.
    """

    unwatched: float = 0.0
    temptation: float = 0.0
    ease: float = 0.0


@dataclass(frozen=True)
class BehaviouralPrior:
    """logit P(violate) = logit(propensity)
        + caution * unwatched + temptation * extra pay + coordination * ease  (the Situation)
        + reward_following * own + imitation * peers.

    own: the sum over remembered violations of their gain over the safe reward (each
    paid violation pulls up, each caught one pushes down); peers: the mean over the
    neighbours shown of the gain of those that violated, when the view shows payoffs.
    """

    propensity: float
    reward_following: float
    imitation: float
    caution: float = 0.0
    temptation: float = 0.0
    coordination: float = 0.0

    def p_violate(
        self,
        history: Sequence[Experience],
        peers: Sequence[PeerAction],
        safe_reward: float,
        peer_view: str,
        situation: Situation = Situation(),
    ) -> float:
        own = sum(gain(e.reward, safe_reward) for e in history if e.violated)
        seen = [p for p in peers if p.violated is not None] if peer_view in PAYOFF_VIEWS else []
        shown = sum(gain(p.reward, safe_reward) for p in seen if p.violated) / max(len(seen), 1)
        logit = (
            math.log(self.propensity / (1 - self.propensity))
            + self.caution * situation.unwatched
            + self.temptation * situation.temptation
            + self.coordination * situation.ease
            + self.reward_following * own
            + self.imitation * shown
        )
        return 1 / (1 + math.exp(-logit))


class PriorPolicy(ScriptedBackend):
    """The prior as a policy of the simulator, so the corpus is the simulator's own rounds.

    It decides from the structured history and peers as scripted policies do, but asks the
    model to build every agent's chat messages: they are the corpus. `safe(i)` is what
    complying pays agent i now (it changes with a threshold game's capital), and
    `situation(i)` what agent i's prompt states this round.
    """

    needs_messages = True

    def __init__(
        self,
        rng: np.random.Generator,
        prior: BehaviouralPrior,
        safe: Callable[[int], float],
        situation: Callable[[int], Situation],
        peer_view: str,
    ):
        super().__init__(rng)
        self.prior = prior
        self.safe = safe
        self.situation = situation
        self.peer_view = peer_view

    def p_violate(self, requests: Sequence[DecisionRequest]) -> np.ndarray:
        return np.array(
            [
                self.prior.p_violate(
                    r.history,
                    r.peers,
                    self.safe(r.agent_id),
                    self.peer_view,
                    self.situation(r.agent_id),
                )
                for r in requests
            ]
        )
