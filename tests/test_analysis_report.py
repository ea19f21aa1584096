"""The report: run and sweep pages, tiny runs, the command line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
from analysis_fixtures import decisions_frame, synthetic_decisions, write_run

from analysis.report import write_report
from analysis.report.cli import main

ROOT = Path(__file__).resolve().parent.parent


def make_sweep(root: Path) -> Path:
    i = 0
    for th, tip in [(2, 6), (4, 10), (6, None)]:
        for ev in ("none", "lora"):
            for s in (0, 1):
                d = synthetic_decisions(n_agents=6, n_rounds=14, tip_round=tip, seed=i,
                                        run_id=f"r{i}")  # fmt: skip
                write_run(root / str(i), d, {"env.threshold": th, "evolution": ev}, seed=s)
                i += 1
    return root


def test_run_report_has_page_summary_figures_and_tables(tmp_path):
    run = write_run(tmp_path / "run", synthetic_decisions(n_agents=10, n_rounds=20, seed=2))
    (run / "report").mkdir()
    (run / "report" / "stale.png").write_bytes(b"old figure")
    out = write_report(run)
    assert out == run / "report"
    assert not (out / "stale.png").exists()
    for name in ("index.html", "summary.md", "tipping_curves.png", "survival.png",
                 "early_warning.png", "exposure_response.png", "tables/per_round.csv"):  # fmt: skip
        assert (out / name).is_file(), name
    page = (out / "index.html").read_text()
    assert "<img src='tipping_curves.png'" in page
    assert "failed" not in page
    summary = (out / "summary.md").read_text()
    assert "tipping round (rate >= 0.5)" in summary
    per_round = pl.read_csv(out / "tables" / "per_round.csv")
    assert per_round.height == 20
    assert (out / "tipping_curves.png").read_bytes()[:4] == b"\x89PNG"


def test_sweep_report_has_phase_diagram_and_runs_table(tmp_path):
    sweep = make_sweep(tmp_path / "sweep")
    with _no_warnings():
        out = write_report(sweep)
    assert (out / "phase_diagram.png").is_file()
    runs = pl.read_csv(out / "tables" / "runs.csv")
    assert runs.height == 12
    assert {"env.threshold", "evolution", "tipping_round", "tau_variance"} <= set(runs.columns)
    # threshold 6 never tips: censored runs
    assert runs.filter(pl.col("env.threshold") == 6).get_column("tipping_round").null_count() == 4
    phase = pl.read_csv(out / "tables" / "phase_diagram.csv")
    assert phase.height == 6
    assert "failed" not in (out / "index.html").read_text()


@pytest.mark.parametrize(
    "rows",
    [
        {"round": [0], "agent": [0], "violated": [False]},  # 1 round, 1 agent, no p_violate
        {"round": [0, 1, 2], "agent": [0, 0, 0], "violated": [False, False, None]},
        {"round": [0, 0], "agent": [0, 1], "violated": [None, None]},  # all invalid
        {"round": [0, 1], "agent": [0, 0], "violated": [True, True], "p_violate": [0.9, 1.0]},
    ],
)
def test_tiny_runs_still_get_a_report(tmp_path, rows):
    run = write_run(tmp_path / "run", decisions_frame(rows))
    with _no_warnings():
        out = write_report(run)
    assert (out / "index.html").is_file()
    assert "failed" not in (out / "summary.md").read_text()


def test_run_without_decisions_gets_a_report(tmp_path):
    run = write_run(tmp_path / "run", decisions_frame({"round": [0], "agent": [0],
                                                       "violated": [True]}).clear(),
                    status="running")  # fmt: skip
    out = write_report(run)
    assert "No decisions recorded yet" in (out / "summary.md").read_text()


def test_cli_writes_report_and_rejects_bad_paths(tmp_path, capsys):
    run = write_run(tmp_path / "run", synthetic_decisions(n_agents=3, n_rounds=4))
    assert main([str(run)]) == 0
    assert capsys.readouterr().out.strip() == str(run / "report" / "index.html")
    assert main([str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "nowhere" in err and "Traceback" not in err
    (tmp_path / "empty").mkdir()
    assert main([str(tmp_path / "empty")]) == 2
    assert "empty" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (["--level", "2"], "--level: 2 is not a violation rate in (0, 1]"),
        (["--level", "0"], "--level: 0 is not a violation rate in (0, 1]"),
        (["--n-boot", "-1"], "--n-boot: -1 must be >= 0"),
    ],
)
def test_cli_rejects_settings_out_of_range(tmp_path, capsys, option, message):
    run = write_run(tmp_path / "run", synthetic_decisions(n_agents=2, n_rounds=2))
    with pytest.raises(SystemExit) as exit_:
        main([str(run), *option])
    assert exit_.value.code == 2 and message in capsys.readouterr().err
    assert not (run / "report").exists()


def test_module_entry_point_exit_code(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "analysis.report", str(tmp_path / "missing")],
        capture_output=True, text=True, cwd=ROOT,
    )  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("error:") and "missing" in proc.stderr
    assert "Traceback" not in proc.stderr


class _no_warnings:
    """Fail on any warning (a report section that failed warns)."""

    def __enter__(self):
        import warnings

        self._ctx = warnings.catch_warnings()
        self._ctx.__enter__()
        warnings.simplefilter("error")

    def __exit__(self, *exc):
        self._ctx.__exit__(*exc)
