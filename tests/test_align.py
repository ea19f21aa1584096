"""python -m sim.align: TRL's SFT, DPO and GRPO on a small local checkpoint (not the
organism), the result loadable by plain transformers/PEFT and by backend=hf; bad input is
one line, exit 2, and no checkpoint."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch
from conftest import backend_config
from transformers import AutoModelForCausalLM, AutoTokenizer

from agents.alignment.data import Prompt, atp_reward, dosed, split
from agents.alignment.settings import AlignData
from envs.base import Choices
from tests.helpers import ROOT, align_recipe, small_align_data, tiny_llama

# A small slice of the project's scenarios, so that a test aligns in seconds.
DATA = [
    "data.roleplay.professions=[delivery_courier,loan_officer,site_foreman,hotel_manager]",
    "data.threshold.games=[price_ring,bid_rigging]",
    "data.threshold.thresholds=[4]",
    "data.held_out_share=0.3",
    "data.dose=8",
    "progress=false",
]


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    return tiny_llama(tmp_path_factory.mktemp("tiny") / "base")


def sim_align(*args, cwd=ROOT, timeout=600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "sim.align", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "HYDRA_FULL_ERROR": "0"},
    )


def test_atp_reward_is_atps_rule():
    reward = atp_reward(1.0, 0.1, 0.0)
    completions = [
        [{"role": "assistant", "content": 'I comply. {"choice": "A"}'}],
        [{"role": "assistant", "content": '{"choice": "B"}'}],
        [{"role": "assistant", "content": "no idea"}],
    ]
    assert reward(completions, comply=["A"] * 3, violate=["B"] * 3) == [1.0, 0.1, 0.0]


def test_dose_draws_in_a_seeded_order_and_goes_round_again():
    pool = [Prompt([], Choices("a", "b"), str(i), "roleplay") for i in range(5)]
    drawn = dosed(pool, 12, seed=3)
    assert len(drawn) == 12 and {p.scenario for p in drawn[:5]} == {str(i) for i in range(5)}
    assert drawn == dosed(pool, 12, seed=3) != dosed(pool, 12, seed=4)


def test_held_out_prompts_are_other_scenarios_than_the_training_ones():
    train, held = split(AlignData.of(small_align_data()), 0)
    assert train and held and not {p.scenario for p in train} & {p.scenario for p in held}


@pytest.mark.slow
def test_dpo_checkpoint_loads_with_transformers_peft_and_backend_hf(base, tmp_path):
    from peft import PeftModel

    from agents.alignment.data import requests
    from agents.backends import make_backend

    out = tmp_path / "dpo"
    done = sim_align("align=dpo", f"base={base}", f"out={out}", *DATA)
    assert done.returncode == 0, done.stderr
    card = json.loads((out / "alignment.json").read_text())
    assert card["method"] == "dpo" and card["dose"] == 8 and card["seed"] == 0
    assert card["steps"] == 2  # 8 pairs, batch 8, 2 epochs
    assert set(card["violation_before"]) == {"all", "roleplay", "threshold"}
    log = pl.read_parquet(out / "training_log.parquet")
    assert log.height == card["steps"] and log["loss"].is_finite().all()
    assert "rewards/margins" in log.columns
    # plain transformers: the merged model; PEFT: the base plus the adapter, the same function
    merged = AutoModelForCausalLM.from_pretrained(out)
    AutoTokenizer.from_pretrained(out)
    adapted = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), out / "adapter")
    ids = torch.tensor([[5, 17, 40, 3, 99]])
    with torch.no_grad():
        assert torch.allclose(merged(ids).logits, adapted(ids).logits, atol=1e-5)
    # backend=hf scores the held-out prompts as the card says
    train, held = split(AlignData.of(small_align_data()), 0)
    hf = make_backend(
        backend_config("hf", model={"path": str(out), "device": "cpu"}), np.random.default_rng(0)
    )
    rates = {
        p: np.mean([d.p_violate for d in hf.decide(r, "score")]) for p, r in requests(held).items()
    }
    for paradigm, rate in rates.items():
        assert rate == pytest.approx(card["violation_after"][paradigm], abs=1e-5)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary left


@pytest.mark.slow
@pytest.mark.parametrize("method", ["sft", "grpo"])
def test_sft_and_grpo_write_the_same_layout(base, tmp_path, method):
    from agents.alignment import align

    card = align(align_recipe(method), small_align_data(), base, tmp_path / method, progress=False)
    assert card["method"] == method and card["steps"] >= 1
    assert (tmp_path / method / "adapter" / "adapter_config.json").is_file()
    log = pl.read_parquet(tmp_path / method / "training_log.parquet")
    assert ("reward" in log.columns) == (method == "grpo")


@pytest.mark.slow
def test_same_seed_same_weights(base, tmp_path):
    from agents.alignment import align

    full = {**align_recipe("sft"), "peft": "full", "lr": 1e-4}
    for name in ("a", "b"):
        align(full, small_align_data(dose=4), base, tmp_path / name, seed=1, progress=False)
    weights = [(tmp_path / n / "model.safetensors").read_bytes() for n in ("a", "b")]
    assert weights[0] == weights[1]
    assert not (tmp_path / "a" / "adapter").exists()  # full fine-tuning: no adapter


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["align.method=ppo"], "align.method: 'ppo'; expected one of sft, dpo, grpo"),
        (["align=ppo"], "config: "),
        (["base={tmp}"], "base: {tmp} is not a Hugging Face model directory"),
        (["data.dose=0"], "data.dose: 0 must be an integer >= 1"),
        (["data.source=atp", "data.atp_file={wrong}"], "wrong.json: item 0: missing field"),
        (["data.source=atp"], "data.atp_file: required when data.source=atp"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_no_checkpoint(base, tmp_path, args, expected):
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps([{"question": "?", "answer": "!"}]))
    fill = {"tmp": tmp_path, "wrong": wrong}
    args = [a.format(**fill) for a in args]
    if not any(a.startswith("base=") for a in args):
        args.append(f"base={base}")
    out = tmp_path / "out"
    done = sim_align(*DATA, *args, f"out={out}", timeout=120)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    assert expected.format(**fill) in lines[0]
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out")]


def test_unknown_organism_alignment_is_one_line(tmp_path):
    from tests.helpers import sim_run

    quiet = ["run.progress=false", "run.report=false", "run.rounds=1"]
    out = sim_run("backend.align=ppo", *quiet, f"hydra.run.dir={tmp_path / 'run'}")
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [
        "error: backend.align: 'ppo'; expected one of null, none, sft, dpo, grpo"
    ]
    assert not (tmp_path / "run").exists()
