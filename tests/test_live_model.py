"""LiveModel, the model `tiplab view OVERRIDES` drives: the config with the page's inputs,
recorded like any run, stopping at run.rounds."""

import json

import polars as pl
import pytest

from analysis.view import records
from analysis.view.figures import updates_figure
from sim.view import LiveModel, composed, inputs

SCRIPTED = ("backend=reward_following", "run.rounds=2")


def manifest(model) -> dict:
    return json.loads((model.run_dir / "manifest.json").read_text())


def test_inputs_reach_the_config_and_the_run_stops_at_its_rounds(tmp_path):
    model = LiveModel(SCRIPTED, str(tmp_path), temptation=2.0, schedule="alternating")
    while model.running:
        model.step()
    assert model.round == 2 and manifest(model)["status"] == "complete"
    played = pl.read_parquet(model.run_dir / "decisions.parquet")
    configured = composed(list(SCRIPTED))["env"]["payoffs"]
    gaps = played.select((pl.col("payoff_violate") - pl.col("payoff_comply")).round(4)).unique()
    assert sorted(gaps.to_series()) == sorted(round(2 * (v - c), 4) for c, v in configured)
    assert played.filter(pl.col("round") == 0)["supervision"].unique().to_list() == ["supervised"]
    assert records.runs(model.run_dir).item(0, "rounds_completed") == 2

    game = ("experiment=atp_ma", "backend=fixed", "env.games=[price_ring]", "run.rounds=1")
    params = inputs(composed(list(game)), list(game), str(tmp_path))
    assert params["threshold"]["max"] == 8 and "schedule" not in params
    assert "evolution" not in params  # a scripted policy has no weights to update
    model = LiveModel(game, str(tmp_path), threshold=6)
    model.step()
    decided = pl.read_parquet(model.run_dir / "decisions.parquet")
    assert decided["threshold"].unique().to_list() == [6]


@pytest.mark.slow
def test_evolution_switched_on_updates_weights_and_the_view_draws_them(tmp_path):
    overrides = ("env.professions=[delivery_courier,loan_officer]", "run.rounds=3")
    assert inputs(composed(list(overrides)), [], "")["evolution"]["value"] is False
    model = LiveModel(overrides, str(tmp_path), 2.0, schedule="alternating", evolution=True)
    while model.running:
        model.step()
    updates = records.updates(model.run_dir)
    assert updates.height > 0 and updates["kl"].is_not_null().all()
    loss, kl = updates_figure(updates).axes
    assert loss.lines and kl.lines
