"""The `tiplab` command: each subcommand is the module's entry point, same arguments."""

import subprocess
import sys
from pathlib import Path

import polars as pl
from polars.testing import assert_frame_equal

from tests.helpers import ROOT, sim_run

TIPLAB = Path(sys.executable).with_name("tiplab")  # installed by pip next to the interpreter
ARGS = ["backend=fixed", "backend.p_violate=0.3", "run.rounds=2", "run.progress=false"]


def tiplab(*args) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(TIPLAB), *args], cwd=ROOT, capture_output=True, text=True, timeout=300
    )


def test_tiplab_lists_its_commands_and_refuses_an_unknown_one():
    out = tiplab()
    assert out.returncode == 0
    assert all(f"  {name} " in out.stdout for name in ("run", "report", "align", "view"))
    bad = tiplab("play")
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == [
        "error: tiplab: unknown command 'play'; expected one of run, report, align, view"
    ]


def test_tiplab_run_and_report_are_the_modules_with_the_same_arguments(tmp_path):
    ours, theirs = tmp_path / "tiplab", tmp_path / "module"
    out = tiplab("run", *ARGS, "run.report=false", f"hydra.run.dir={ours}")
    assert out.returncode == 0, out.stderr
    assert f"records: {ours}" in out.stdout
    assert sim_run(*ARGS, "run.report=false", f"hydra.run.dir={theirs}").returncode == 0
    columns = pl.exclude("run_id", "latency_s")
    assert_frame_equal(
        pl.read_parquet(ours / "decisions.parquet").select(columns),
        pl.read_parquet(theirs / "decisions.parquet").select(columns),
    )

    report = tiplab("report", str(ours))
    assert report.returncode == 0, report.stderr
    assert (ours / "report" / "index.html").is_file()

    bad = tiplab("run", "env.schedule=sometimes", f"hydra.run.dir={tmp_path / 'bad'}")
    assert bad.returncode == 2
    assert bad.stderr.startswith("error: ") and len(bad.stderr.strip().splitlines()) == 1


def test_tiplab_align_composes_the_config_python_m_sim_align_does():
    ours = tiplab("align", "--cfg", "job")
    theirs = subprocess.run(
        [sys.executable, "-m", "sim.align", "--cfg", "job"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert ours.returncode == theirs.returncode == 0, ours.stderr
    assert ours.stdout == theirs.stdout and "method:" in ours.stdout
