"""Sweeps: Hydra multirun in parallel (joblib) and through submitit, rerun without work."""

import contextlib
import glob
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl

from tests.helpers import ROOT, sim_run

ARGS = [
    "experiment=atp_ma",
    "backend=reward_following",
    "run.progress=false",
    "run.report=false",
    "env.games=[price_ring,bid_rigging]",
]


def runs(sweep: Path) -> dict[str, dict]:
    return {m.parent.name: json.loads(m.read_text()) for m in sweep.glob("*/manifest.json")}


def mtimes(sweep: Path) -> dict[Path, int]:
    return {p: p.stat().st_mtime_ns for p in sweep.glob("*/decisions.parquet/*.parquet")}


def test_joblib_multirun_writes_one_run_per_job_and_reruns_do_nothing(tmp_path):
    sweep = tmp_path / "sweep"
    out = sim_run(
        "-m",
        "hydra/launcher=laptop",
        *ARGS,
        "seed=0,1",
        "env.thresholds=[2],[6]",
        f"hydra.sweep.dir={sweep}",
    )
    assert out.returncode == 0, out.stderr
    found = runs(sweep)
    assert sorted(found) == ["0", "1", "2", "3"]
    assert {
        (m["overrides"]["seed"], m["overrides"]["env.thresholds"][0]) for m in found.values()
    } == {(0, 2), (0, 6), (1, 2), (1, 6)}
    assert all(m["status"] == "complete" for m in found.values())
    frames = [pl.read_parquet(sweep / name / "decisions.parquet") for name in found]
    assert len({f["run_id"][0] for f in frames}) == 4

    summary = pl.read_parquet(sweep / "summary.parquet").sort("run_dir")
    assert summary["run_dir"].to_list() == ["0", "1", "2", "3"]
    assert {"env.thresholds", "seed", "final_violation_rate", "tipping_round"} <= set(
        summary.columns
    )
    first = pl.read_parquet(sweep / "0" / "decisions.parquet")
    last = first.filter(pl.col("round") == 2)["violated"].mean()
    assert summary["final_violation_rate"][0] == last
    assert f"sweep: {sweep} (4 runs)" in out.stdout
    # the console: one progress line naming each run as it finishes, no table per run
    assert "round ┆" not in out.stdout and "records:" not in out.stdout
    assert "4/4" in out.stderr and "#3 seed=1 env.thresholds=[6] complete" in out.stderr
    assert "Launching jobs" not in out.stdout + out.stderr

    before, multirun = mtimes(sweep), (sweep / "multirun.yaml").read_bytes()
    again = sim_run(f"resume={sweep}")
    assert again.returncode == 0, again.stderr
    assert again.stderr.count("already complete") == 4
    assert mtimes(sweep) == before
    assert (sweep / "multirun.yaml").read_bytes() == multirun  # not rewritten by the resume
    assert "JoblibLauncher" in (sweep / "0" / ".hydra" / "hydra.yaml").read_text()  # kept


def test_submitit_local_runs_a_two_job_sweep(tmp_path):
    sweep = tmp_path / "sweep"
    out = sim_run(
        "-m", "hydra/launcher=submitit_local", *ARGS, "seed=0,1", f"hydra.sweep.dir={sweep}"
    )
    assert out.returncode == 0, out.stderr
    found = runs(sweep)
    assert sorted(found) == ["0", "1"]
    assert all(m["status"] == "complete" and m["rounds_completed"] == 3 for m in found.values())


def playing_laptop_sweep(
    sweep: Path | None, stderr=subprocess.DEVNULL, cwd: Path = ROOT
) -> subprocess.Popen:
    """A two-run laptop sweep of long runs in its own session (in `sweep`, else in Hydra's
    default directory under cwd), returned once both runs have recorded three rounds."""
    named = [f"hydra.sweep.dir={sweep}"] if sweep else []
    proc = subprocess.Popen(
        [sys.executable, "-m", "sim.run", "-m", "hydra/launcher=laptop", "backend=fixed"]
        + ["run.progress=false", "run.report=false", "run.rounds=100000", "seed=0,1", *named],
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.DEVNULL,
        stderr=stderr,
        text=True,
        start_new_session=True,
    )
    parts = f"{sweep}/*" if sweep else f"{cwd}/outputs/sweeps/*/*"
    deadline = time.time() + 300
    while time.time() < deadline and len(glob.glob(f"{parts}/decisions.parquet/part-00002*")) < 2:
        time.sleep(0.05)
    return proc


def settled_statuses(sweep, within_s: float = 60) -> set[str]:
    """The runs' statuses once none is "running" any more (or after within_s): the workers
    of a killed sweep notice their parent is gone within a second and mark their runs."""
    deadline = time.time() + within_s
    statuses = {m["status"] for m in runs(sweep).values()}
    while "running" in statuses and time.time() < deadline:
        time.sleep(0.2)
        statuses = {m["status"] for m in runs(sweep).values()}
    return statuses


def test_ctrl_c_interrupts_a_laptop_sweep_with_one_resume_line(tmp_path):
    """SIGINT to the terminal's process group (the parent and its joblib workers)."""
    sweep = tmp_path / "sweep"
    proc = playing_laptop_sweep(sweep, stderr=subprocess.PIPE)
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, err[-3000:]
    # one line from the sweep's parent (joblib's workers and resource tracker may add noise)
    assert err.count(f"interrupted: continue with  python -m sim.run resume={sweep}") == 1, err
    assert {m["status"] for m in runs(sweep).values()} == {"interrupted"}  # when the parent ends


def test_ctrl_c_names_a_sweep_in_hydras_default_directory(tmp_path):
    """Without hydra.sweep.dir the sweep's directory is named from the time as it starts:
    the resume line names it, and its runs are marked interrupted."""
    proc = playing_laptop_sweep(None, stderr=subprocess.PIPE, cwd=tmp_path)
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=300)
    (sweep,) = (tmp_path / "outputs" / "sweeps").iterdir()
    assert (
        f"interrupted: continue with  python -m sim.run resume={sweep.relative_to(tmp_path)}" in err
    )
    assert {m["status"] for m in runs(sweep).values()} == {"interrupted"}


def test_a_killed_laptop_sweep_leaves_no_orphan_workers(tmp_path):
    """SIGKILL to the sweep's parent alone: its workers stop within seconds, interrupted."""
    sweep = tmp_path / "sweep"
    proc = playing_laptop_sweep(sweep)
    try:
        proc.kill()
        proc.wait()
        assert settled_statuses(sweep) == {"interrupted"}
        parts = len(list(sweep.glob("*/decisions.parquet/*")))
        time.sleep(3)
        assert len(list(sweep.glob("*/decisions.parquet/*"))) == parts  # nobody writes on
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
