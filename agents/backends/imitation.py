"""Classical imitation rules as scripted policies, for validation and very large populations.

Each reads the agent's own last round (`DecisionRequest.history[-1]`) and its neighbours'
last round (`DecisionRequest.peers`); an agent with no round behind it yet violates with
probability `p0`. Rewards are compared as recorded (in multiplicative games, the change
of capital).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from agents.backends.scripted import ScriptedBackend
from agents.backends.settings import FermiConfig, ImitationConfig, LinearThresholdConfig
from agents.decision import DecisionRequest, Experience, PeerAction


def _last(history: Sequence[Experience]) -> Experience | None:
    """The agent's last round with a valid choice."""
    return next((e for e in reversed(history) if e.violated is not None), None)


def _valid(peers: Sequence[PeerAction]) -> list[PeerAction]:
    return [p for p in peers if p.violated is not None]


class ImitationRule(ScriptedBackend):
    """A rule on the agent's own last round and its neighbours' last round."""

    needs_history = True

    def __init__(self, rng: np.random.Generator, cfg: ImitationConfig):
        super().__init__(rng)
        self.p0 = cfg.p0

    def p_violate(self, requests: Sequence[DecisionRequest]) -> np.ndarray:
        return np.fromiter(map(self._p, requests), float, len(requests))

    def _p(self, request: DecisionRequest) -> float:
        own = _last(request.history)
        return self.p0 if own is None else self.rule(request, own)

    def rule(self, request: DecisionRequest, own: Experience) -> float:
        raise NotImplementedError


class Fermi(ImitationRule):
    """Pairwise comparison: pick a random neighbour j and copy its choice with probability
    1 / (1 + exp(-beta (reward_j - reward_own))) (Szabo & Toke 1998).

    Drawing the neighbour and then the copy gives the same distribution as one draw with
    the averaged probability, which is what is recorded as p_violate.
    """

    def __init__(self, rng: np.random.Generator, cfg: FermiConfig):
        super().__init__(rng, cfg)
        self.beta = cfg.beta

    def rule(self, request: DecisionRequest, own: Experience) -> float:
        peers = _valid(request.peers)
        if not peers:
            return float(own.violated)
        total = 0.0
        for p in peers:
            copy = 0.5 * (1.0 + math.tanh(0.5 * self.beta * (p.reward - own.reward)))
            total += copy * p.violated + (1.0 - copy) * own.violated
        return total / len(peers)


class ImitateBest(ImitationRule):
    """Copy the choice that earned the most in the closed neighbourhood last round
    (Nowak & May 1992); the agent keeps its own choice when it is among the best, and
    ties between neighbours are broken at random."""

    def rule(self, request: DecisionRequest, own: Experience) -> float:
        peers = _valid(request.peers)
        best = max((p.reward for p in peers), default=-math.inf)
        if own.reward >= best:
            return float(own.violated)
        winners = [p.violated for p in peers if p.reward == best]
        return sum(winners) / len(winners)


class LinearThreshold(ImitationRule):
    """Violate once the share of violating neighbours reaches the agent's own threshold
    phi (Granovetter 1978; Watts 2002). With `progressive`, a violator stays one.

    phi is drawn once per agent: `threshold` itself (constant), uniform in
    threshold +- spread, or normal(threshold, spread), clipped to [0, 1].
    """

    def __init__(self, rng: np.random.Generator, cfg: LinearThresholdConfig):
        super().__init__(rng, cfg)
        self.threshold, self.spread = cfg.threshold, cfg.spread
        self.distribution, self.progressive = cfg.distribution, cfg.progressive
        self.phi = np.empty(0)  # per agent id, drawn on first sight

    def p_violate(self, requests: Sequence[DecisionRequest]) -> np.ndarray:
        self._draw_thresholds(max((r.agent_id for r in requests), default=-1) + 1)
        return super().p_violate(requests)

    def _draw_thresholds(self, n: int) -> None:
        new = n - len(self.phi)
        if new <= 0:
            return
        if self.distribution == "uniform":
            drawn = self.rng.uniform(
                self.threshold - self.spread, self.threshold + self.spread, new
            )
        elif self.distribution == "normal":
            drawn = self.rng.normal(self.threshold, self.spread, new)
        else:
            drawn = np.full(new, self.threshold)
        self.phi = np.concatenate([self.phi, np.clip(drawn, 0.0, 1.0)])

    def rule(self, request: DecisionRequest, own: Experience) -> float:
        if self.progressive and own.violated:
            return 1.0
        peers = _valid(request.peers)
        if not peers:
            return float(own.violated)
        share = sum(p.violated for p in peers) / len(peers)
        return float(share >= self.phi[request.agent_id])

    def state_dict(self) -> dict:
        return {**super().state_dict(), "phi": self.phi.tolist()}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.phi = np.asarray(state["phi"], dtype=float)
