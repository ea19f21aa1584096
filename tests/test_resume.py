"""Resume: a run killed at any round and resumed records exactly what an uninterrupted run does."""

import json
import signal
import time
from pathlib import Path

import polars as pl
import pytest

from sim import checkpoint
from tests.helpers import kill_after, sim_run, sim_start

# reward-following with imitation: decisions depend on memory, peers, capital and RNG state
ARGS = [
    "experiment=atp_ma",
    "backend=reward_following",
    "run.progress=false",
    "run.report=false",
    "run.rounds=12",
    "seed=3",
]


def decisions(run_dir: Path) -> pl.DataFrame:
    return (
        pl.read_parquet(run_dir / "decisions.parquet")
        .drop("run_id", "latency_s")
        .sort("round", "agent")
    )


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("full")
    out = sim_run(*ARGS, f"hydra.run.dir={run_dir}")
    assert out.returncode == 0, out.stderr
    return decisions(run_dir)


@pytest.mark.parametrize("kill_at", [1, 5, 10])
def test_killed_and_resumed_run_equals_uninterrupted(tmp_path, uninterrupted, kill_at):
    kill_after(sim_start(*ARGS, f"hydra.run.dir={tmp_path}"), tmp_path, kill_at)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["status"] == "running"
    saved = tmp_path / checkpoint.FILE
    start = json.loads(saved.read_text())["state"]["round"] if saved.exists() else 0
    kept = [tmp_path / "decisions.parquet" / f"part-{t:05d}.parquet" for t in range(start)]
    written = [p.stat().st_mtime_ns for p in kept]
    out = sim_run(f"resume={tmp_path}", "run.progress=false")
    assert out.returncode == 0, out.stderr
    resumed = decisions(tmp_path)
    assert resumed.height == uninterrupted.height  # no lost or duplicated rows
    assert resumed.equals(uninterrupted)
    assert [p.stat().st_mtime_ns for p in kept] == written  # continued, not started again
    assert json.loads((tmp_path / "manifest.json").read_text())["status"] == "complete"
    rounds = pl.read_parquet(tmp_path / "rounds.parquet")
    assert rounds["round"].to_list() == list(range(12))


def test_a_kill_inside_checkpoint_writing_resumes_identically(tmp_path, uninterrupted):
    """checkpoint.save writes a temporary file and renames it over the checkpoint; a kill
    inside it leaves the previous checkpoint and a partial temporary file, made here."""
    kill_after(sim_start(*ARGS, f"hydra.run.dir={tmp_path}"), tmp_path, 5)
    saved = tmp_path / checkpoint.FILE
    partial = saved.read_bytes()[: saved.stat().st_size // 2]
    saved.with_name(f".{saved.name}.tmp").write_bytes(partial)
    out = sim_run(f"resume={tmp_path}", "run.progress=false")
    assert out.returncode == 0, out.stderr
    assert decisions(tmp_path).equals(uninterrupted)
    assert json.loads(saved.read_text())["state"]["round"] == 12


def test_a_kill_inside_report_writing_is_mended_on_resume(tmp_path, uninterrupted):
    """The report is written after the run completes; a kill while it is written leaves a
    complete run whose report resume writes again."""
    proc = sim_start(*ARGS, "run.report=true", f"hydra.run.dir={tmp_path}")
    deadline = time.time() + 300
    while not (tmp_path / "report").is_dir():
        assert proc.poll() is None and time.time() < deadline, "the run ended before its report"
        time.sleep(0.002)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (tmp_path / "report" / "index.html").exists()  # killed inside the report
    assert json.loads((tmp_path / "manifest.json").read_text())["status"] == "complete"
    out = sim_run(f"resume={tmp_path}", "run.progress=false")
    assert out.returncode == 0 and "already complete" in out.stderr, out.stderr
    assert decisions(tmp_path).equals(uninterrupted)
    assert "<html" in (tmp_path / "report" / "index.html").read_text()


def test_finished_run_is_not_run_again(tmp_path):
    assert sim_run(*ARGS, f"hydra.run.dir={tmp_path}").returncode == 0
    before = {p: p.stat().st_mtime_ns for p in (tmp_path / "decisions.parquet").iterdir()}
    out = sim_run(f"resume={tmp_path}")
    assert out.returncode == 0 and "already complete" in out.stderr
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "decisions.parquet").iterdir()} == before


def test_a_different_config_in_the_same_directory_is_refused(tmp_path):
    assert sim_run(*ARGS, f"hydra.run.dir={tmp_path}").returncode == 0
    out = sim_run(*ARGS, "seed=4", f"hydra.run.dir={tmp_path}")
    assert out.returncode == 2 and "different config" in out.stderr


def test_resume_of_a_path_without_a_run_is_one_line(tmp_path):
    out = sim_run(f"resume={tmp_path}")
    assert out.returncode == 2
    assert (
        out.stderr.strip() == f"error: resume: {tmp_path} holds no run "
        "(.hydra/overrides.yaml) or sweep (multirun.yaml)"
    )


def test_rounds_recorded_after_the_last_checkpoint_are_dropped(tmp_path):
    parts = tmp_path / "decisions.parquet"
    parts.mkdir()
    for t in range(5):
        pl.DataFrame({"round": [t, t], "agent": [0, 1]}).write_parquet(
            parts / f"part-{t:05d}.parquet"
        )
    pl.DataFrame({"round": list(range(5))}).write_parquet(tmp_path / "rounds.parquet")
    checkpoint.rewind_records(tmp_path, 3)
    assert sorted(p.name for p in parts.iterdir()) == [f"part-{t:05d}.parquet" for t in range(3)]
    assert pl.read_parquet(tmp_path / "rounds.parquet")["round"].to_list() == [0, 1, 2]
