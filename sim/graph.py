"""Who sees whom: the population graph over agent slots, built with networkx."""

from __future__ import annotations

from collections.abc import Sequence

import networkx as nx

from envs.errors import InputError

KINDS = ("complete",)


def population_graph(cfg: dict, group: Sequence[int]) -> nx.Graph:
    """The graph on agents 0..n-1 whose edges say who sees whom.

    `complete`: every agent sees every other member of its environment group (ATP): the
    players of one threshold game see each other; a role-play agent sees no one.
    """
    kind = cfg.get("kind")
    if kind not in KINDS:
        raise InputError(
            f"graph.kind: unknown topology {kind!r}; expected one of {', '.join(KINDS)}"
        )
    graph = nx.Graph()
    graph.add_nodes_from(range(len(group)))
    members: dict[int, list[int]] = {}
    for agent, g in enumerate(group):
        members.setdefault(g, []).append(agent)
    for agents in members.values():
        graph.add_edges_from(nx.complete_graph(agents).edges)
    return graph
