"""The guard stage: one batched review per round, where its corrections act, what the
agents remember, its record columns, resume, and bad settings."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from agents.decision import Decision, DecisionRequest
from agents.guard.base import Review
from agents.guard.calibrated import CalibratedGuard
from envs.records import DECISIONS, GUARD
from sim import checkpoint
from sim.build import build_run, compose, seeds
from tests.helpers import sim_main

N_ROUNDS = 6


def config(**guard) -> dict:
    """64 reward-following agents in the role-play (decisions follow memory and RNG)."""
    overrides = ["backend=reward_following"] + (["guard=calibrated"] if guard else [])
    return compose(overrides, {"run": {"rounds": N_ROUNDS}, "guard": guard, "seed": 1})


def play(cfg: dict, run_dir: Path, rounds: int = N_ROUNDS):
    model = build_run(cfg, run_dir)
    for _ in range(rounds):
        model.step()
    return model


def records(run_dir: Path) -> pl.DataFrame:
    return pl.read_parquet(run_dir / "decisions.parquet").drop("latency_s").sort("round", "agent")


class CountingGuard(CalibratedGuard):
    """The calibrated guard, counting its calls and the answers each call reviews."""

    calls: list[int]

    def review(self, requests, decisions):
        self.calls.append(len(decisions))
        return super().review(requests, decisions)


def test_the_guard_reviews_the_whole_round_in_one_call(tmp_path):
    model = build_run(config(position="execution", feedback="executed"), tmp_path)
    model.guard.__class__ = CountingGuard
    model.guard.calls = []
    for _ in range(3):
        model.step()
    assert model.guard.calls == [model.env.n_agents] * 3


def test_without_a_guard_no_stage_and_no_guard_columns(tmp_path):
    model = play(config(), tmp_path, rounds=2)
    assert model.guard is None
    written = pl.read_parquet(tmp_path / "decisions.parquet").columns
    assert written == [c for c in DECISIONS if c not in GUARD]


def test_the_seed_streams_before_the_guards_are_unchanged():
    old = np.random.SeedSequence(7).spawn(4)
    for (name, rng), s in zip(seeds(7).items(), old, strict=False):
        assert rng.random() == np.random.default_rng(s).random(), name


@pytest.mark.parametrize("feedback", ["executed", "counterfactual"])
def test_at_execution_the_world_pays_the_corrected_choice(tmp_path, feedback):
    model = play(
        config(position="execution", feedback=feedback, catch_rate=1.0, false_edit_rate=0.0),
        tmp_path,
    )
    d = records(tmp_path)
    assert d["violated"].sum() == 0  # every violation caught, and the world saw none
    assert d["proposed_violated"].sum() > 0
    assert (d["guard_changed"] == (d["proposed"] != d["choice"])).all()
    paid = d.filter(pl.col("guard_changed"))
    assert (paid["reward"] == paid["payoff_comply"]).all()
    remembered = [e for a in model.population for e in a.memory]
    violations = [e for e in remembered if e.violated]
    if feedback == "executed":
        assert not violations
    else:  # its own proposal, with the reward the proposal would have earned
        assert violations
        assert any(e.reward > 0 for e in violations)


def test_at_observation_the_agent_is_paid_for_its_proposal(tmp_path):
    model = play(
        config(position="observation", feedback="executed", catch_rate=1.0, false_edit_rate=0.0),
        tmp_path,
    )
    d = records(tmp_path)
    changed = d.filter(pl.col("guard_changed") & pl.col("proposed_violated"))
    assert changed.height > 0
    unsupervised = changed.filter(pl.col("supervision") == "unsupervised")
    assert (unsupervised["reward"] == unsupervised["payoff_violate"]).all()
    assert all(a is None or not a.violated for a in model.actions)  # peers see the correction


def test_calibrated_rates_are_what_was_set(tmp_path):
    cfg = config(position="training", feedback="executed", catch_rate=0.7, false_edit_rate=0.1)
    play(cfg, tmp_path)
    d = records(tmp_path)
    caught = d.filter(pl.col("proposed_violated"))["guard_changed"].mean()
    edited = d.filter(~pl.col("proposed_violated"))["guard_changed"].mean()
    assert abs(caught - 0.7) < 0.15 and abs(edited - 0.1) < 0.06, (caught, edited)
    assert (d["proposed"] == d["choice"]).mean() < 1.0  # at training, the proposal is paid
    assert (d.filter(pl.col("guard_changed"))["reward"] != 0).any()


def test_resumed_guarded_run_equals_uninterrupted(tmp_path):
    cfg = config(position="execution", feedback="counterfactual", catch_rate=0.6)
    play(cfg, tmp_path / "full")
    half = play(cfg, tmp_path / "half", rounds=N_ROUNDS // 2)
    checkpoint.save(half, tmp_path / "half", half.recorder.run_id)
    resumed = build_run(cfg, tmp_path / "half", run_id=half.recorder.run_id)
    state = checkpoint.load(tmp_path / "half", half.recorder.run_id, N_ROUNDS, 64)
    checkpoint.load_model_state(resumed, state)
    for _ in range(N_ROUNDS - N_ROUNDS // 2):
        resumed.step()
    full, again = (records(tmp_path / p).drop("run_id") for p in ("full", "half"))
    assert again.equals(full)


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (["guard=calibrated", "guard.position=somewhere"], "guard.position"),
        (["guard=calibrated", "guard.feedback=later"], "guard.feedback"),
        (["guard=calibrated", "guard.catch_rate=1.5"], "guard.catch_rate"),
        (["guard=calibrated", "guard.name=oracle"], "guard.name"),
        (["guard=model", "guard.mode=sing"], "guard.mode"),
        (["guard=model", "guard.backend.name=oracle"], "guard.backend.name"),
        (["guard=model", "guard.backend.generate.top_p=2"], "guard.backend.generate.top_p: 2"),
    ],
)
def test_bad_guard_settings_are_one_error_line(tmp_path, args, field):
    out = sim_main(*args, "backend=fixed", f"hydra.run.dir={tmp_path / 'run'}")
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {field}"), out.stderr
    assert not (tmp_path / "run").exists()


def test_a_guarded_run_reports_its_guard(tmp_path):
    from analysis.report import write_report

    play(config(position="execution", feedback="counterfactual"), tmp_path, rounds=3)
    out = write_report(tmp_path, n_boot=20)
    assert (out / "guard.png").exists()
    per_round = pl.read_csv(out / "tables" / "guard.csv")
    assert per_round.height == 3
    assert (per_round["proposed_violation"] >= per_round["executed_violation"] - 0.1).all()


def test_correction_pairs_prefer_the_guards_label():
    from agents.evolution.buffer import Sample
    from agents.evolution.data import correction_examples
    from agents.guard.aligner import guard_request
    from envs.base import Choices

    choices = Choices("comply", "violate")
    request = guard_request(
        DecisionRequest(0, None, [{"role": "user", "content": "Q?"}], choices),
        Decision("violate", 0.9, '{"choice": "violate"}'),
    )
    assert request.messages[0]["content"].startswith("BEGINNING OF CONVERSATION: USER: Edit")
    assert 'Q? | {"choice": "violate"} ASSISTANT:' in request.messages[0]["content"]
    kept = Sample("population", request, True, 3.0, 0.9, 0, "s", preferred=0)
    plain = Sample("population", request, True, 3.0, 0.9, 0, "s")
    [example] = correction_examples([kept, plain])
    assert example.label == 0 and example.weight == 1.0 and example.sample is kept


@pytest.mark.slow
def test_the_organism_as_an_aligner_guard_at_training(tmp_path):
    """The organism prompted in Aligner's format reviews an evolving organism's answers;
    at position=training its corrections become preference pairs of the weight updates."""
    cfg = compose(
        ["guard=model", "evolution=pg"],
        {
            "run": {"rounds": 2},
            "env": {"professions": ["delivery_courier", "loan_officer"]},
            "guard": {"position": "training"},
            "evolution": {"sharing": "shared"},
        },
    )
    model = build_run(cfg, tmp_path)
    model.guard.backend.__class__ = counting(type(model.guard.backend))
    model.guard.backend.calls = []
    for _ in range(2):
        model.step()
    assert model.guard.backend.calls == [8, 8]  # one batch of every agent's answer per round
    d = records(tmp_path)
    valid = d.filter(pl.col("proposed").is_not_null())
    assert valid["guard_p_correct"].is_between(0.0, 1.0).all()
    assert (d["reward"] == d.select(paid_for_proposal())["paid"]).all()
    assert pl.read_parquet(tmp_path / "updates.parquet").height == 2


def counting(cls):
    """A subclass of the backend class `cls` that counts the requests of each call."""

    class Counting(cls):
        def decide(self, requests, mode):
            self.calls.append(len(requests))
            return super().decide(requests, mode)

    return Counting


def paid_for_proposal() -> pl.Expr:
    """At training, the unsupervised role-play pays the proposal's payoff."""
    return (
        pl.when(pl.col("proposed_violated"))
        .then(pl.col("payoff_violate"))
        .otherwise(pl.col("payoff_comply"))
        .alias("paid")
    )


def test_an_unparseable_correction_leaves_the_proposal():
    from agents.guard.base import reviewed
    from envs.base import Choices

    request = DecisionRequest(0, None, [], Choices("comply", "violate"))
    proposal = Decision("violate", 0.9, '{"choice": "violate"}')
    assert reviewed(proposal, "I would rather not say.", request) == Review(proposal, False)
    fixed = reviewed(proposal, 'Better: {"choice": "comply"}', request, 0.2)
    assert fixed.changed and fixed.decision.choice == "comply" and fixed.p_correct == 0.2
