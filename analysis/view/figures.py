"""The live view's own figures: the population graph, the p_violate distribution, the
weight updates, a guard's proposed against executed violations. Built without pyplot,
like `analysis.plots`, whose curves it reuses.

Above `MAX_DRAWN` agents the graph shows a connected sample of them (breadth first from
random agents), laid out once per run and cached: a spring layout of 10,000 nodes takes
minutes (1,000 take seconds) and a page of 10,000 dots says no more than one of 1,000.
"""

from __future__ import annotations

from collections import OrderedDict, deque

import networkx as nx
import numpy as np
import polars as pl
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure

from analysis.plots import COLORS, DPI, MAX_LINES, group_labels

MAX_DRAWN = 1000
CHOICE_COLORS = {True: "#d62728", False: "#1f77b4", None: "#bbbbbb"}  # violated, complied, invalid
Layout = tuple[np.ndarray, np.ndarray, nx.Graph]  # drawn agents, their positions, their graph
_LAYOUTS: OrderedDict[tuple, Layout] = OrderedDict()


def _figure(width: float = 6.0, height: float = 4.2) -> Figure:
    return Figure(figsize=(width, height), dpi=DPI, layout="constrained")


def _say(fig: Figure, text: str, title: str) -> Figure:
    ax = fig.add_subplot()
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="0.4")
    ax.set_axis_off()
    ax.set_title(title)
    return fig


def drawn_agents(edges: pl.DataFrame, n_agents: int, limit: int, seed: int = 0) -> np.ndarray:
    """Which agents to draw: all up to `limit`, else a connected sample of `limit`."""
    if n_agents <= limit:
        return np.arange(n_agents)
    rng = np.random.default_rng(seed)
    adjacency = [[] for _ in range(n_agents)]
    for s, t in edges.iter_rows():
        adjacency[s].append(t)
        adjacency[t].append(s)
    chosen: dict[int, None] = {}
    for start in rng.permutation(n_agents):
        queue = deque([int(start)])
        while queue and len(chosen) < limit:
            node = queue.popleft()
            if node in chosen:
                continue
            chosen[node] = None
            queue.extend(n for n in adjacency[node] if n not in chosen)
        if len(chosen) >= limit:
            break
    return np.sort(np.fromiter(chosen, int, len(chosen)))


def layout(key: str, edges: pl.DataFrame, n_agents: int) -> Layout:
    """(drawn agents, their positions, the drawn graph), computed once per key and size."""
    cache_key = (key, n_agents, edges.height)
    if cache_key not in _LAYOUTS:
        agents = drawn_agents(edges, n_agents, MAX_DRAWN)
        keep = edges.filter(pl.col("source").is_in(agents) & pl.col("target").is_in(agents))
        g = nx.Graph()
        g.add_nodes_from(agents.tolist())
        g.add_edges_from(keep.iter_rows())
        pos = nx.spring_layout(g, seed=0, iterations=30 if len(agents) > 500 else 60)
        _LAYOUTS[cache_key] = (agents, np.array([pos[a] for a in agents]), g)
        while len(_LAYOUTS) > 8:
            _LAYOUTS.popitem(last=False)
    return _LAYOUTS[cache_key]


def population_figure(placed: Layout, last: pl.DataFrame, n_agents: int, color_by: str) -> Figure:
    """Agents on their graph (`layout`), coloured by their last choice or by p_violate."""
    fig = _figure()
    title = "population"
    agents, xy, g = placed
    index = {a: i for i, a in enumerate(agents.tolist())}
    ax = fig.add_subplot()
    if g.number_of_edges():
        segments = [(xy[index[s]], xy[index[t]]) for s, t in g.edges()]
        ax.add_collection(LineCollection(segments, colors="0.75", linewidths=0.4, zorder=1))
    shown = last.filter(pl.col("agent").is_in(agents)).sort("agent")
    where = xy[[index[a] for a in shown.get_column("agent").to_list()]]
    size = max(4.0, 900.0 / np.sqrt(len(agents)))
    if color_by == "p_violate":
        p = shown.get_column("p_violate").fill_null(np.nan).to_numpy()
        dots = ax.scatter(*where.T, c=p, cmap="coolwarm", vmin=0, vmax=1, s=size, zorder=2)
        fig.colorbar(dots, ax=ax, label="p_violate", shrink=0.8)
    else:
        colors = [CHOICE_COLORS[v] for v in shown.get_column("violated").to_list()]
        ax.scatter(*where.T, c=colors, s=size, zorder=2)
        for label, value in (("violated", True), ("complied", False), ("invalid", None)):
            ax.scatter([], [], c=CHOICE_COLORS[value], s=20, label=label)
        ax.legend(fontsize=8, loc="lower right")
    t = last.item(0, "round")
    sample = f"{len(agents):,} of {n_agents:,} agents" if len(agents) < n_agents else ""
    ax.set_title(f"{title}, round {t}" + (f" ({sample}, a connected sample)" if sample else ""))
    ax.set_axis_off()
    ax.autoscale_view()
    return fig


def p_violate_figure(values: pl.DataFrame) -> Figure:
    """Histogram of the agents' p_violate in the first and the latest round."""
    fig = _figure(5.0, 3.6)
    title = "p_violate across agents"
    values = values.drop_nulls("p_violate")
    if values.is_empty():
        return _say(fig, "no p_violate recorded (scripted or generate mode)", title)
    ax = fig.add_subplot()
    bins = np.linspace(0, 1, 26)
    for i, (t, rows) in enumerate(sorted(values.partition_by("round", as_dict=True).items())):
        p = rows.get_column("p_violate").to_numpy()
        ax.hist(p, bins=bins, alpha=0.55, color=COLORS[i], label=f"round {t[0]}")
    ax.set_xlabel("p_violate")
    ax.set_ylabel("agents")
    ax.set_title(title)
    ax.legend(fontsize=8)
    return fig


def updates_figure(updates: pl.DataFrame) -> Figure:
    """Loss and KL of every weight update, by the round after which it ran."""
    fig = _figure(5.0, 3.6)
    title = "weight updates"
    if updates.is_empty():
        return _say(fig, "no weight updates (evolution=none)", title)
    loss, kl = fig.subplots(2, 1, sharex=True)
    by = ["run_dir"] if updates.get_column("run_dir").n_unique() > 1 else []
    for i, (label, rows) in enumerate(group_labels(updates, by)[:MAX_LINES]):
        mean = rows.group_by("round").agg(pl.col("loss", "kl").mean()).sort("round")
        x = mean.get_column("round").to_numpy()
        loss.plot(x, mean.get_column("loss").to_numpy(), "o-", ms=3, color=COLORS[i], label=label)
        kl.plot(x, mean.get_column("kl").to_numpy(), "o-", ms=3, color=COLORS[i])
    loss.set_ylabel("loss")
    kl.set_ylabel("KL")
    kl.set_xlabel("round")
    loss.set_title(f"{title} (mean over owners)")
    if by:
        loss.legend(fontsize=7)
    return fig


def guard_figure(rates: pl.DataFrame) -> Figure:
    """Per round: the violation rate the agents proposed and the one executed after the
    guard (dotted: the share of choices it changed)."""
    fig = _figure(5.0, 3.6)
    title = "guard: proposed vs executed"
    if rates.is_empty():
        return _say(fig, "no guard (guard=none)", title)
    ax = fig.add_subplot()
    by = ["run_dir"] if rates.get_column("run_dir").n_unique() > 1 else []
    for i, (label, rows) in enumerate(group_labels(rates, by)[:MAX_LINES]):
        x = rows.get_column("round").to_numpy()
        name = "" if label == "all" else f"{label}: "
        ax.plot(x, rows.get_column("proposed").to_numpy(), "o--", ms=3, color=COLORS[i],
                label=f"{name}proposed")  # fmt: skip
        ax.plot(x, rows.get_column("executed").to_numpy(), "o-", ms=3, color=COLORS[i],
                label=f"{name}executed")  # fmt: skip
        ax.plot(x, rows.get_column("changed").to_numpy(), ":", color=COLORS[i], lw=1,
                label=f"{name}changed by the guard")  # fmt: skip
    ax.set_ylim(-0.03, 1.03)
    ax.set_xlabel("round")
    ax.set_ylabel("share of decisions")
    ax.set_title(title)
    ax.legend(fontsize=7)
    return fig
