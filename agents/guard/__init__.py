"""Guards: an Aligner-style corrector between the agents' decisions and the world.

`guard.name`: none (no guard stage) | calibrated (set catch and false-edit rates) |
model (any backend prompted in Aligner's format, agents/guard/aligner.py) | corrector (a
model guard the project trains on the simulator's own decisions, agents/guard/corrector.py;
sim/corrector.py builds it and serves it as a model guard).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from agents.guard.base import FEEDBACK, POSITIONS, Guard, Review
from envs.errors import InputError, number

KINDS = ("none", "calibrated", "model", "corrector")


def check_guard(cfg: Mapping | None) -> None:
    """The guard settings a user can get wrong, checked before anything heavy loads."""
    if not cfg:
        return
    name = cfg.get("name", "none")
    if name not in KINDS:
        raise InputError(f"guard.name: {name!r}; expected one of {', '.join(KINDS)}")
    if name == "none":
        return
    for key, allowed in (("position", POSITIONS), ("feedback", FEEDBACK)):
        if cfg.get(key) not in allowed:
            raise InputError(f"guard.{key}: {cfg.get(key)!r}; expected one of {', '.join(allowed)}")
    if name == "calibrated":
        for key in ("catch_rate", "false_edit_rate"):
            number(cfg.get(key), f"guard.{key}", low=0.0, high=1.0)
    if name in ("model", "corrector"):
        check_model_guard(cfg)
    if name == "corrector":
        from agents.guard.corrector import check_corrector

        if cfg["backend"]["name"] not in ("organism", "hf"):
            raise InputError(
                f"guard.backend.name: {cfg['backend']['name']!r}; the corrector trains from "
                "local weights: organism or hf (with guard.backend.model.path=DIR)"
            )
        check_corrector(cfg["corrector"])


def check_model_guard(cfg: Mapping) -> None:
    from agents.backends import BACKENDS

    backend = cfg.get("backend")
    if not isinstance(backend, Mapping) or backend.get("name") not in BACKENDS:
        got = backend.get("name") if isinstance(backend, Mapping) else backend
        raise InputError(
            f"guard.backend.name: {got!r}; expected one of {', '.join(BACKENDS)} "
            "(e.g. guard/backend=hf guard.backend.model.path=DIR)"
        )
    if cfg.get("mode") not in ("score", "generate"):
        raise InputError(f"guard.mode: {cfg.get('mode')!r}; expected score or generate")


def make_guard(cfg: Mapping | None, rng: np.random.Generator) -> Guard | None:
    """The configured guard, or None for no guard stage (guard=none)."""
    check_guard(cfg)
    if not cfg or cfg.get("name", "none") == "none":
        return None
    position, feedback = cfg["position"], cfg["feedback"]
    if cfg["name"] == "corrector" and cfg["backend"]["name"] != "hf":
        raise ValueError("guard=corrector: serve it through sim.corrector.served first")
    if cfg["name"] in ("model", "corrector"):
        from agents.guard.aligner import model_guard

        return model_guard(cfg, position, feedback, rng)
    from agents.guard.calibrated import calibrated_guard

    return calibrated_guard(cfg, position, feedback, rng)


__all__ = ["FEEDBACK", "KINDS", "POSITIONS", "Guard", "Review", "check_guard", "make_guard"]
