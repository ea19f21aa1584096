"""Who sees whom: the population graph over agent slots, built with networkx.

Agent i sits on node i. A graph read from a file may have more nodes than its agents;
the extra nodes stay empty and are numbered after the agents. Every random topology is
drawn from the `graph` stream of the run seed, so the same seed gives the same graph.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from itertools import chain
from pathlib import Path

import networkx as nx
import numpy as np

from envs.errors import InputError
from sim.config import (
    BlockGraph,
    DeviantsConfig,
    ErdosRenyiGraph,
    FileGraph,
    GraphConfig,
    RingGraph,
    ScaleFreeGraph,
    SmallWorldGraph,
)

UnitGraph = Callable[[int, int], nx.Graph]  # (number of agents, seed) -> graph on 0..n-1


def population_graph(cfg: GraphConfig, group: Sequence[int], rng: np.random.Generator) -> nx.Graph:
    """The graph on agents 0..n-1 (plus a file graph's empty nodes): who sees whom.

    scope=within_groups builds one graph of the configured kind per environment group:
    with kind=complete the players of a threshold game see each other (ATP) and a
    role-play agent, alone in its group, sees no one. scope=population builds one graph
    over all agents. A group of one agent is a single node whatever the kind.
    `connected: true` rejects a graph with more than one component per group.
    Nodes carry a `community` attribute when the kind defines communities.
    """
    build = KINDS[cfg.kind](cfg)
    units = _units(group) if cfg.scope == "within_groups" else [list(range(len(group)))]
    graph = nx.Graph()
    graph.add_nodes_from(range(len(group)))
    communities = 0
    for members in units:
        unit = (
            build(len(members), int(rng.integers(2**32))) if len(members) > 1 else nx.empty_graph(1)
        )
        if cfg.connected and not nx.is_connected(unit):
            raise InputError(
                f"graph.connected: the {cfg.kind} graph over {len(members)} agents has "
                f"{nx.number_connected_components(unit)} components; set graph.connected=false "
                "to allow it, or choose denser parameters"
            )
        node = _placement(list(unit.nodes), members, graph.number_of_nodes())
        graph.add_nodes_from(node[v] for v in unit.nodes)
        graph.add_edges_from((node[u], node[v]) for u, v in unit.edges)
        labels = {v: c for v, c in unit.nodes(data="community") if c is not None}
        ids = {c: communities + i for i, c in enumerate(dict.fromkeys(labels.values()))}
        nx.set_node_attributes(graph, {node[v]: ids[c] for v, c in labels.items()}, "community")
        communities += len(ids)
    return graph


def _units(group: Sequence[int]) -> list[list[int]]:
    members: dict[int, list[int]] = {}
    for agent, g in enumerate(group):
        members.setdefault(g, []).append(agent)
    return list(members.values())


def _placement(nodes: list, members: list[int], first_free: int) -> dict:
    """Unit node -> population node: the first len(members) nodes hold the agents."""
    extra = range(first_free, first_free + len(nodes) - len(members))
    return dict(zip(nodes, [*members, *extra], strict=True))


def _fits(value: float, n: int, key: str, limit: int) -> None:
    if value > limit:
        raise InputError(f"graph.{key}: {value:g} is too large for a graph of {n} agents")


def _complete(cfg: GraphConfig) -> UnitGraph:
    return lambda n, seed: nx.complete_graph(n)


def _small_world(cfg: RingGraph) -> UnitGraph:
    """Watts-Strogatz: a ring lattice of k neighbours, each edge rewired with probability p
    (0 for a ring)."""
    k, p = cfg.k, cfg.p if isinstance(cfg, SmallWorldGraph) else 0.0

    def build(n: int, seed: int) -> nx.Graph:
        _fits(k, n, "k", n - 1)
        return nx.watts_strogatz_graph(n, k, p, seed=seed)

    return build


def _scale_free(cfg: ScaleFreeGraph) -> UnitGraph:
    def build(n: int, seed: int) -> nx.Graph:
        _fits(cfg.m, n, "m", n - 1)
        return nx.barabasi_albert_graph(n, cfg.m, seed=seed)

    return build


def _erdos_renyi(cfg: ErdosRenyiGraph) -> UnitGraph:
    z = cfg.mean_degree

    def build(n: int, seed: int) -> nx.Graph:
        _fits(z, n, "mean_degree", n - 1)
        return nx.fast_gnp_random_graph(n, z / (n - 1), seed=seed)

    return build


def _stochastic_block(cfg: BlockGraph) -> UnitGraph:
    """Equal-sized communities; degree_in/degree_out are expected neighbours inside/outside."""
    c, d_in, d_out = cfg.communities, cfg.degree_in, cfg.degree_out

    def build(n: int, seed: int) -> nx.Graph:
        _fits(c, n, "communities", n)
        sizes = [n // c + (i < n % c) for i in range(c)]
        p_in = min(1.0, d_in / max(min(sizes) - 1, 1))
        p_out = min(1.0, d_out / max(n - max(sizes), 1)) if c > 1 else 0.0
        probs = [[p_in if a == b else p_out for b in range(c)] for a in range(c)]
        graph = nx.stochastic_block_model(sizes, probs, seed=seed)
        nx.set_node_attributes(graph, dict(graph.nodes(data="block")), "community")
        return graph

    return build


def _from_file(cfg: FileGraph) -> UnitGraph:
    """The file's graph, the same for every unit; agents take its nodes in file order."""
    template = read_graph_file(cfg.path, cfg.format)

    def build(n: int, seed: int) -> nx.Graph:
        if template.number_of_nodes() < n:
            raise InputError(
                f"graph.path: {cfg.path} has {template.number_of_nodes()} nodes "
                f"for {n} agents; every agent needs a node"
            )
        return template

    return build


def read_graph_file(path: str, fmt: str = "auto") -> nx.Graph:
    """An undirected simple graph from an edge list or GraphML file (fmt: auto, edgelist
    or graphml).

    Nodes keep the file's order (for an edge list: order of first appearance), which is
    the order agents take them in. An edge list cannot name an isolated node; GraphML can.
    """
    file = Path(path)
    if fmt == "auto":
        fmt = "graphml" if file.suffix.lower() in (".graphml", ".xml") else "edgelist"
    if not file.is_file():
        raise InputError(f"graph.path: {path}: no such file")
    try:
        graph = nx.read_graphml(file) if fmt == "graphml" else nx.read_edgelist(file, data=False)
    except Exception as e:  # networkx and the XML parser raise many types
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise InputError(f"graph.path: {path}: not a valid {fmt} file ({first})") from None
    if graph.number_of_nodes() == 0:
        raise InputError(f"graph.path: {path}: the {fmt} file holds no nodes")
    simple = nx.Graph(graph)  # undirected, no parallel edges
    simple.remove_edges_from(nx.selfloop_edges(simple))
    return simple


KINDS: dict[str, Callable[[GraphConfig], UnitGraph]] = {
    "complete": _complete,
    "ring": _small_world,
    "small_world": _small_world,
    "scale_free": _scale_free,
    "erdos_renyi": _erdos_renyi,
    "stochastic_block": _stochastic_block,
    "file": _from_file,
}


@dataclass(frozen=True)
class Neighbors:
    """Every agent's neighbours as index arrays: agent i's are indices[indptr[i]:indptr[i+1]].

    Sums over all neighbourhoods at once (exposure, neighbourhood games) then take one
    numpy call instead of a Python loop per agent, which matters at 100,000 agents.
    """

    indptr: np.ndarray
    indices: np.ndarray

    @classmethod
    def from_lists(cls, lists: Sequence[Sequence[int]]) -> Neighbors:
        degree = np.fromiter(map(len, lists), np.int64, len(lists))
        indptr = np.concatenate([[0], np.cumsum(degree)])
        return cls(indptr, np.fromiter(chain.from_iterable(lists), np.int64, int(indptr[-1])))

    def __len__(self) -> int:
        return len(self.indptr) - 1

    def of(self, agent: int) -> tuple[int, ...]:
        """Agent's neighbours, in index order."""
        return tuple(self.indices[self.indptr[agent] : self.indptr[agent + 1]].tolist())

    @property
    def degree(self) -> np.ndarray:
        return np.diff(self.indptr)

    @cached_property
    def rows(self) -> np.ndarray:
        """The agent each entry of `indices` belongs to."""
        return np.repeat(np.arange(len(self)), self.degree)

    def sums(self, values: np.ndarray) -> np.ndarray:
        """Per agent, the sum of `values` (one per agent) over its neighbours."""
        return np.bincount(self.rows, weights=values[self.indices], minlength=len(self))


def initial_deviants(
    cfg: DeviantsConfig, graph: nx.Graph, n_agents: int, rng: np.random.Generator
) -> list[int]:
    """The agents planted as violators: `count` of them, placed by `where`.

    random: anywhere; highest_degree / lowest_degree: by number of agent neighbours, ties
    broken at random; community: at random within one community, the `community`-th
    largest (stochastic-block communities, else Louvain communities of the graph).
    """
    count, where = cfg.count, cfg.where
    if count > n_agents:
        raise InputError(f"deviants.count: {count!r} must be an integer between 0 and {n_agents}")
    if count == 0:
        return []
    agents = graph.subgraph(range(n_agents))
    if where == "random":
        chosen = rng.choice(n_agents, count, replace=False)
    elif where == "community":
        pool = _community(cfg.community, agents, rng)
        if count > len(pool):
            raise InputError(
                f"deviants.count: {count} deviants do not fit in community "
                f"{cfg.community} of {len(pool)} agents"
            )
        chosen = rng.choice(pool, count, replace=False)
    else:
        degree = np.array([agents.degree(i) for i in range(n_agents)])
        key = -degree if where == "highest_degree" else degree
        chosen = np.lexsort((rng.random(n_agents), key))[:count]
    return sorted(int(i) for i in chosen)


def _community(index: int, agents: nx.Graph, rng: np.random.Generator) -> list[int]:
    labels = dict(agents.nodes(data="community"))
    if all(c is not None for c in labels.values()):
        by_label: dict[int, list[int]] = {}
        for node, c in labels.items():
            by_label.setdefault(c, []).append(node)
        found = list(by_label.values())
    else:
        found = nx.community.louvain_communities(agents, seed=int(rng.integers(2**32)))
    ranked = sorted((sorted(c) for c in found), key=lambda c: (-len(c), c[0]))
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(ranked):
        raise InputError(
            f"deviants.community: {index!r}; the graph has {len(ranked)} communities "
            f"(0 = the largest)"
        )
    return ranked[index]
