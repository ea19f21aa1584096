"""Guards: an Aligner-style corrector between the agents' decisions and the world.

`guard.name`: none (no guard stage) | calibrated (set catch and false-edit rates) |
model (any backend prompted in Aligner's format, agents/guard/aligner.py) | corrector (a
model guard the project trains on the simulator's own decisions, agents/guard/corrector.py;
sim/corrector.py builds it and serves it as a model guard). settings.py: the typed,
checked guard.* config.
"""

from __future__ import annotations

import numpy as np

from agents.guard.base import FEEDBACK, POSITIONS, Guard, Review
from agents.guard.settings import CalibratedConfig, GuardConfig, ModelGuardConfig


def make_guard(cfg: GuardConfig, rng: np.random.Generator) -> Guard | None:
    """The configured guard, or None for no guard stage (guard=none); a corrector comes
    here served (sim.corrector.served: guard.backend is backend=hf at its checkpoint)."""
    if isinstance(cfg, ModelGuardConfig):
        if cfg.name == "corrector" and cfg.backend["name"] != "hf":
            raise ValueError("guard=corrector: serve it through sim.corrector.served first")
        from agents.guard.aligner import model_guard

        return model_guard(cfg, rng)
    if isinstance(cfg, CalibratedConfig):
        from agents.guard.calibrated import calibrated_guard

        return calibrated_guard(cfg, rng)
    return None


__all__ = ["FEEDBACK", "POSITIONS", "Guard", "Review", "make_guard"]
