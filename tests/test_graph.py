"""Population graphs: topologies, files, scopes, Mesa placement, deviants, neighbourhood games."""

from __future__ import annotations

import networkx as nx
import numpy as np
import polars as pl
import pytest
from mesa.discrete_space import Network

from envs.errors import InputError
from sim.config import DeviantsConfig, graph_config
from sim.graph import initial_deviants, population_graph
from tests.helpers import DOMINANT, build, conf_yaml, config, play


def graph(cfg: dict, group, seed: int = 0) -> nx.Graph:
    """The graph cfg's values (over conf/graph/KIND.yaml's) describe."""
    values = {**conf_yaml(f"graph/{cfg['kind']}"), **cfg}
    return population_graph(graph_config(values), group, np.random.default_rng(seed))


def deviants(**values) -> DeviantsConfig:
    """deviants.* with these values over conf/config.yaml's."""
    return DeviantsConfig.of({**conf_yaml("config")["deviants"], **values})


def degrees(g: nx.Graph) -> list[int]:
    return [d for _, d in g.degree()]


def test_complete_within_groups_is_atp():
    g = graph({"kind": "complete"}, [0, 0, 0, 1, 1, 2])
    assert sorted(g.edges) == [(0, 1), (0, 2), (1, 2), (3, 4)]
    assert degrees(g) == [2, 2, 2, 1, 1, 0]  # agent 5 is alone in its group


def test_each_topology_over_the_population():
    n, everyone = 400, [0] * 400
    ring = graph({"kind": "ring", "k": 6, "scope": "population"}, everyone)
    assert set(degrees(ring)) == {6} and nx.is_connected(ring)
    lattice = graph({"kind": "small_world", "k": 6, "p": 0.0, "scope": "population"}, everyone)
    assert nx.utils.graphs_equal(lattice, ring)
    rewired = graph({"kind": "small_world", "k": 6, "p": 0.2, "scope": "population"}, everyone)
    assert rewired.number_of_edges() == ring.number_of_edges() and not nx.utils.graphs_equal(
        rewired, ring
    )
    assert nx.average_clustering(rewired) > 5 * nx.density(rewired)  # still clustered
    ba = graph({"kind": "scale_free", "m": 3, "scope": "population"}, everyone)
    assert ba.number_of_edges() == 3 * (n - 3) and max(degrees(ba)) > 5 * 6  # hubs
    er = graph({"kind": "erdos_renyi", "mean_degree": 8.0, "scope": "population"}, everyone)
    assert 7.0 < np.mean(degrees(er)) < 9.0
    cfg = {"kind": "stochastic_block", "communities": 4, "degree_in": 10.0, "degree_out": 1.0}
    sbm = graph({**cfg, "scope": "population"}, everyone)
    community = nx.get_node_attributes(sbm, "community")
    assert sorted(np.bincount(list(community.values()))) == [100] * 4
    inside = sum(community[u] == community[v] for u, v in sbm.edges)
    assert inside > 5 * (sbm.number_of_edges() - inside)


def test_within_groups_builds_one_graph_per_group():
    g = graph({"kind": "ring", "k": 2}, [0] * 5 + [1] * 4)
    assert nx.number_connected_components(g) == 2
    assert set(nx.node_connected_component(g, 0)) == {0, 1, 2, 3, 4}


def test_the_seed_decides_the_graph():
    cfg = {"kind": "erdos_renyi", "mean_degree": 3.0, "scope": "population"}
    a, b, c = graph(cfg, [0] * 200, 1), graph(cfg, [0] * 200, 1), graph(cfg, [0] * 200, 2)
    assert nx.utils.graphs_equal(a, b) and not nx.utils.graphs_equal(a, c)


def test_graph_from_edge_list_and_graphml(tmp_path):
    path = tmp_path / "g.edgelist"
    path.write_text("a b\nb c\nc d\nd a\nd e\n")
    g = graph({"kind": "file", "path": str(path), "scope": "population"}, [0, 0, 0])
    # agents 0..2 on the file's first nodes a, b, c; d and e stay empty as nodes 3 and 4
    assert sorted(g.edges) == [(0, 1), (0, 3), (1, 2), (2, 3), (3, 4)]
    xml = tmp_path / "g.graphml"
    nx.write_graphml(nx.path_graph(["x", "y", "z"]), xml)
    assert sorted(graph({"kind": "file", "path": str(xml)}, [0, 0, 0]).edges) == [(0, 1), (1, 2)]


def test_agents_sit_on_a_mesa_network(tmp_path):
    path = tmp_path / "star.edgelist"
    path.write_text("hub a\nhub b\nhub c\n")
    cfg = config(2, {"kind": "file", "path": str(path)}, {"name": "fixed", "p_violate": 0.5})
    cfg["deviants"]["count"] = 0
    model = build(cfg, tmp_path)
    assert isinstance(model.space, Network)
    assert [a.cell.coordinate for a in model.population] == [0, 1]
    assert model.space[2].is_empty and model.space[3].is_empty
    assert model.population[0].neighbor_ids == (1,)  # empty nodes hide no one
    assert list(model.neighbors.degree) == [1, 1]


@pytest.mark.parametrize(
    ("cfg", "group", "message"),
    [
        ({"kind": "torus"}, [0, 0], "graph.kind: unknown topology 'torus'"),
        ({"kind": "ring", "k": 3}, [0] * 9, "graph.k: 3 must be even"),
        ({"kind": "ring", "k": 8}, [0] * 5, "graph.k: 8 is too large for a graph of 5 agents"),
        ({"kind": "small_world", "k": 2, "p": 1.5}, [0] * 5, "graph.p: 1.5 must be a number"),
        ({"kind": "complete", "scope": "world"}, [0, 0], "graph.scope: 'world'"),
        (
            {"kind": "erdos_renyi", "mean_degree": 0.5, "connected": True},
            [0] * 50,
            "graph.connected: the erdos_renyi graph over 50 agents has",
        ),
        ({"kind": "file", "path": "nowhere.txt"}, [0], "graph.path: nowhere.txt: no such file"),
    ],
)
def test_bad_graph_settings_fail_in_one_line(cfg, group, message):
    with pytest.raises(InputError, match=message) as e:
        graph(cfg, group)
    assert "\n" not in str(e.value)


def test_bad_graph_files_fail_in_one_line(tmp_path):
    small = tmp_path / "small.edgelist"
    small.write_text("a b\n")
    with pytest.raises(InputError, match=r"small.edgelist has 2 nodes for 3 agents"):
        graph({"kind": "file", "path": str(small)}, [0, 0, 0])
    broken = tmp_path / "broken.graphml"
    broken.write_text("<graphml><graph><node id='a'>")
    with pytest.raises(InputError, match=r"broken.graphml: not a valid graphml file") as e:
        graph({"kind": "file", "path": str(broken)}, [0])
    assert "\n" not in str(e.value)


def test_deviants_at_hubs_leaves_and_in_one_community():
    rng = np.random.default_rng(0)
    ba = graph({"kind": "scale_free", "m": 2, "scope": "population"}, [0] * 300)
    deg = dict(ba.degree())
    hubs = initial_deviants(deviants(count=3, where="highest_degree"), ba, 300, rng)
    assert sorted(deg[h] for h in hubs) == sorted(deg.values())[-3:]
    leaves = initial_deviants(deviants(count=5, where="lowest_degree"), ba, 300, rng)
    assert {deg[v] for v in leaves} == {2}
    sbm = graph(
        {"kind": "stochastic_block", "communities": 3, "degree_in": 8.0, "degree_out": 0.5,
         "scope": "population"},
        [0] * 300,
    )  # fmt: skip
    chosen = initial_deviants(deviants(count=10, where="community", community=1), sbm, 300, rng)
    assert len({sbm.nodes[v]["community"] for v in chosen}) == 1
    cliques = graph({"kind": "complete"}, [0] * 6 + [1] * 10)  # no labels: Louvain finds them
    assert set(initial_deviants(deviants(count=8, where="community"), cliques, 16, rng)) <= set(
        range(6, 16)
    )
    with pytest.raises(InputError, match="deviants.count: 301"):
        initial_deviants(deviants(count=301), ba, 300, rng)
    with pytest.raises(InputError, match="deviants.where: 'center'"):
        initial_deviants(deviants(count=1, where="center"), ba, 300, rng)
    with pytest.raises(InputError, match="deviants.community: 3; the graph has 3"):
        initial_deviants(deviants(count=1, where="community", community=3), sbm, 300, rng)


def test_neighbourhood_game_pays_from_the_closed_neighbourhood(tmp_path):
    """Edges 0-1, 1-2, 2-3, 1-3 and threshold k/n = 2/4: each agent counts itself and its
    neighbours and needs ceil(0.5 * that many) collective choosers.

    Agent 0 (the deviant, lowest degree) violates in round 0, the others comply: agent 0's
    neighbourhood {0, 1} has 1 of the 1 needed and succeeds; agent 1's {0, 1, 2, 3} has
    1 of the 2 needed and fails, as do agents 2 and 3 with none.
    """
    path = tmp_path / "g.edgelist"
    path.write_text("0 1\n1 2\n2 3\n1 3\n")
    env = {**DOMINANT, "success_pays": "everyone", "thresholds": [2], "scope": "neighbourhood"}
    cfg = config(4, {"kind": "file", "path": str(path)}, {"name": "fixed", "p_violate": 0.01})
    cfg["env"] = {**cfg["env"], **env}
    cfg["deviants"] = {"count": 1, "where": "lowest_degree", "always": False}
    model = build(cfg, tmp_path)
    prompts = [turn.prompt for turn in model.env.begin_round(0)]
    assert (
        "If at least 1 of the 2 players of your neighbourhood (you and your 1 neighbours)"
        in (prompts[0])
    )
    assert (
        "If at least 2 of the 4 players of your neighbourhood (you and your 3 neighbours)"
        in (prompts[1])
    )
    d = play(model, 1)
    assert d["violated"].to_list() == [True, False, False, False]
    assert d["reward"].to_list() == [2.0, 1.0, 1.0, 1.0]
    assert model.population[0].memory[0].feedback == (
        '1 of 2 in your neighbourhood chose "join the price ring" (needed 1): the collective '
        "option succeeded. Your reward: +2. Your capital: 3."
    )
    assert (
        model.population[1]
        .memory[0]
        .feedback.startswith(
            '1 of 4 in your neighbourhood chose "join the price ring" (needed 2): the collective '
            "option failed."
        )
    )


def test_exposure_columns_by_hand(tmp_path):
    """Star 0-{1,2,3} plus 3-4 under imitate-the-best, deviant at the hub (dominant payoff).

    Round 0: agent 0 violates (reward 2), the others comply (reward 1). Round 1 rows record
    round 0: agent 0 sees 3 compliers; leaf 1 sees one violator; agent 3 sees 0 and 4.
    """
    path = tmp_path / "star.edgelist"
    path.write_text("0 1\n0 2\n0 3\n3 4\n")
    cfg = config(5, {"kind": "file", "path": str(path)}, {"name": "imitate_best", "p0": 0.0})
    cfg["env"] = {**cfg["env"], **DOMINANT, "group_size": 5}
    cfg["deviants"] = {"count": 1, "where": "highest_degree", "always": False}
    d = play(build(cfg, tmp_path), 2)
    cols = [
        "n_neighbors",
        "n_violating_neighbors",
        "share_violating_neighbors",
        "mean_payoff_violating_neighbors",
        "mean_payoff_complying_neighbors",
    ]
    round0 = d.filter(pl.col("round") == 0).select(cols)
    assert round0["n_neighbors"].to_list() == [3, 1, 1, 2, 1]
    assert round0.drop("n_neighbors").null_count().row(0) == (5, 5, 5, 5)  # nothing seen yet
    assert d.filter(pl.col("round") == 1).select(cols).rows() == [
        (3, 0, 0.0, None, 1.0),
        (1, 1, 1.0, 2.0, None),
        (1, 1, 1.0, 2.0, None),
        (2, 1, 0.5, 2.0, 1.0),
        (1, 0, 0.0, None, 1.0),
    ]
