"""The scenario generator: thousands of distinct, seeded scenarios in ATP's formats, with
whole families held out, playable by the simulator (env.source=generator)."""

import json

import polars as pl
import pytest

from envs import InputError
from envs.atp import load_ma_templates, load_sa_questions
from envs.generator import HELD_OUT, ma_items, roleplay_scenarios, sa_items, threshold_games
from envs.generator import write_items as write
from tests.helpers import sim_run

RG = [{"high": 1.2, "normal": 1.0, "low": 0.8}]
SA_AXES, MA_AXES = ("kind", "rule", "label"), ("game", "threshold", "label")


def test_thousands_of_distinct_seeded_roleplay_scenarios():
    items = roleplay_scenarios(3000, seed=0)
    assert len({(s.system_prompt, s.situation, s.choices) for s in items}) >= 2900
    assert items[:50] == roleplay_scenarios(50, seed=0)
    assert items[:50] != roleplay_scenarios(50, seed=1)
    payoffs = {(s.payoffs["comply"], s.payoffs["violate"]) for s in items}
    assert payoffs == {(2.0, 2.1)}
    orders = {s.choices.comply_first for s in items}
    assert orders == {True, False}  # the rule-breaking label is named first as often


def test_threshold_templates_vary_in_game_wording_and_labels():
    games = threshold_games(400, 0, "all", 8, [2, 8], RG, "multiplicative")
    assert len(games) == 800
    assert len({(g.scenario.system_prompt, g.scenario.situation) for g in games}) >= 600
    assert all(g.scenario.choices.violate == g.collective_label for g in games)  # ATP: collusion
    assert all(g.payoffs_in_situation and "{" not in g.scenario.situation for g in games)


@pytest.mark.parametrize(("make", "axes"), [(sa_items, SA_AXES), (ma_items, MA_AXES)])
def test_training_split_never_draws_a_held_out_family_and_held_out_always_does(make, axes):
    train, held = make(500, 3, "train"), make(500, 3, "held_out")
    for item in train:
        assert all(item["family"][a] not in HELD_OUT[a] for a in axes), item["family"]
        assert item["family"]["split"] == "train"
    for item in held:
        assert any(item["family"][a] in HELD_OUT[a] for a in axes), item["family"]
        assert item["family"]["split"] == "held_out"
    for axis in axes:  # every held-out value is drawn
        assert {i["family"][axis] for i in held} >= set(HELD_OUT[axis])


def test_written_files_read_back_as_the_scenarios_it_plays(tmp_path):
    sa = sa_items(40, seed=5, payoffs=[[1.0, 3.1]])
    scenarios = load_sa_questions(write(sa, tmp_path / "sa.json"))
    assert scenarios == roleplay_scenarios(40, 5, payoffs=[[1.0, 3.1]])
    for item, s in zip(sa, scenarios, strict=True):
        first = json.loads(item["format_example"].split(" or ")[0])["choice"]
        assert s.choices.ordered[0] == first  # the order of the file's format line
    ma = load_ma_templates(write(ma_items(6, 5), tmp_path / "ma.json"), 8, [4], RG, "additive")
    assert ma == threshold_games(6, 5, "all", 8, [4], RG, "additive")


def test_a_bad_split_is_named():
    with pytest.raises(InputError, match="env.generator.split: 'nope'"):
        sa_items(3, 0, "nope")


@pytest.mark.parametrize("env", ["roleplay", "threshold"])
def test_the_simulator_plays_generated_held_out_scenarios(tmp_path, env):
    out = tmp_path / env
    done = sim_run(
        f"env={env}",
        "env.source=generator",
        "env.generator.split=held_out",
        "env.generator.scenarios=5",
        "backend=fixed",
        "run.rounds=2",
        "run.report=false",
        "run.progress=false",
        f"hydra.run.dir={out}",
    )
    assert done.returncode == 0, done.stderr
    decisions = pl.read_parquet(out / "decisions.parquet")
    assert decisions["round"].max() == 1 and decisions["scenario"].n_unique() == 5
