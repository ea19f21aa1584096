"""guard=corrector: Aligner triplets from the simulator's own decisions, the corrector
trained on them (cached, the same weights per seed) and deployed as the round's guard."""

from __future__ import annotations

import json

import polars as pl
import pytest

from agents.guard.aligner import question
from agents.guard.corrector import FIELDS, dataset, read_triplets, valid, write_triplets
from agents.guard.settings import guard_config
from agents.parsing import parse_choice
from envs.errors import InputError
from sim.build import compose
from sim.corrector import CARD, DATA, HELD_OUT, corrector_dir, played
from tests.helpers import sim_run

TINY = {  # a corrector trained in seconds: what the tests need, not a useful guard
    "seed": 0,
    "data": {"scenarios": 8, "rounds": 2, "identity_share": 0.2, "held_out_scenarios": 4},
    "train": {"warmup_epochs": 1.0, "epochs": 1.0, "lr": 1.0e-3, "batch_tokens": 4096},
}


def test_triplets_correct_violations_and_copy_a_fifth_of_compliant_answers(tmp_path):
    backend = compose(["backend=reward_following"])["backend"]
    pairs = played(backend, "train", 16, 3, seed=0, progress=False)
    assert len(pairs) == 16 * 3  # every decision of every round the guard stage saw
    violating, compliant = valid(pairs)
    triplets = dataset(pairs, 0.2, seed=0)
    corrections = [t for t in triplets if t["correction"] != t["answer"]]
    copies = [t for t in triplets if t["correction"] == t["answer"]]
    assert len(corrections) == len(violating) > 0
    assert len(copies) == min(len(compliant), round(len(violating) * 0.2 / 0.8))
    for (request, _), t in zip(violating, corrections, strict=True):
        assert parse_choice(t["correction"], request.choices) == request.choices.comply
        assert parse_choice(t["answer"], request.choices) == request.choices.violate
    assert {t["question"] for t in copies} <= {t["question"] for t in triplets}
    path = write_triplets(triplets, tmp_path / "triplets.json")
    assert all(list(row) == list(FIELDS) for row in json.loads(path.read_text()))
    assert read_triplets(path) == triplets


def test_held_out_questions_are_not_the_training_ones():
    backend = compose(["backend=reward_following"])["backend"]
    train, held = (played(backend, s, 16, 1, seed=0, progress=False) for s in ("train", "held_out"))
    assert not {question(r) for r, _ in train} & {question(r) for r, _ in held}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "not a readable JSON file"),
        ("[]", "non-empty JSON list"),
        ('[{"question": "q", "answer": "a"}]', "item 0 needs string fields"),
    ],
)
def test_a_bad_triplets_file_is_named(tmp_path, text, message):
    path = tmp_path / "t.json"
    path.write_text(text)
    with pytest.raises(InputError, match=message):
        read_triplets(path)


def tiny(cache_dir) -> dict:
    return compose(["guard=corrector"], {"guard": {"cache_dir": str(cache_dir), "corrector": TINY}})


@pytest.fixture(scope="module")
def built(tmp_path_factory, organism_path):
    """A tiny corrector on the organism, in a cache of its own."""
    cache = tmp_path_factory.mktemp("corrector")
    return corrector_dir(guard_config(tiny(cache)["guard"]), progress=False)


def overrides(settings: dict, prefix: str) -> list[str]:
    """`settings` as command-line overrides under `prefix`."""
    out = []
    for key, value in settings.items():
        if isinstance(value, dict):
            out += overrides(value, f"{prefix}.{key}")
        else:
            out.append(f"{prefix}.{key}={value}")
    return out


@pytest.mark.slow
def test_the_corrector_is_built_once_per_config(built, organism_path):
    card = built / CARD
    stamp = card.stat().st_mtime_ns
    assert corrector_dir(guard_config(tiny(built.parent)["guard"]), progress=False) == built
    assert card.stat().st_mtime_ns == stamp  # found, not built again
    weights = (built / "model.safetensors").read_bytes()
    assert weights != (organism_path / "model.safetensors").read_bytes()
    measured = json.loads(card.read_text())
    assert measured["base"] == str(organism_path)
    assert measured["triplets"] == len(read_triplets(built / DATA))
    held = read_triplets(built / HELD_OUT)
    assert measured["held_out"]["violating"] + measured["held_out"]["compliant"] == len(held)
    for rates in (measured["held_out"], measured["held_out_base"]):
        assert 0.0 <= rates["correction_rate"] <= 1.0
        assert 0.0 <= rates["false_edit_rate"] <= 1.0


@pytest.mark.slow
def test_sim_run_trains_the_same_corrector_and_it_reviews_every_round(built, tmp_path):
    """Built inside sim.run (a Hydra app) in a cache of its own: the same weights as the
    build in this process, then the round's guard."""
    out = sim_run(
        "guard=corrector",
        f"guard.cache_dir={tmp_path / 'cache'}",
        *overrides(TINY, "guard.corrector"),
        "run.rounds=2",
        "env.professions=[delivery_courier,loan_officer]",
        "run.progress=false",
        "run.report=false",
        f"hydra.run.dir={tmp_path / 'run'}",
    )
    assert out.returncode == 0, out.stderr
    [again] = (tmp_path / "cache").glob("corrector-*")
    assert again.name == built.name
    weights = [(p / "model.safetensors").read_bytes() for p in (built, again)]
    assert weights[0] == weights[1]
    d = pl.read_parquet(tmp_path / "run" / "decisions.parquet")
    assert d.height == 2 * 8
    assert d.filter(pl.col("proposed").is_not_null())["guard_p_correct"].is_between(0, 1).all()


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (["guard.corrector.data.identity_share=1"], "guard.corrector.data.identity_share"),
        (["guard.corrector.train.nosuch=1"], "config"),
    ],
)
def test_bad_corrector_settings_are_one_error_line_and_build_nothing(tmp_path, capsys, args, field):
    from sim.corrector import main

    with pytest.raises(SystemExit) as exit_:
        main([*args, f"guard.cache_dir={tmp_path / 'cache'}"])
    assert exit_.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {field}"), lines
    assert not (tmp_path / "cache").exists()
