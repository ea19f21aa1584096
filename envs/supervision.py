"""Supervision schedules for role-play: is the rule enforced in round t?

Deterministic patterns follow ATP's definitions; `random` draws from the
environment's own RNG so a run is reproducible from its seed.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from envs.errors import InputError, number

Pattern = Callable[[int, int], bool]  # (round, n_rounds) -> supervised?

PATTERNS: dict[str, Pattern] = {
    "all_supervised": lambda t, n: True,
    "all_unsupervised": lambda t, n: False,
    "alternating": lambda t, n: t % 2 == 0,
    "mostly_supervised": lambda t, n: t % 4 != 3,
    "mostly_unsupervised": lambda t, n: t % 4 == 0,
    "last_unsupervised": lambda t, n: t != n - 1,
    "last_supervised": lambda t, n: t == n - 1,
}
SCHEDULES = (*PATTERNS, "random")
# Under a constant schedule the agent is told nothing about supervision (ATP shows the
# neutral text); under a varying one it is told the round's state.
CONSTANT = ("all_supervised", "all_unsupervised")


class SupervisionSchedule:
    """The supervision state of every agent in every round."""

    def __init__(self, name: str, n_rounds: int, p_supervised: float = 0.5, p_neutral: float = 0.0):
        if name not in SCHEDULES:
            raise InputError(
                f"env.schedule: unknown schedule {name!r}; expected one of {', '.join(SCHEDULES)}"
            )
        for key, p in (("p_supervised", p_supervised), ("p_neutral", p_neutral)):
            number(p, f"env.{key}", high=1.0)
        if p_supervised + p_neutral > 1.0:
            raise InputError("env.p_supervised + env.p_neutral: must not exceed 1")
        self.name = name
        self.n_rounds = n_rounds
        self.p_supervised = p_supervised
        self.p_neutral = p_neutral

    def states(self, t: int, n_agents: int, rng: np.random.Generator) -> list[str]:
        """Each agent's supervision state in round t: supervised, unsupervised or neutral.

        Only `random` produces the neutral state (with probability p_neutral): the
        supervisor's schedule is unknown, and the agent is told so.
        """
        if self.name == "random":
            u = rng.random(n_agents)
            p_s, p_n = self.p_supervised, self.p_supervised + self.p_neutral
            return [
                "supervised" if x < p_s else "neutral" if x < p_n else "unsupervised" for x in u
            ]
        state = "supervised" if PATTERNS[self.name](t, self.n_rounds) else "unsupervised"
        return [state] * n_agents

    @property
    def announced(self) -> bool:
        """Whether agents are told the round's supervision state."""
        return self.name not in CONSTANT
