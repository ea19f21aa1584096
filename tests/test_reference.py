"""Reference distances (references.parquet): the policy against its pre-trained base and its
aligned start, on a small local checkpoint aligned by sim.align (not the organism)."""

from pathlib import Path

import polars as pl
import pytest

from envs.records import REFERENCES
from sim.build import build_run, compose
from tests.helpers import align_recipe, refused_in_one_line, sim_main, small_align_data, tiny_llama

ENV = {
    "professions": ["delivery_courier", "loan_officer"],
    "payoffs": [[1.0, 3.1], [2.0, 2.1]],
}


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    return tiny_llama(tmp_path_factory.mktemp("tiny") / "base")


@pytest.fixture(scope="module")
def aligned(base, tmp_path_factory) -> Path:
    from agents.alignment import align

    out = tmp_path_factory.mktemp("aligned") / "sft"
    align(align_recipe("sft"), small_align_data(), base, out, progress=False)
    return out


def played(run_dir: Path, path: Path, rounds: int, *overrides: str, **values) -> pl.DataFrame:
    """`rounds` rounds of backend=hf on the checkpoint at path; its decisions."""
    cfg = compose(
        ["backend=hf", *overrides],
        {
            "env": ENV,
            "run": {"rounds": rounds},
            "backend": {"model": {"path": str(path), "device": "cpu"}},
            **values,
        },
    )
    model = build_run(cfg, run_dir)
    for _ in range(rounds):
        model.step()
    return pl.read_parquet(run_dir / "decisions.parquet")


@pytest.mark.slow
def test_an_aligned_policy_is_away_from_its_base_and_moves_away_from_its_start(aligned, tmp_path):
    evolving = ["evolution=pg", "evolution.sharing=shared"]
    decisions = played(tmp_path / "run", aligned, 2, *evolving)
    refs = pl.read_parquet(tmp_path / "run" / "references.parquet")
    assert refs.schema == REFERENCES
    assert refs["stage"].to_list() == ["round", "update", "round", "update"]
    assert refs["adapter"].to_list() == [None, "population-v1", "population-v1", "population-v2"]
    start = refs.row(0, named=True)
    assert start["kl_aligned"] == 0 and start["dp_aligned"] == 0
    assert start["kl_base"] > 0  # the base named by the aligned checkpoint's card
    assert (refs["kl_aligned"][1:] > 0).all()
    # the version that decided round 1 is the one the update after round 0 made
    assert refs.row(2, named=True) | {"stage": "update", "round": 0} == refs.row(1, named=True)
    # the probes leave the run's own records as they are
    unprobed = played(tmp_path / "off", aligned, 2, *evolving, reference={"probes": 0})
    assert not (tmp_path / "off" / "references.parquet").exists()
    columns = ["agent", "round", "choice", "p_violate", "adapter"]
    assert decisions.select(columns).equals(unprobed.select(columns))


@pytest.mark.slow
def test_the_base_is_at_distance_zero_from_itself(base, tmp_path):
    played(tmp_path, base, 1, reference={"probes": 3, "base": str(base)})
    refs = pl.read_parquet(tmp_path / "references.parquet")
    assert refs.height == 1 and refs["owner"].to_list() == ["population"]
    row = refs.row(0, named=True)
    assert row["probes"] == 3
    assert row["kl_base"] == 0 and row["dp_base"] == 0 and row["kl_aligned"] == 0


@pytest.mark.parametrize(
    ("setting", "expected"),
    [
        ("reference.probes=-1", "error: reference.probes: -1 must be an integer >= 0"),
        ("reference.base=/no/such/base", "error: reference.base: /no/such/base is not a Hugging"),
    ],
)
def test_bad_reference_settings_are_one_line_before_anything_loads(tmp_path, setting, expected):
    done = sim_main("backend=fixed", setting, f"hydra.run.dir={tmp_path / 'run'}")
    refused_in_one_line(done, expected)
    assert not (tmp_path / "run").exists()
