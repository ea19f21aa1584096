"""Which agents act independently of each other: the unit a bootstrap resamples, and
whether agents see each other at all (diffusion metrics mean nothing otherwise).

Read from a run's resolved config (manifest.json), never from the simulator's code:
- a graph over the whole population through which agents see their neighbours' choices
  couples every agent of the run: the unit is the run (a seed);
- a threshold game couples its players (payoff and sight): the unit is the game (group);
- otherwise agents decide alone: the unit is the agent.
Where a run recorded its graph (graph.parquet), the population-wide case resamples its
connected components instead (`components`): agents in different components never
influence each other, and a sparse graph has many.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import networkx as nx
import polars as pl

from analysis.load import RUN

MIN_UNITS = 3
"""Fewer independent units than this behind an interval: the report warns."""

NAMES = {"agent": "agents", "group": "games", "component": "connected groups", "run": "runs"}
"""How a caption calls each unit."""

ORDER = ("agent", "group", "component", "run")  # from finest to coarsest


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


def components(run: Path, decisions: pl.DataFrame, coupled_groups: bool) -> pl.DataFrame | None:
    """Each agent's connected component of who-affects-whom in `run`: graph.parquet's
    edges (who sees whom), plus the players of one game when `coupled_groups`.

    decisions: the run's (agent, group) pairs. Returns agent, component (the smallest
    agent id in it); None when the run recorded no graph.
    """
    path = Path(run) / "graph.parquet"
    if not path.is_file():
        return None
    members = decisions.select("agent", "group").unique()
    graph = nx.Graph()
    graph.add_nodes_from(members.get_column("agent").to_list())
    graph.add_edges_from(pl.read_parquet(path).iter_rows())
    if coupled_groups:
        for agents in members.group_by("group").agg("agent").get_column("agent"):
            graph.add_edges_from(zip(agents[:-1], agents[1:], strict=True))
    rows = [(a, min(c)) for c in nx.connected_components(graph) for a in c]
    return pl.DataFrame(rows, schema={"agent": pl.Int32, "component": pl.Int32}, orient="row")


def with_components(root: Path, decisions: pl.DataFrame, configs: dict[str, dict]):
    """`decisions` with a `component` column (see `components`) for every run under
    `root` (configs: each run's config by its run_dir); None if a run has no graph."""
    parts = []
    for run_dir, config in configs.items():
        rows = decisions.filter(pl.col(RUN) == run_dir)
        kind = (config.get("env") or {}).get("kind")
        found = components(Path(root) / run_dir, rows, coupled_groups=kind == "threshold")
        if found is None:
            return None
        parts.append(found.with_columns(pl.lit(run_dir, pl.String).alias(RUN)))
    return decisions.join(pl.concat(parts), on=[RUN, "agent"], how="left")
