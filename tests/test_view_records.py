"""What the live view reads and draws, without a browser: a recorded run's graph, its
sample above MAX_DRAWN agents, and the panels' figures."""

import networkx as nx
import polars as pl

from analysis.view import records
from analysis.view.figures import (
    MAX_DRAWN,
    drawn_agents,
    guard_figure,
    layout,
    p_violate_figure,
    population_figure,
)
from tests.helpers import sim_run


def test_a_run_records_its_graph_and_the_view_reads_its_rounds(tmp_path):
    out = sim_run(
        "experiment=cascade", "env.group_size=300", "env.thresholds=[150]", "run.rounds=3",
        "run.report=false", "run.progress=false", f"hydra.run.dir={tmp_path}",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    edges = records.graph(tmp_path)
    degree = pl.concat([edges["source"], edges["target"]]).value_counts()
    decisions = pl.read_parquet(tmp_path / "decisions.parquet").filter(pl.col("round") == 0)
    recorded = dict(decisions.select("agent", "n_neighbors").iter_rows())
    assert all(recorded[a] == n for a, n in degree.iter_rows())  # who sees whom, as played
    assert (edges["source"] < edges["target"]).all()
    last = records.last_round(tmp_path)
    assert last.height == 300 and set(last["round"]) == {2}
    assert records.runs(tmp_path).row(0, named=True)["rounds_completed"] == 3
    assert records.violation_curves(tmp_path, None)["round"].to_list() == [0, 1, 2]
    assert records.runs(tmp_path / "nothing-yet").is_empty()


def test_above_the_limit_the_graph_drawn_is_a_connected_sample():
    g = nx.connected_watts_strogatz_graph(5000, 4, 0.1, seed=1)
    edges = pl.DataFrame(
        sorted(tuple(sorted(e)) for e in g.edges()), schema=["source", "target"], orient="row"
    )
    agents = drawn_agents(edges, 5000, limit=800)
    assert len(agents) == 800 == len(set(agents.tolist()))
    assert nx.is_connected(g.subgraph(agents.tolist()))
    assert drawn_agents(edges, 500, limit=800).tolist() == list(range(500))
    last = pl.DataFrame(
        {
            "agent": pl.Series(range(5000), dtype=pl.Int32),
            "round": pl.Series([3] * 5000, dtype=pl.Int32),
            "violated": [i % 3 == 0 for i in range(5000)],
            "p_violate": [i / 5000 for i in range(5000)],
        }
    )
    figure = population_figure(layout("test", edges, 5000), last, 5000, "p_violate")
    assert f"{MAX_DRAWN:,} of 5,000 agents" in figure.axes[0].get_title()
    assert p_violate_figure(last.select("round", "p_violate")).axes[0].patches


def test_a_guarded_run_shows_proposed_against_executed_violations(tmp_path):
    guarded, plain = tmp_path / "guarded", tmp_path / "plain"
    for run, guard in ((guarded, "calibrated"), (plain, "none")):
        out = sim_run(
            "backend=reward_following", f"guard={guard}", "run.rounds=3", "run.report=false",
            "run.progress=false", f"hydra.run.dir={run}",
        )  # fmt: skip
        assert out.returncode == 0, out.stderr
    rates = records.guard_rates(guarded)
    decisions = pl.read_parquet(guarded / "decisions.parquet")
    by_round = decisions.group_by("round").agg(pl.col("proposed_violated", "violated").mean())
    expected = by_round.sort("round").rename({"proposed_violated": "proposed"})
    assert rates.select("round", "proposed", "executed").rows() == expected.rows()
    assert len(guard_figure(rates).axes[0].lines) == 3
    assert records.guard_rates(plain).is_empty()
