"""Loading runs and sweeps: schema, manifest columns, partial runs, errors."""

from __future__ import annotations

import json

import polars as pl
import pytest
from analysis_fixtures import decisions_frame, synthetic_decisions, write_run

from analysis.load import (
    NoRunError,
    find_runs,
    read_manifests,
    scan_decisions,
    scan_rounds,
    scan_updates,
    swept_parameters,
)
from envs.records import DECISIONS


def test_single_run_scan_has_schema_and_run_columns(tmp_path):
    write_run(tmp_path / "run", synthetic_decisions(n_agents=3, n_rounds=4), seed=7)
    lf = scan_decisions(tmp_path / "run")
    assert isinstance(lf, pl.LazyFrame)
    df = lf.collect()
    assert df.columns[: len(DECISIONS)] == DECISIONS.names()
    assert df.schema["round"] == pl.Int32
    assert df.height == 12
    assert df.get_column("run_dir").unique().to_list() == ["."]
    assert df.get_column("seed").unique().to_list() == [7]
    assert df.get_column("status").unique().to_list() == ["complete"]
    assert scan_rounds(tmp_path / "run").collect().height == 4
    assert scan_updates(tmp_path / "run").collect().height == 0


def test_sweep_scan_turns_overrides_into_columns(tmp_path):
    sweep = tmp_path / "sweep"
    for i, (th, ev) in enumerate([(2, "none"), (4, "none"), (2, "lora"), (4, "lora")]):
        d = synthetic_decisions(n_agents=2, n_rounds=3, seed=i, run_id=f"r{i}")
        write_run(sweep / "batch" / str(i), d, {"env.threshold": th, "evolution": ev}, seed=i)
    manifests = read_manifests(sweep)
    assert manifests.get_column("run_dir").to_list() == [f"batch/{i}" for i in range(4)]
    assert manifests.schema["env.threshold"] == pl.Int64
    assert swept_parameters(manifests) == ["env.threshold", "evolution"]
    df = scan_decisions(sweep).collect()
    assert df.height == 4 * 2 * 3
    per_run = df.group_by("run_dir", "env.threshold", "evolution", "seed").len().sort("run_dir")
    assert per_run.get_column("env.threshold").to_list() == [2, 4, 2, 4]
    assert per_run.get_column("evolution").to_list() == ["none", "none", "lora", "lora"]
    assert per_run.get_column("seed").to_list() == [0, 1, 2, 3]


def test_old_and_new_runs_mix_and_partial_runs_load(tmp_path):
    sweep = tmp_path / "sweep"
    write_run(sweep / "0", synthetic_decisions(n_agents=2, n_rounds=2), {"x": 1})
    # an "old" run: its parts lack several columns and one part uses narrower ints
    old = sweep / "1" / "decisions.parquet"
    old.mkdir(parents=True)
    base = pl.DataFrame({"run_id": ["old"] * 2, "round": [0, 0], "agent": [0, 1]})
    base.with_columns(violated=pl.Series([True, False])).cast(
        {"round": pl.Int32, "agent": pl.Int16}
    ).write_parquet(old / "part-00000.parquet")
    (sweep / "1" / "manifest.json").write_text(
        json.dumps({"run_id": "old", "seed": 1, "status": "running", "overrides": {"x": 2.5}})
    )
    df = scan_decisions(sweep).collect()
    old_rows = df.filter(pl.col("run_dir") == "1")
    assert old_rows.height == 2
    assert old_rows.get_column("p_violate").null_count() == 2
    assert old_rows.get_column("status").unique().to_list() == ["running"]
    assert df.schema["x"] == pl.Float64  # int and float overrides mix as float
    assert sorted(df.get_column("x").unique().to_list()) == [1.0, 2.5]


def test_mixed_text_and_number_overrides_become_text(tmp_path):
    write_run(tmp_path / "a", synthetic_decisions(2, 2), {"model": 3})
    write_run(tmp_path / "b", synthetic_decisions(2, 2), {"model": "llama"})
    assert read_manifests(tmp_path).get_column("model").to_list() == ["3", "llama"]


def test_run_without_decisions_adds_no_rows(tmp_path):
    write_run(tmp_path / "0", synthetic_decisions(2, 2))
    (tmp_path / "1").mkdir()
    (tmp_path / "1" / "manifest.json").write_text(json.dumps({"status": "running"}))
    assert scan_decisions(tmp_path).collect().height == 4


def test_config_keys_become_columns(tmp_path):
    write_run(tmp_path / "r", decisions_frame({"round": [0], "agent": [0], "violated": [True]}))
    df = scan_decisions(tmp_path / "r", config_keys=["env.name"]).collect()
    assert df.get_column("env.name").to_list() == ["threshold"]


def test_directory_without_run_is_a_clear_error(tmp_path):
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    with pytest.raises(NoRunError, match="empty"):
        find_runs(tmp_path / "empty")
    with pytest.raises(NoRunError, match="missing"):
        scan_decisions(tmp_path / "missing")
