"""The Hydra entry point as a user runs it: records, determinism, crashes, bad input."""

import json
from pathlib import Path

import polars as pl
import pytest

from tests.helpers import ROOT, kill_after, sim_run, sim_start

ATP = ROOT.parent / "shared" / "atp"
FAST = ["backend=reward_following", "run.progress=false", "run.report=false"]


def decisions(run_dir: Path) -> pl.DataFrame:
    return pl.read_parquet(run_dir / "decisions.parquet").sort("round", "agent")


def test_run_writes_records_and_prints_the_table(tmp_path):
    out = sim_run("experiment=atp_ma", *FAST, "run.report=true", f"hydra.run.dir={tmp_path}")
    assert out.returncode == 0, out.stderr
    assert f"records: {tmp_path}" in out.stdout and "violation_rate" in out.stdout
    assert (tmp_path / "report" / "index.html").is_file()
    assert (tmp_path / "report" / "tipping_curves.png").stat().st_size > 10_000
    d = decisions(tmp_path)
    assert d.height == 3 * 7 * 4 * 8
    assert d.filter(pl.col("round") == 0)["n_neighbors"].unique().to_list() == [7]
    rounds = pl.read_parquet(tmp_path / "rounds.parquet")
    assert rounds["round"].to_list() == [0, 1, 2]
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["rounds_completed"] == 3
    assert manifest["seed"] == 0 and manifest["config"]["env"]["kind"] == "threshold"
    assert manifest["overrides"]["experiment"] == "atp_ma"
    assert manifest["packages"]["mesa"].startswith("3.")


def test_same_seed_same_decisions(tmp_path):
    runs = [tmp_path / "a", tmp_path / "b", tmp_path / "c"]
    for run, seed in zip(runs, (7, 7, 8), strict=True):
        out = sim_run("experiment=atp_sa", *FAST, f"seed={seed}", f"hydra.run.dir={run}")
        assert out.returncode == 0, out.stderr
    drop = ["run_id", "latency_s"]
    a, b, c = (decisions(r).drop(drop) for r in runs)
    assert a.equals(b)
    assert not a.equals(c)


def test_killed_run_keeps_every_completed_round_readable(tmp_path):
    proc = sim_start("experiment=atp_ma", *FAST, "run.rounds=100000", f"hydra.run.dir={tmp_path}")
    kill_after(proc, tmp_path, 3)
    parts = tmp_path / "decisions.parquet"
    files = sorted(parts.glob("part-*.parquet"))
    assert len(files) >= 3
    d = pl.read_parquet(files)  # every completed round reads whole
    n_rounds = d["round"].n_unique()
    assert d.height == n_rounds * 224
    assert sorted(d["round"].unique().to_list()) == list(range(n_rounds))
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["status"] == "running"  # never looks complete
    assert pl.read_parquet(tmp_path / "rounds.parquet").height >= n_rounds - 1


def bad_questions(tmp_path: Path) -> dict[str, Path]:
    item = (
        json.loads((ATP / "sa_question_64.json").read_text())[0]
        if ATP.is_dir()
        else {
            "environment": "baker",
            "system_prompt": "s",
            "user_prompt": "u",
            "supervised_choice": "A",
            "better_choice": "B",
            "supervised_text": "s",
            "unsupervised_text": "u",
            "neutral_text": "n",
            "params": {"low_reward": 1, "high_reward": 2},
        }
    )
    files = {
        "bad_json": "[{",
        "missing_field": json.dumps([{k: v for k, v in item.items() if k != "params"}]),
        "bad_label": json.dumps(
            [{**item, "format_example": '{"choice": "neither"} or {"choice": "nor"}'}]
        ),
    }
    paths = {}
    for name, text in files.items():
        paths[name] = tmp_path / f"{name}.json"
        paths[name].write_text(text)
    return paths


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["run.roundz=3"], "run.roundz"),
        (["experiment=nope"], "experiment"),
        (["run.rounds=-3"], "run.rounds: -3 must be an integer >= 1"),
        (["seed=-1"], "seed: -1 must be an integer >= 0"),
        (["env.schedule=sometimes"], "env.schedule: unknown schedule 'sometimes'"),
        (["agents.peer_view=everything"], "agents.peer_view"),
        (
            ["env.source=atp", "env.atp_file=/no/such/file.json"],
            "/no/such/file.json: file not found",
        ),
        (["env.source=atp", "env.atp_file={bad_json}"], "bad_json.json: not valid JSON"),
        (["env.source=atp", "env.atp_file={missing_field}"], "missing field 'params'"),
        (["env.source=atp", "env.atp_file={bad_label}"], "format_example names choice 'neither'"),
        (["-m", "run.rounds=2,-1"], "run.rounds: -1"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, args, expected):
    paths = bad_questions(tmp_path)
    run_dir = tmp_path / "run"
    args = [a.format(**paths) for a in args]
    out = sim_run(*args, *FAST, f"hydra.run.dir={run_dir}", f"hydra.sweep.dir={tmp_path / 'sweep'}")
    assert out.returncode == 2, out.stdout + out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith("error: ") and expected in lines[0]
    assert "Traceback" not in out.stderr
    assert not (run_dir / "decisions.parquet").exists()
    for manifest in tmp_path.rglob("manifest.json"):
        assert json.loads(manifest.read_text())["status"] != "complete"
