"""A run directory defends itself: it deletes only what it made, a refused run changes
nothing, one writer at a time, records checked on resume, Ctrl-C is not a failure."""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest

from agents.evolution.lineage import Lineage
from sim import checkpoint, ledger
from tests.helpers import ROOT, sim_main

FAST = ["backend=fixed", "run.progress=false", "run.report=false"]


def tree(path: Path) -> dict[str, bytes]:
    """Every file under path with its bytes: what 'nothing changed on disk' compares."""
    return {str(p.relative_to(path)): p.read_bytes() for p in path.rglob("*") if p.is_file()}


def status(run_dir: Path) -> str:
    return json.loads((run_dir / "manifest.json").read_text())["status"]


@pytest.fixture
def complete_run(tmp_path) -> Path:
    run_dir = tmp_path / "run"
    out = sim_main(*FAST, "run.rounds=4", f"hydra.run.dir={run_dir}")
    assert out.returncode == 0, out.stderr
    return run_dir


def one_error_line(out) -> str:
    assert out.returncode == 2, out.stdout + out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), out.stderr
    return lines[0]


def test_a_refused_run_keeps_a_directory_that_is_not_a_run(tmp_path):
    thesis = tmp_path / "D"
    thesis.mkdir()
    (thesis / "thesis.tex").write_text("x")
    out = sim_main(*FAST, "decide.mode=bogus", f"hydra.run.dir={thesis}")
    assert "decide.mode" in one_error_line(out)
    assert tree(thesis) == {"thesis.tex": b"x"}
    assert sorted(p.name for p in thesis.iterdir()) == ["thesis.tex"]


def test_a_refused_run_removes_only_the_directory_it_made(tmp_path):
    out = sim_main(*FAST, "decide.mode=bogus", f"hydra.run.dir={tmp_path / 'new'}")
    one_error_line(out)
    assert not (tmp_path / "new").exists()


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["run.rounds=7"], "different config"),
        (["decide.mode=bogus", "run.rounds=7"], "decide.mode"),
    ],
)
def test_a_refused_run_leaves_the_complete_run_untouched(complete_run, args, expected):
    before = tree(complete_run)
    out = sim_main(*FAST, *args, f"hydra.run.dir={complete_run}")
    assert expected in one_error_line(out)
    assert tree(complete_run) == before
    assert status(complete_run) == "complete"
    assert sim_main(f"resume={complete_run}").returncode == 0


def test_a_live_run_refuses_a_second_writer_and_a_resume(tmp_path):
    run_dir = tmp_path / "live"
    proc = subprocess.Popen(
        [sys.executable, "-m", "sim.run", *FAST, "run.rounds=100000", f"hydra.run.dir={run_dir}"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.time() + 120
        while time.time() < deadline and not (run_dir / "manifest.json").exists():
            time.sleep(0.05)
        hydra_files = tree(run_dir / ".hydra")
        for args in ([*FAST, "run.rounds=100000"], [*FAST, "seed=5"], [f"resume={run_dir}"]):
            out = sim_main(*args, f"hydra.run.dir={run_dir}")
            assert f"in use by another run (pid {proc.pid})" in one_error_line(out)
        assert tree(run_dir / ".hydra") == hydra_files
        assert status(run_dir) == "running"
    finally:
        proc.kill()
        proc.wait()
    assert (run_dir / ".lock").exists()  # left by the kill, and stale: see below


def test_a_stale_lock_is_taken_over(complete_run):
    (complete_run / ".lock").write_text("999999999")  # a process that no longer exists
    out = sim_main(f"resume={complete_run}")
    assert out.returncode == 0 and "already complete" in out.stderr


def damage(run_dir: Path, how: str) -> str:
    """Damage run_dir's records as `how` says; returns the file the error must name."""
    parts = run_dir / "decisions.parquet"
    part = parts / "part-00001.parquet"
    match how:
        case "part_deleted":
            part.unlink()
            return str(part)
        case "part_garbled":
            part.write_bytes(part.read_bytes()[:100] + b"x" * 50 + part.read_bytes()[150:])
            return str(part)
        case "part_replaced":  # a valid Parquet file with other rows
            pl.read_parquet(part).head(3).write_parquet(part)
            return str(part)
        case "decisions_deleted":
            for p in parts.iterdir():
                p.unlink()
            parts.rmdir()
            return str(parts)
        case "rounds_deleted":
            (run_dir / "rounds.parquet").unlink()
            return "rounds.parquet"
        case "rounds_garbage":
            (run_dir / "rounds.parquet").write_bytes(b"garbage")
            return "rounds.parquet"
        case "extra_file":
            (parts / "notes.txt").write_text("x")
            return "notes.txt"
        case "manifest_garbage":
            (run_dir / "manifest.json").write_text("{")
            return "manifest.json"
        case "manifest_list":
            (run_dir / "manifest.json").write_text("[]")
            return "manifest.json"
    raise ValueError(how)


DAMAGE = [
    "part_deleted",
    "part_garbled",
    "part_replaced",
    "decisions_deleted",
    "rounds_deleted",
    "rounds_garbage",
    "extra_file",
    "manifest_garbage",
    "manifest_list",
]


@pytest.mark.parametrize("how", DAMAGE)
def test_resume_refuses_damaged_records_naming_the_file(tmp_path, how):
    run_dir = tmp_path / "run"
    assert sim_main(*FAST, "run.rounds=4", f"hydra.run.dir={run_dir}").returncode == 0
    manifest = json.loads((run_dir / "manifest.json").read_text())
    (run_dir / "manifest.json").write_text(json.dumps({**manifest, "status": "running"}))
    named = damage(run_dir, how)
    before = tree(run_dir)
    out = sim_main(f"resume={run_dir}")
    assert named in one_error_line(out)
    assert "Traceback" not in out.stderr
    assert tree(run_dir) == before  # nothing deleted, nothing marked


@pytest.mark.parametrize("how", ["part_deleted", "part_replaced", "rounds_deleted"])
def test_a_complete_run_with_damaged_records_is_not_complete_again(complete_run, how):
    named = damage(complete_run, how)
    assert named in one_error_line(sim_main(f"resume={complete_run}"))


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"", "not a readable checkpoint"),
        (b"\x80\x04garbage", "not a readable checkpoint"),
        (b'{"format": "other"}', "not a tiplab checkpoint"),
        (b"[1, 2]", "not a tiplab checkpoint"),
        ("foreign", "a checkpoint of run"),
        ("truncated", "not a readable checkpoint"),
        ("bad_type", "not a checkpoint record type"),
        ("no_agents", "damaged checkpoint"),
    ],
)
def test_a_foreign_or_damaged_checkpoint_is_one_line_and_deletes_nothing(
    tmp_path, content, expected
):
    run_dir = tmp_path / "run"
    assert sim_main(*FAST, "run.rounds=4", f"hydra.run.dir={run_dir}").returncode == 0
    manifest = json.loads((run_dir / "manifest.json").read_text())
    (run_dir / "manifest.json").write_text(json.dumps({**manifest, "status": "running"}))
    path = run_dir / checkpoint.FILE
    saved = json.loads(path.read_text())
    if content == "foreign":
        content = json.dumps({**saved, "run_id": "other-1234"}).encode()
    elif content == "truncated":
        content = path.read_bytes()[: len(path.read_bytes()) // 2]
    elif content == "bad_type":
        saved["state"]["agents"][0]["action"] = {"__type__": "os.system", "fields": {}}
        content = json.dumps(saved).encode()
    elif content == "no_agents":
        content = json.dumps({**saved, "state": {**saved["state"], "agents": []}}).encode()
    path.write_bytes(content)
    before = tree(run_dir)
    out = sim_main(f"resume={run_dir}")
    assert expected in one_error_line(out) and str(path) in out.stderr
    assert tree(run_dir) == before


def test_a_pickle_checkpoint_is_never_loaded(tmp_path):
    run_dir = tmp_path / "run"
    assert sim_main(*FAST, "run.rounds=2", f"hydra.run.dir={run_dir}").returncode == 0
    manifest = json.loads((run_dir / "manifest.json").read_text())
    (run_dir / "manifest.json").write_text(json.dumps({**manifest, "status": "running"}))
    (run_dir / "checkpoint" / "state.pkl").write_bytes(b"\x80\x04K\x01.")
    out = sim_main(f"resume={run_dir}")
    assert "state.pkl: a pickle checkpoint" in one_error_line(out)


def test_a_checkpoint_round_trips_every_record_type(tmp_path):
    from agents.decision import DecisionRequest, Experience, PeerAction
    from agents.evolution.buffer import Sample
    from agents.evolution.lineage import Version
    from envs.base import Choices

    request = DecisionRequest(
        3,
        "a-v1",
        [{"role": "user", "content": "x"}],
        Choices("A", "B"),
        (Experience(0, "p", "a", "A", False, 1.5, "f", None),),
    )
    state = {
        "sample": Sample("a", request, True, float("nan"), 0.25, 2, "s"),
        "version": Version("a", 2, "a-v1"),
        "peer": PeerAction(1, None, None, 0.0, ""),
        "random": (3, (1, 2, 2**70), None),
        "int_keys": {1: "x"},
    }
    back = checkpoint.decode(json.loads(json.dumps(checkpoint.encode(state))), tmp_path)
    assert back["version"] == state["version"] and back["peer"] == state["peer"]
    assert back["random"] == state["random"] and back["int_keys"] == {1: "x"}
    assert back["sample"].request.history == request.history
    assert back["sample"].request.choices == request.choices


def test_retention_keeps_the_version_the_last_checkpoint_names(tmp_path):
    lineage = Lineage(tmp_path, keep=1)

    def commit() -> None:
        v = lineage.successor("a")
        written = tmp_path / f"tmp-{v.version}"
        written.mkdir()
        lineage.commit(v, written)

    commit()
    lineage.state_dict()  # the checkpoint after update 1 names v1
    commit()  # update 2; killed before its checkpoint: a resume needs v1
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["v1", "v2"]
    lineage.state_dict()  # checkpoint names v2
    commit()
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["v2", "v3"]


def test_ctrl_c_marks_the_run_interrupted_and_names_the_resume_command(tmp_path):
    run_dir = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, "-m", "sim.run", *FAST, "run.rounds=100000", f"hydra.run.dir={run_dir}"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    parts = run_dir / "decisions.parquet"
    deadline = time.time() + 120
    while time.time() < deadline and len(list(parts.glob("part-*.parquet"))) < 3:
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert err.strip() == f"interrupted: continue with  python -m sim.run resume={run_dir}"
    assert status(run_dir) == "interrupted"
    assert not (run_dir / ".lock").exists()
    manifest = json.loads((run_dir / "manifest.json").read_text())
    start = json.loads((run_dir / checkpoint.FILE).read_text())["state"]["round"]
    assert start >= 2  # the checkpoint follows the part by a moment
    ledger.verify(run_dir, manifest["ledger"], start, 100000)  # resumable as it stands


def test_adapter_config_lists_target_modules_in_one_order(tmp_path):
    lineage = Lineage(tmp_path / "adapters")
    configs = []
    for i, modules in enumerate((["v_proj", "q_proj", "o_proj"], ["o_proj", "q_proj", "v_proj"])):
        written = tmp_path / f"written-{i}"
        written.mkdir()
        (written / "adapter_config.json").write_text(
            json.dumps({"target_modules": modules, "r": 8})
        )
        v = lineage.successor(f"owner{i}")
        configs.append((lineage.commit(v, written) / "adapter_config.json").read_bytes())
    assert configs[0] == configs[1]
    assert json.loads(configs[0])["target_modules"] == ["o_proj", "q_proj", "v_proj"]
