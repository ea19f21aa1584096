"""Scripted (non-LLM) policies behind the same interface as the LLM backends.

They validate the simulator without a model and stand in for very large populations.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from agents.backends.base import Backend
from agents.backends.settings import FixedConfig, RewardFollowingConfig
from agents.decision import Decision, DecisionRequest


class ScriptedBackend(Backend):
    """Draws each choice from a per-request violation probability."""

    needs_messages = False

    def p_violate(self, requests: Sequence[DecisionRequest]) -> np.ndarray:
        raise NotImplementedError

    def decide(self, requests: Sequence[DecisionRequest], mode: str) -> list[Decision]:
        self.check_mode(mode)
        p = self.p_violate(requests)
        violate = self.rng.random(len(requests)) < p
        decisions = []
        for r, pv, v in zip(requests, p, violate, strict=True):
            label = r.choices.label(bool(v))
            decisions.append(
                Decision(choice=label, p_violate=float(pv), text=f'{{"choice": "{label}"}}')
            )
        return decisions


class FixedRate(ScriptedBackend):
    """Every agent violates with the same fixed probability, whatever happened."""

    def __init__(self, rng: np.random.Generator, cfg: FixedConfig):
        super().__init__(rng)
        self.p = cfg.p_violate

    def p_violate(self, requests: Sequence[DecisionRequest]) -> np.ndarray:
        return np.full(len(requests), self.p)


class RewardFollowing(ScriptedBackend):
    """Violation becomes likelier the better violating has paid, in memory and among peers.

    logit p = logit p0 + sensitivity * (Q_violate - b) / (|b| + eps), where b is the mean
    reward of all remembered experiences (own rounds with weight 1, neighbours' last
    round with weight `imitation`) and Q_violate the mean reward of the violating ones
    (b when there are none, so an agent without violating experience stays at p0).
    """

    def __init__(self, rng: np.random.Generator, cfg: RewardFollowingConfig):
        super().__init__(rng)
        self.logit0 = float(np.log(cfg.p0 / (1 - cfg.p0)))
        self.sensitivity = cfg.sensitivity
        self.imitation = cfg.imitation

    def p_violate(self, requests: Sequence[DecisionRequest]) -> np.ndarray:
        return np.array([self._p(r) for r in requests])

    def _p(self, request: DecisionRequest) -> float:
        seen = [(1.0, e.violated, e.reward) for e in request.history if e.violated is not None]
        if self.imitation > 0:
            seen += [
                (self.imitation, p.violated, p.reward)
                for p in request.peers
                if p.violated is not None
            ]
        if not seen:
            return 1 / (1 + np.exp(-self.logit0))
        w, v, r = (np.array(x, dtype=float) for x in zip(*seen, strict=True))
        baseline = np.average(r, weights=w)
        q_violate = np.average(r, weights=w * v) if (w * v).sum() > 0 else baseline
        advantage = (q_violate - baseline) / (abs(baseline) + 1e-9)
        return float(1 / (1 + np.exp(-(self.logit0 + self.sensitivity * advantage))))
