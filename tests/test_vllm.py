"""backend=vllm: the guarded import on any machine; the engine itself where vLLM and a GPU are.

The GPU tests use the model organism's checkpoint: vLLM must score it as backend=hf
does (same prompts, same tokens, same probabilities), serve two LoRA versions in one
batch, sleep and wake up with its answers unchanged, and, as `vllm serve`, give
backend=openai the prompt log-probabilities that score mode needs.
"""

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch
from test_served import round_zero_requests as requests

ROOT = Path(__file__).resolve().parents[1]
HAS_VLLM = importlib.util.find_spec("vllm") is not None
HAS_GPU = torch.cuda.is_available()
gpu = pytest.mark.skipif(
    not (HAS_VLLM and HAS_GPU),
    reason="needs vLLM and a CUDA GPU (the separate GPU environment, README)",
)


def test_backend_vllm_without_vllm_or_gpu_is_one_line(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "sim.run", "backend=vllm", "backend.model=/models/any"]
        + ["run.progress=false", f"hydra.run.dir={tmp_path / 'run'}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if HAS_VLLM and HAS_GPU:
        pytest.skip("vLLM and a GPU are both here")
    missing = "no CUDA GPU is visible" if HAS_VLLM else "vLLM is not installed here"
    lines = out.stderr.strip().splitlines()
    assert out.returncode == 2 and len(lines) == 1
    assert lines[0].startswith("error: backend=vllm: ") and missing in lines[0]
    assert not (tmp_path / "run").exists()


def engine_config(checkpoint: Path, **generate) -> dict:
    return {
        "name": "vllm",
        "model": str(checkpoint),
        "seed": 0,
        "dtype": "float32",
        "tensor_parallel_size": 1,
        "gpu_memory_utilization": 0.3,
        "max_model_len": 2048,
        "enforce_eager": True,
        "enable_prefix_caching": True,
        "enable_lora": True,
        "max_loras": 2,
        "max_lora_rank": 8,
        "max_cpu_loras": 4,
        "enable_sleep_mode": True,
        "generate": {"temperature": 1.0, "top_p": 1.0, "max_new_tokens": 32, **generate},
        "chat_template_kwargs": {},
    }


def random_lora(checkpoint: Path, out: Path, seed: int) -> Path:
    """A rank-8 LoRA with random (non-zero) weights, saved in PEFT's layout."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(checkpoint, dtype=torch.float32)
    config = LoraConfig(r=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    get_peft_model(model, config).save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def engine(organism_path):
    from agents.backends import make_backend

    backend = make_backend(engine_config(organism_path), np.random.default_rng(0))
    yield backend
    backend.close()


def hf_p_violate(checkpoint: Path, reqs, adapters: dict) -> list[float]:
    from agents.backends.hf import HFBackend
    from agents.backends.loading import load_checkpoint

    model, tokenizer = load_checkpoint(checkpoint, torch.device("cuda"), torch.float32)
    hf = HFBackend(np.random.default_rng(0), model, tokenizer)
    if adapters:
        hf.load_adapters(adapters)
    return [d.p_violate for d in hf.decide(reqs, "score")]


@gpu
def test_vllm_scores_with_lora_versions_as_hf_does(engine, organism_path, tmp_path):
    adapters = {
        name: random_lora(organism_path, tmp_path / name, seed)
        for seed, name in enumerate(("group0-v1", "group1-v1"))
    }
    engine.load_adapters(adapters)
    reqs = requests(adapters=(None, "group0-v1", "group1-v1"))
    got = [d.p_violate for d in engine.decide(reqs, "score")]
    want = hf_p_violate(organism_path, reqs, adapters)
    assert got == pytest.approx(want, abs=2e-3)
    by_adapter = {r.adapter: p for r, p in zip(reqs, got, strict=True)}
    assert len({round(p, 4) for p in by_adapter.values()}) == 3  # the versions differ
    assert [a.id for a in engine.adapters.by_name.values()] == [1, 2]


@gpu
def test_vllm_sleeps_frees_the_gpu_and_wakes_up_answering_as_before(engine):
    engine.decide(requests(), "score")
    free_awake = torch.cuda.mem_get_info()[0]
    engine.sleep()
    assert torch.cuda.mem_get_info()[0] > free_awake
    engine.wake_up()  # raises if an active adapter's check answer changed
    assert engine.answers_before_sleep


@gpu
def test_vllm_generates_constrained_answers(organism_path):
    from agents.backends import make_backend

    cfg = engine_config(organism_path, constrained=True)
    backend = make_backend(cfg, np.random.default_rng(1))
    try:
        decisions = backend.decide(requests(), "generate")
    finally:
        backend.close()
    assert all(d.valid for d in decisions)
    assert all(d.completion_tokens > 0 and d.prompt_tokens > 0 for d in decisions)


@gpu
def test_vllm_serve_gives_backend_openai_score_mode(organism_path, tmp_path):
    from test_openai_server import QUIET, SA, free_port, serving

    port = free_port()
    command = ["vllm", "serve", organism_path, "--host", "127.0.0.1", "--port", port]
    command += ["--dtype", "float32", "--gpu-memory-utilization", "0.3", "--enforce-eager"]
    command += ["--enable-lora", "--max-lora-rank", "8"]
    env = {"VLLM_ALLOW_RUNTIME_LORA_UPDATING": "True", "HF_HUB_OFFLINE": "1"}
    run = tmp_path / "run"
    with serving(command, port, tmp_path / "vllm.log", env, timeout=600) as (url, _):
        out = subprocess.run(
            [sys.executable, "-m", "sim.run", *SA, *QUIET, "backend=openai", "decide.mode=score"]
            + [f"backend.base_url={url}", f"backend.model={organism_path}"]
            + [f"hydra.run.dir={run}"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=600,
        )
    assert out.returncode == 0, out.stderr
    d = pl.read_parquet(run / "decisions.parquet")
    assert d["p_violate"].is_between(0, 1, closed="none").all() and d["valid"].all()
