"""Reports that compare conditions: cluster-bootstrap units, facets, the `by` option and
the rules that keep a metric off the page where it means nothing."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import polars as pl
import pytest
from analysis_fixtures import decisions_frame, synthetic_decisions, write_run

from analysis.diffusion import exposure_response
from analysis.rates import violation_rate_by_round
from analysis.report import UnknownColumnError, write_report
from analysis.units import interaction_unit
from tests.helpers import ROOT, sim_run


def coupled_games(seed: int, n_games: int = 30, size: int = 8) -> pl.DataFrame:
    """Threshold-like records: all players of a game make the same choice (fully coupled)."""
    rng = np.random.default_rng(seed)
    game_violates = rng.random(n_games) < 0.4
    agent = np.arange(n_games * size)
    return decisions_frame(
        {
            "round": np.zeros(agent.size, dtype=int),
            "agent": agent,
            "group": agent // size,
            "violated": game_violates[agent // size],
        }
    )


@pytest.mark.parametrize("seed", range(5))
def test_games_bootstrap_is_about_sqrt_size_wider_than_agents(seed):
    # Var over games of perfectly coupled players: p(1-p)/G, over agents p(1-p)/(G m):
    # the width ratio is sqrt(m) = sqrt(8) ~ 2.83.
    d = coupled_games(seed)
    widths = {
        unit: violation_rate_by_round(d, unit=unit, n_boot=2000, seed=seed)
        .select(pl.col("ci_high") - pl.col("ci_low"))
        .item()
        for unit in ("agent", "group")
    }
    assert 2.0 < widths["group"] / widths["agent"] < 3.7


@pytest.mark.parametrize(
    ("config", "unit"),
    [
        ({"env": {"kind": "roleplay"}, "graph": {"scope": "within_groups"}}, "agent"),
        ({"env": {"kind": "threshold"}, "graph": {"scope": "within_groups"}}, "group"),
        ({"env": {"kind": "threshold", "scope": "neighbourhood"}}, "run"),
        ({"env": {"kind": "roleplay"}, "graph": {"scope": "population"}}, "run"),
        (
            {
                "env": {"kind": "roleplay"},
                "graph": {"scope": "population"},
                "agents": {"peer_view": "none"},
            },
            "agent",
        ),
    ],
)
def test_interaction_unit(config, unit):
    assert interaction_unit(config) == unit


def test_exposure_by_share_in_bins():
    d = decisions_frame(
        {
            "round": [0, 0, 0, 1, 1, 1],
            "agent": [0, 1, 2, 0, 1, 2],
            "violated": [False, False, False, True, False, True],
            "share_violating_neighbors": [None, None, None, 0.5, 0.1, 1.0],
        }
    )
    out = exposure_response(d, exposure="share_violating_neighbors", bins=5)
    # 0.1 -> [0, 0.2), 0.5 -> [0.4, 0.6), 1.0 -> the last bin [0.8, 1]
    assert out.select("exposure", "n_at_risk", "n_switched").rows() == [
        (0.0, 1, 0),
        (0.4, 1, 1),
        (0.8, 1, 1),
    ]


def threshold_run(tmp_path, n_games=4, rounds=3, by=("threshold",)):
    frames = []
    for g in range(n_games):
        d = synthetic_decisions(n_agents=6, n_rounds=rounds, tip_round=None, seed=g)
        frames.append(
            d.with_columns(
                agent=pl.col("agent") + 6 * g,
                group=pl.lit(g, pl.Int32),
                threshold=pl.lit(2 if g % 2 else 6, pl.Int32),
            )
        )
    config = {"env": {"kind": "threshold"}, "report": {"by": list(by)}}
    return write_run(tmp_path / "run", pl.concat(frames), config=config)


def test_run_report_facets_by_the_presets_conditions(tmp_path):
    out = write_report(threshold_run(tmp_path))
    summary = (out / "summary.md").read_text()
    assert "final violation rate, threshold=2" in summary
    assert "final violation rate, threshold=6" in summary
    assert "interval unit**: games" in summary
    rates = pl.read_csv(out / "tables" / "by_condition.csv")
    assert set(rates["threshold"]) == {2, 6} and (rates["n_units"] == 2).all()
    # two games per threshold: the interval is flagged
    assert "only 2 independent games" in summary
    assert (out / "by_condition.svg").is_file()


def test_unknown_by_column_is_one_error_line(tmp_path):
    run = threshold_run(tmp_path)
    with pytest.raises(UnknownColumnError, match="no column 'thresold'"):
        write_report(run, by=["thresold"])
    done = subprocess.run(
        [sys.executable, "-m", "analysis.report", str(run), "by=thresold"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert done.returncode == 2
    assert done.stderr.startswith("error: by: no column 'thresold'")
    assert len(done.stderr.strip().splitlines()) == 1


def test_metrics_left_off_where_undefined(tmp_path):
    # role-play agents alone, 4 rounds: no diffusion metric, no early-warning panel
    d = synthetic_decisions(n_agents=8, n_rounds=4, ring=False).with_columns(
        paradigm=pl.lit("roleplay")
    )
    out = write_report(write_run(tmp_path / "run", d, config={"env": {"kind": "roleplay"}}))
    summary = (out / "summary.md").read_text()
    assert "**cascade size" not in summary and "**reproduction number" not in summary
    assert "never see each other's choices" in summary
    assert "Early-warning signals need at least 10 rounds" in summary
    assert not (out / "exposure_response.png").exists()
    assert not (out / "early_warning.png").exists()


def test_preset_report_by_is_checked_before_the_run(tmp_path):
    done = sim_run("report.by=[thresold]", f"hydra.run.dir={tmp_path / 'run'}")
    assert done.returncode == 2
    assert done.stderr.startswith("error: report.by: ['thresold']; expected a list of decision")
    assert not (tmp_path / "run").exists()


def test_sweep_report_scales_past_three_parameters(tmp_path):
    sweep = tmp_path / "sweep"
    i = 0
    for a in (1, 2):
        for b in (1, 2):
            for c in (1, 2):
                d = synthetic_decisions(n_agents=2, n_rounds=4, tip_round=None, p_start=0.0, seed=i,
                                        run_id=f"r{i}")  # fmt: skip
                if i == 0:  # one configuration pools both paradigms in its curve
                    role = pl.when(pl.col("agent") == 0).then(pl.lit("roleplay"))
                    d = d.with_columns(paradigm=role.otherwise(pl.col("paradigm")))
                write_run(sweep / str(i), d, {"a": a, "b": b, "c": c})
                i += 1
    out = write_report(sweep)
    summary = (out / "summary.md").read_text()
    # 8 configurations: small multiples; one phase diagram over (a, b) per value of c
    assert "one panel per configuration" in summary
    assert {p.name for p in out.glob("phase_diagram_*.png")} == {
        "phase_diagram_0.png",
        "phase_diagram_1.png",
    }
    phase = pl.read_csv(out / "tables" / "phase_diagram.csv")
    assert (phase["n_runs"] == 1).all() and phase.height == 8
    assert "mixes paradigms (roleplay, threshold) within a curve" in summary
    assert "Time to tip: no run reached" in summary and not (out / "survival.png").exists()
    assert "only 2 independent agents" in summary  # one run of 2 agents per configuration


def test_population_graph_resamples_its_connected_components(tmp_path):
    # 6 role-play agents seeing each other on a population graph with components
    # {0, 1, 2}, {3, 4} and {5}: three independent units, not one run
    d = synthetic_decisions(n_agents=6, n_rounds=3, ring=False).with_columns(
        paradigm=pl.lit("roleplay")
    )
    config = {"env": {"kind": "roleplay"}, "graph": {"scope": "population"}}
    run = write_run(tmp_path / "run", d, config=config)
    edges = {"source": [0, 1, 3], "target": [1, 2, 4]}
    pl.DataFrame(edges, schema={"source": pl.Int32, "target": pl.Int32}).write_parquet(
        run / "graph.parquet"
    )
    out = write_report(run)
    assert "interval unit**: connected groups" in (out / "summary.md").read_text()
    assert set(pl.read_csv(out / "tables" / "per_round.csv")["n_units"]) == {3}
    (run / "graph.parquet").unlink()  # recorded before graphs were: the run is the unit
    assert set(pl.read_csv(write_report(run) / "tables" / "per_round.csv")["n_units"]) == {1}
