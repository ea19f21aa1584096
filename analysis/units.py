"""Which agents act independently of each other: the unit a bootstrap resamples, and
whether agents see each other at all (diffusion metrics mean nothing otherwise).

Read from a run's resolved config (manifest.json), never from the simulator's code:
- a graph over the whole population through which agents see their neighbours' choices
  couples every agent of the run: the unit is the run (a seed);
- a threshold game couples its players (payoff and sight): the unit is the game (group);
- otherwise agents decide alone: the unit is the agent.
"""

from __future__ import annotations

from collections.abc import Iterable

MIN_UNITS = 3
"""Fewer independent units than this behind an interval: the report warns."""

NAMES = {"agent": "agents", "group": "games", "run": "runs"}
"""How a caption calls each unit."""

ORDER = ("agent", "group", "run")  # from finest to coarsest


def sees_neighbours(config: dict) -> bool:
    """Whether an agent's prompt shows its neighbours' choices (peer view and memory)."""
    agents = config.get("agents") or {}
    return agents.get("peer_view", "final_only") != "none" and agents.get("memory_window", 1) >= 1


def interaction_unit(config: dict) -> str:
    """The coarsest set of agents that may influence each other in one run (see above)."""
    graph, env = config.get("graph") or {}, config.get("env") or {}
    if sees_neighbours(config) and graph.get("scope") == "population":
        return "run"
    if env.get("kind") == "threshold":
        return "run" if env.get("scope") == "neighbourhood" else "group"
    return "agent"


def coarsest(units: Iterable[str]) -> str:
    """The unit that is safe for every run of a sweep (mixed settings: the coarsest)."""
    return max(units, key=ORDER.index, default="agent")
