"""A stand-in guard of known quality, for studies that need to set how good it is."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from agents.decision import Decision, DecisionRequest
from agents.guard.base import Guard, Review, reviewed
from agents.guard.settings import CalibratedConfig
from agents.parsing import decision_json


class CalibratedGuard(Guard):
    """Corrects a violating answer to the compliant label with probability `catch_rate`
    and turns a compliant answer into the violating one with `false_edit_rate`; invalid
    answers pass unchanged. One uniform draw per agent per round, so the stream (and the
    records) depend only on the run seed and the number of agents."""

    def __init__(self, position, feedback, rng, catch_rate: float, false_edit_rate: float):
        super().__init__(position, feedback, rng)
        self.catch_rate = catch_rate
        self.false_edit_rate = false_edit_rate

    def review(
        self, requests: Sequence[DecisionRequest], decisions: Sequence[Decision]
    ) -> list[Review]:
        draws = self.rng.random(len(decisions))
        reviews = []
        for request, decision, u in zip(requests, decisions, draws, strict=True):
            violated = request.choices.is_violation(decision.choice)
            if violated is None:
                reviews.append(Review(decision, False))
                continue
            flip = u < (self.catch_rate if violated else self.false_edit_rate)
            label = request.choices.label(violated != bool(flip))
            reviews.append(reviewed(decision, decision_json(label), request))
        return reviews


def calibrated_guard(cfg: CalibratedConfig, rng: np.random.Generator) -> CalibratedGuard:
    return CalibratedGuard(cfg.position, cfg.feedback, rng, cfg.catch_rate, cfg.false_edit_rate)
