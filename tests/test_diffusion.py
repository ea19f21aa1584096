"""Imitative diffusion on graphs: classical results reproduced with the scripted rules.

Watts (2002): with a uniform threshold 0.18 and one random seed on an Erdos-Renyi
graph, global cascades happen inside a window of mean degrees (about 1 < z < 7) and
almost never outside it. Imitate-the-best with a strictly dominant violating payoff
spreads one hop per round, so each agent first violates at its distance from the seed.
"""

from __future__ import annotations

import math
from pathlib import Path

import networkx as nx
import numpy as np
import polars as pl
import pytest

from agents.backends import make_backend
from agents.decision import DecisionRequest, Experience, PeerAction
from envs.base import Choices
from envs.errors import InputError
from tests.helpers import DOMINANT, build, conf_yaml, config, play, sim_run

CHOICES = Choices(comply="C", violate="V")
LT = {
    "name": "linear_threshold",
    "threshold": 0.18,
    "distribution": "constant",
    "spread": 0.0,
    "progressive": True,
    "p0": 0.0,
}


def final_share(cfg: dict, run_dir: Path, seed: int) -> float:
    d = play(build(cfg, run_dir, seed), 100, until_stable=True)
    return d.filter(pl.col("round") == d["round"].max())["violated"].mean()


@pytest.mark.parametrize(("z", "low", "high"), [(1.0, 0, 1), (4.0, 12, 20), (15.0, 0, 1)])
def test_watts_cascade_window(tmp_path, z, low, high):
    """Global cascades (> half the agents) from one seed: frequent at z=4, rare at z=1, 15."""
    cfg = config(1000, {"kind": "erdos_renyi", "mean_degree": z, "connected": False}, LT)
    shares = [final_share(cfg, tmp_path / str(seed), seed) for seed in range(20)]
    cascades = sum(s > 0.5 for s in shares)
    assert low <= cascades <= high, (z, shares)


@pytest.mark.parametrize(
    "graph",
    [
        {"kind": "small_world", "k": 4, "p": 0.1, "connected": True},
        {"kind": "scale_free", "m": 2, "connected": True},
        {"kind": "ring", "k": 2, "connected": True},
    ],
)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_imitate_best_spreads_one_hop_per_round(tmp_path, graph, seed):
    cfg = config(150, graph, {"name": "imitate_best", "p0": 0.0}, **DOMINANT)
    model = build(cfg, tmp_path, seed)
    g = nx.Graph(model.space.G)
    (deviant,) = np.flatnonzero(model.deviants)
    d = play(model, nx.diameter(g) + 1)
    first = d.filter(pl.col("violated")).group_by("agent").agg(pl.col("round").min())
    distance = nx.single_source_shortest_path_length(g, int(deviant))
    assert dict(first.iter_rows()) == distance  # every agent, at its distance
    assert max(distance.values()) <= nx.diameter(g)


@pytest.mark.parametrize(("rewards", "outcome"), [((2.0, 1.0, 0.0), 1.0), ((1.0, 2.0, 0.0), 0.0)])
def test_fermi_takes_over_when_violating_pays_and_dies_out_when_it_does_not(
    tmp_path, rewards, outcome
):
    high, normal, low = rewards
    env = {**DOMINANT, "rewards": [{"high": high, "normal": normal, "low": low}]}
    graph = {"kind": "small_world", "k": 4, "p": 0.1, "connected": True}
    cfg = config(200, graph, {"name": "fermi", "beta": 20.0, "p0": 0.5}, **env)
    d = play(build(cfg, tmp_path), 40)
    assert d.filter(pl.col("round") == 39)["violated"].mean() == outcome


def request(history=(), peers=(), agent=0) -> DecisionRequest:
    return DecisionRequest(agent, None, [], CHOICES, tuple(history), tuple(peers))


def own(violated: bool, reward: float) -> Experience:
    return Experience(0, "q", "a", "V" if violated else "C", violated, reward, "f")


def rule_backend(name: str, rng=None, **values):
    """The scripted rule conf/backend/NAME.yaml describes, with these values over its own."""
    cfg = {**conf_yaml(f"backend/{name}"), **values}
    return make_backend(cfg, rng if rng is not None else np.random.default_rng(0))


def peer(agent: int, violated: bool | None, reward: float) -> PeerAction:
    label = {True: "V", False: "C", None: None}[violated]
    return PeerAction(agent, label, violated, reward, "")


def test_fermi_probability_by_hand():
    rng = np.random.default_rng(0)
    rule = rule_backend("fermi", rng, beta=2.0, p0=0.25)
    assert rule.p_violate([request()])[0] == 0.25  # no round behind it: p0
    r = request([own(False, 1.0)], [peer(1, True, 2.0), peer(2, False, 0.0), peer(3, None, 9)])
    copy_1 = 1 / (1 + math.exp(-2.0 * (2.0 - 1.0)))
    # neighbour 1 (violating) copied w.p. copy_1; neighbour 2 complies like the agent
    assert rule.p_violate([r])[0] == pytest.approx(copy_1 / 2)
    assert rule.p_violate([request([own(True, 1.0)])])[0] == 1.0  # alone: keeps its choice


def test_imitate_best_by_hand():
    rule = rule_backend("imitate_best", np.random.default_rng(0))
    better = [peer(1, True, 3.0), peer(2, False, 3.0), peer(3, True, 1.0)]
    assert rule.p_violate([request([own(False, 2.0)], better)])[0] == 0.5  # tie: coin
    assert rule.p_violate([request([own(False, 3.0)], better)])[0] == 0.0  # among the best
    assert rule.p_violate([request([own(True, 0.0)], [peer(1, False, 0.5)])])[0] == 0.0


def test_linear_threshold_by_hand_and_per_agent_thresholds():
    rule = rule_backend("linear_threshold", threshold=0.5, progressive=False)
    half = [peer(1, True, 0.0), peer(2, False, 0.0)]
    assert rule.p_violate([request([own(False, 0)], half)])[0] == 1.0  # 1/2 >= 0.5
    assert rule.p_violate([request([own(True, 0)], half[1:])])[0] == 0.0  # not progressive
    sticky = rule_backend("linear_threshold", threshold=0.5, progressive=True)
    assert sticky.p_violate([request([own(True, 0)], half[1:])])[0] == 1.0
    spread = rule_backend("linear_threshold", threshold=0.3, distribution="uniform", spread=0.1)
    spread.p_violate([request(agent=999)])
    assert len(spread.phi) == 1000 and 0.2 <= spread.phi.min() < spread.phi.max() <= 0.4
    phi = spread.phi.copy()
    spread.p_violate([request(agent=5)])
    assert np.array_equal(spread.phi, phi)  # drawn once per agent


@pytest.mark.parametrize(
    ("cfg", "field"),
    [
        ({**conf_yaml("backend/fermi"), "beta": -1}, "backend.beta"),
        ({**conf_yaml("backend/imitate_best"), "p0": 1.5}, "backend.p0"),
        ({**LT, "distribution": "pareto"}, "backend.distribution"),
        ({**LT, "threshold": 2}, "backend.threshold"),
    ],
)
def test_rule_settings_fail_with_the_field(cfg, field):
    with pytest.raises(InputError, match=field):
        make_backend(cfg, np.random.default_rng(0))


def test_imitation_rules_need_a_memory(tmp_path):
    cfg = config(10, {"kind": "ring", "k": 2}, LT)
    with pytest.raises(InputError, match="agents.memory_window"):
        build(cfg, tmp_path, memory_window=0)


def test_planted_deviants_violate_in_round_0_or_always(tmp_path):
    backend = {"name": "fixed", "p_violate": 0.01}
    cfg = config(50, {"kind": "ring", "k": 2}, backend)
    cfg["deviants"] = {"count": 3, "where": "random", "always": False}
    d = play(build(cfg, tmp_path / "once", seed=3), 3)
    planted = d.filter(pl.col("p_violate") == 1.0)
    assert planted["round"].to_list() == [0, 0, 0] and planted["violated"].all()
    cfg["deviants"]["always"] = True
    d = play(build(cfg, tmp_path / "always", seed=3), 3)
    always = d.filter(pl.col("p_violate") == 1.0)
    assert always["agent"].to_list() == planted["agent"].to_list() * 3


def test_same_seed_same_records(tmp_path):
    graph = {"kind": "erdos_renyi", "mean_degree": 4.0}
    cfg = config(300, graph, {"name": "fermi", "beta": 5.0, "p0": 0.2})
    a, b, c = (
        play(build(cfg, tmp_path / name, seed), 5).drop("run_id", "latency_s")
        for name, seed in (("a", 4), ("b", 4), ("c", 5))
    )
    assert a.equals(b)
    assert not a.equals(c)


def test_cli_runs_a_graph_experiment_and_records_exposure(tmp_path):
    out = sim_run(
        "experiment=atp_ma",
        "graph=small_world",
        "backend=fermi",
        "backend.p0=0.3",
        "deviants.count=4",
        "deviants.where=highest_degree",
        "run.progress=false",
        "run.report=false",
        f"hydra.run.dir={tmp_path}",
    )
    assert out.returncode == 0, out.stderr
    d = pl.read_parquet(tmp_path / "decisions.parquet")
    assert d["n_neighbors"].mean() == 4  # small world, k=4 before rewiring, inside each game
    later = d.filter(pl.col("round") > 0)
    assert later["n_violating_neighbors"].null_count() == 0
    assert later["share_violating_neighbors"].is_between(0, 1).all()
    assert d.filter(pl.col("p_violate") == 1.0, pl.col("round") == 0).height >= 4


def test_cli_rejects_a_disconnected_graph_in_one_line(tmp_path):
    out = sim_run(
        "experiment=atp_ma",
        "graph=erdos_renyi",
        "graph.mean_degree=0.5",
        "graph.connected=true",
        f"hydra.run.dir={tmp_path}",
    )
    assert out.returncode == 2
    assert out.stderr.strip().startswith("error: graph.connected: the erdos_renyi graph")
    assert len(out.stderr.strip().splitlines()) == 1
