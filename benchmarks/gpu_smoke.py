"""GPU smoke benchmark: backend=vllm on a real checkpoint, 2 rounds of atp_ma, 2 LoRA versions.

    python benchmarks/gpu_smoke.py /models/Qwen3-8B [--rounds 2] [--max-tokens 256]

Needs a CUDA GPU and the vLLM environment (README, "GPU environment"). Eight agents play
one threshold game (price_ring, k=4); agents 0-3 use LoRA version 1 and agents 4-7
version 2, both random rank-8 adapters on q_proj and v_proj written for the checkpoint's
shapes. It plays the rounds in score mode, then in generate mode, then puts the engine
to sleep and wakes it up (which checks each adapter's answer to a fixed prompt), and
prints decisions and tokens per second. Without a checkpoint argument, or on a machine
without vLLM or a GPU, it says so and exits 0, so `make bench` runs everywhere.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from time import perf_counter

import polars as pl
import torch
from safetensors.torch import save_file

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agents.backends import make_backend  # noqa: E402
from envs.errors import InputError  # noqa: E402
from sim.build import build_run, compose, seeds  # noqa: E402

OVERRIDES = ["experiment=atp_ma", "env.games=[price_ring]", "env.thresholds=[4]", "backend=vllm"]
ADAPTERS = ("smoke-v1", "smoke-v2")
RANK = 8


def random_lora(checkpoint: Path, out: Path, seed: int) -> Path:
    """A PEFT-layout rank-8 LoRA on q_proj/v_proj with random weights, sized from config.json."""
    cfg = json.loads((checkpoint / "config.json").read_text())
    hidden, heads = cfg["hidden_size"], cfg["num_attention_heads"]
    head_dim = cfg.get("head_dim") or hidden // heads
    width = {"q_proj": heads * head_dim, "v_proj": cfg.get("num_key_value_heads", heads) * head_dim}
    gen = torch.Generator().manual_seed(seed)
    tensors = {}
    for layer in range(cfg["num_hidden_layers"]):
        for module, out_features in width.items():
            key = f"base_model.model.model.layers.{layer}.self_attn.{module}"
            tensors[f"{key}.lora_A.weight"] = torch.randn(RANK, hidden, generator=gen) * 0.01
            tensors[f"{key}.lora_B.weight"] = torch.randn(out_features, RANK, generator=gen) * 0.01
    out.mkdir(parents=True)
    weights = {k: v.to(torch.bfloat16).contiguous() for k, v in tensors.items()}
    save_file(weights, out / "adapter_model.safetensors")
    (out / "adapter_config.json").write_text(
        json.dumps(
            {
                "peft_type": "LORA",
                "base_model_name_or_path": str(checkpoint),
                "r": RANK,
                "lora_alpha": 2 * RANK,
                "lora_dropout": 0.0,
                "target_modules": list(width),
                "bias": "none",
                "task_type": "CAUSAL_LM",
            }
        )
    )
    return out


def experiment(checkpoint: Path, rounds: int, max_tokens: int) -> dict:
    """atp_ma with one 8-player game and backend=vllm, composed from conf/ like a run."""
    overrides = [*OVERRIDES, f"backend.model={checkpoint}", f"run.rounds={rounds}"]
    overrides += [f"backend.generate.max_new_tokens={max_tokens}", f"backend.max_lora_rank={RANK}"]
    return compose(overrides)


def play(cfg: dict, backend, mode: str, out: Path) -> list[tuple[int, float, float]]:
    """Plays cfg's rounds in `mode`, agents 0-3 on one adapter and 4-7 on the other.

    Returns per round: decisions and tokens (prompt and completion) per second of decide.
    """
    model = build_run({**cfg, "decide": {"mode": mode}}, out, backend=backend)
    recorder = model.recorder
    for agent in model.population:
        agent.adapter = ADAPTERS[agent.index * len(ADAPTERS) // len(model.population)]
    rows = []
    for t in range(cfg["run"]["rounds"]):
        model.step()
        decisions = pl.read_parquet(recorder.decisions_dir / f"part-{t:05d}.parquet")
        seconds = recorder.rounds["decide_s"][-1]
        tokens = decisions["prompt_tokens"].sum() + decisions["completion_tokens"].sum()
        rows.append((t, decisions.height / seconds, tokens / seconds))
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", nargs="?", type=Path, help="local checkpoint directory")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--max-tokens", type=int, default=256)
    args = parser.parse_args()
    if args.checkpoint is None:
        print("gpu_smoke: skipped (no checkpoint given; see the docstring)")
        return 0
    cfg = experiment(args.checkpoint.resolve(), args.rounds, args.max_tokens)
    try:
        tic = perf_counter()
        backend = make_backend(cfg["backend"], seeds(cfg["seed"])["policy"])
    except InputError as e:
        print(f"gpu_smoke: skipped ({e})")
        return 0
    print(f"engine ready in {perf_counter() - tic:.1f} s")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        backend.load_adapters(
            {a: random_lora(args.checkpoint, tmp / a, seed) for seed, a in enumerate(ADAPTERS)}
        )
        print(f"{'mode':<10}{'round':>6}{'decisions/s':>14}{'tokens/s':>12}")
        for mode in ("score", "generate"):
            for t, decisions, tokens in play(cfg, backend, mode, tmp / mode):
                print(f"{mode:<10}{t:>6}{decisions:>14.1f}{tokens:>12.0f}")
        tic = perf_counter()
        backend.sleep()
        backend.wake_up()
        print(f"sleep, wake_up and the adapters' check: {perf_counter() - tic:.1f} s")
        backend.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
