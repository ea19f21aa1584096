"""Elasticity metrics ("Language Models Resist Alignment", arXiv 2406.06144): how fast an
aligned model springs back toward its pre-training behaviour, and at what cost.

Each function takes plain trajectories (a sequence of values over steps or rounds), so
it applies alike to violation rates, KL to the base or KL to the aligned model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class TwoPhase:
    """A trajectory split at `breakpoint` into two straight lines, each fit on its own."""

    breakpoint: float  # the x where the second phase starts (shared by both fits)
    rate_before: float  # slope of the first phase
    rate_after: float  # slope of the second phase
    sse: float  # squared error of the two fits together


def line(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Least-squares slope and the sum of squared residuals."""
    slope, intercept = np.polyfit(x, y, 1)
    return float(slope), float(((y - (slope * x + intercept)) ** 2).sum())


def two_phase(values: Sequence[float], x: Sequence[float] | None = None) -> TwoPhase:
    """The breakpoint b minimising SSE(line on x <= x_b) + SSE(line on x >= x_b).

    The two segments share the point at b, each has at least 2 points, so a trajectory
    needs at least 3; the rates are the slopes of the two lines (a fast decline followed
    by a slow one is rate_before << rate_after < 0).
    """
    y = np.asarray(values, dtype=float)
    t = np.arange(len(y), dtype=float) if x is None else np.asarray(x, dtype=float)
    if len(y) < 3:
        raise ValueError("two_phase needs at least 3 points")
    best = None
    for b in range(1, len(y) - 1):
        (r1, e1), (r2, e2) = line(t[: b + 1], y[: b + 1]), line(t[b:], y[b:])
        if best is None or e1 + e2 < best.sse - 1e-12:
            best = TwoPhase(float(t[b]), r1, r2, e1 + e2)
    return best


def rebound_cost(distance: Sequence[float], cost: Sequence[float], epsilon: float) -> float | None:
    """The cost (samples or steps, `cost[i]` spent by point i) at which the distance to the
    base first falls below epsilon; None if it never does."""
    for d, c in zip(distance, cost, strict=True):
        if d < epsilon:
            return float(c)
    return None


def rebound_speed(doses: Sequence[float], costs: Sequence[float]) -> float:
    """Least-squares slope of rebound cost on alignment dose: below 0, a larger dose
    rebounds at a lower cost (faster)."""
    return line(np.asarray(doses, dtype=float), np.asarray(costs, dtype=float))[0]


def resistance_ratio(inverse_losses: Sequence[float], forward_losses: Sequence[float]) -> float:
    """Mean training loss of the inverse fine-tuning (aligned -> base behaviour) over that
    of the forward one (base -> aligned behaviour), on equal-size runs: below 1, the way
    back costs less (the model resists alignment)."""
    return float(np.mean(inverse_losses) / np.mean(forward_losses))


def hysteresis(first_tip: float, re_tip: float) -> float:
    """Rounds (or steps) to tip again after re-alignment over those to tip the first time:
    below 1, a re-aligned model tips faster."""
    return re_tip / first_tip
