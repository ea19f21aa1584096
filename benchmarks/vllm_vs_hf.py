"""A round decided by vLLM's engine vs backend=hf: same model, same prompts, per-agent LoRAs.

For N agents (first-round prompts of the organism's episodes), each on its own LoRA
adapter (or --adapters K shared in turn), the round is decided by backend=vllm and by
backend=hf in score and in generate mode; the best of a few timings of each is kept
and vLLM's speed relative to hf's printed. Times depend on the machine; only the ratios
mean something. Run it in the vLLM environment:

    .venv-vllm/bin/python benchmarks/vllm_vs_hf.py [--sizes 64 256] [--adapters K]
                                                 [--model DIR] [--device cuda]

The model is the organism unless --model names a local checkpoint (vLLM's CPU attention
needs a head size of at least 32; on a GPU use a real checkpoint). On a CPU both run in
float32, vLLM with a tenth of the memory for its KV cache and without compilation.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import tempfile
from dataclasses import replace
from pathlib import Path
from time import perf_counter

import numpy as np
import torch
from decide_throughput import backend_config, round_requests

from agents.backends import make_backend
from agents.backends.hf import HFBackend
from agents.backends.loading import load_checkpoint
from envs.errors import InputError
from sim.build import compose
from sim.run import fail


def lora_versions(model: Path, out: Path, k: int) -> dict[str, Path]:
    """k rank-8 LoRA adapters on the attention projections, random non-zero weights."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(model, dtype=torch.float32)
    targets = ["q_proj", "k_proj", "v_proj", "o_proj"]
    lora = get_peft_model(base, LoraConfig(r=8, target_modules=targets, init_lora_weights=False))
    adapters = {}
    for i in range(k):
        torch.manual_seed(i)
        with torch.no_grad():
            for name, p in lora.named_parameters():
                if "lora_" in name:
                    p.normal_(0, 0.05)
        adapters[f"agent{i}-v1"] = out / f"agent{i}"
        lora.save_pretrained(adapters[f"agent{i}-v1"])
    return adapters


def vllm_config(model: Path, device: str, adapters: int) -> dict:
    """conf/backend/vllm.yaml sized for `device` and `adapters`, never asleep (the
    engine is timed alone)."""
    cpu = device == "cpu"
    changed = {
        "model": str(model),
        "dtype": "float32" if cpu else "auto",
        "gpu_memory_utilization": 0.1 if cpu else 0.5,
        "max_model_len": 4096,
        "enforce_eager": cpu,
        "max_loras": min(adapters, 16) + 1,
        "max_lora_rank": 8,
        "max_cpu_loras": adapters + 1,
        "enable_sleep_mode": False,
        "generate": {"max_new_tokens": 16},
    }
    return compose(["backend=vllm"], {"backend": changed})["backend"]


def best_seconds(backend, mode: str, requests, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        tic = perf_counter()
        backend.decide(requests, mode)
        times.append(perf_counter() - tic)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 256])
    parser.add_argument("--adapters", type=int, default=0, help="K adapters (0: one per agent)")
    parser.add_argument("--repeats", type=int, default=2, help="best of this many timings")
    parser.add_argument("--model", type=Path, default=None, help="a local checkpoint")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    args = parser.parse_args()
    if importlib.util.find_spec("vllm") is None:
        print("vllm_vs_hf: skipped (vLLM is not installed here; run it with .venv-vllm/bin/python)")
        return
    organism = backend_config(None, None)
    model = args.model
    if model is None:
        from agents.organism.build import organism_dir

        model = organism_dir(organism["organism"], organism["cache_dir"])
    arch = json.loads((model / "config.json").read_text())
    head = arch.get("head_dim") or arch["hidden_size"] // arch["num_attention_heads"]
    if args.device == "cpu" and head < 32:
        print(f"vllm_vs_hf: skipped (head size {head} in {model}; vLLM's CPU attention needs 32)")
        return
    most = max(args.sizes)
    k = args.adapters or most
    device = torch.device(args.device)
    dtype = torch.float32 if args.device == "cpu" else torch.bfloat16
    with tempfile.TemporaryDirectory() as scratch:
        adapters = lora_versions(model, Path(scratch), k)
        names = list(adapters)
        checkpoint, tokenizer = load_checkpoint(model, device, dtype)
        hf = HFBackend(np.random.default_rng(0), checkpoint, tokenizer, max_new_tokens=16)
        hf.load_adapters(adapters)
        engine = make_backend(vllm_config(model, args.device, k), np.random.default_rng(0))
        engine.load_adapters(adapters)
        print(f"model: {model} on {args.device}; {k} LoRA adapters, agents on them in turn")
        print(f"{'mode':<9}{'N':>6}{'hf /s':>10}{'vllm /s':>10}{'vllm/hf':>10}")
        for n in args.sizes:
            requests = [
                replace(r, adapter=names[i % k])
                for i, r in enumerate(round_requests(organism["organism"], n, 0))
            ]
            for mode in ("score", "generate"):
                for backend in (hf, engine):  # warm-up: kernels, prefix cache, adapter slots
                    backend.decide(requests[:8], mode)
                hf_s, vllm_s = (best_seconds(b, mode, requests, args.repeats) for b in (hf, engine))
                print(f"{mode:<9}{n:>6}{n / hf_s:>10.1f}{n / vllm_s:>10.1f}{hf_s / vllm_s:>9.2f}x")
        engine.close()


if __name__ == "__main__":
    try:
        main()
    except InputError as e:
        fail(str(e))
