"""Decisions per second of the organism: a whole round in one batch vs one request at a time.

ATP's loop asks the model once per agent; tiplab sends the round as one batch. For N
organism agents, with first-round prompts and with a few remembered rounds, both ways are
timed in this process, in score and in generate mode, and the speed-up is printed. Then
the batched round is timed under several micro-batch budgets (`backend.batch_tokens`),
relative to the configured one, to pick this machine's budget. Times depend on the
machine; only the ratios mean something.

    python benchmarks/decide_throughput.py [--sizes 8 64 256] [--history 0 3]
                                           [--budgets 16384 4096 1024] [--budget-agents 64]
                                           [--device cuda] [--model PATH]

--device runs the organism (or the model) there, e.g. on a GPU, where one request is
bound by latency rather than compute. --model PATH serves a local Hugging Face checkpoint
with backend=hf's settings instead of the organism; the prompts stay the organism's.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from time import perf_counter

import numpy as np

from agents.backends import make_backend
from agents.decision import DecisionRequest
from agents.organism.corpus import episodes
from agents.organism.prior import BehaviouralPrior
from envs.errors import InputError
from sim.build import compose
from sim.run import fail


def backend_config(model: Path | None, device: str | None) -> dict:
    """The organism's settings, or backend=hf's serving the checkpoint `model`; on `device`."""
    changed = {"model": {"path": str(model)}} if model else {"model": {}}
    if device:
        changed["model"]["device"] = device
    cfg = compose([f"backend={'hf' if model else 'organism'}"], {"backend": changed})
    return cfg["backend"]


def round_requests(cfg: dict, n: int, history: int) -> list[DecisionRequest]:
    """n agents' prompts with `history` remembered rounds, from the organism's own episodes
    (`cfg`: the organism's config, whose corpus plays the project's environments)."""
    corpus_cfg = {**cfg["corpus"], "episodes": 8 * n, "memory_window": history}
    played = [
        e for e in episodes(corpus_cfg, BehaviouralPrior(**cfg["prior"]), 1) if e.rounds > history
    ]
    return [
        DecisionRequest(i, None, e.messages[: 2 + 3 * history], e.choices)
        for i, e in enumerate(played[:n])
    ]


def seconds(backend, mode: str, requests, batched: bool) -> float:
    """Time to decide all requests in one call, or in one call each."""
    tic = perf_counter()
    if batched:
        backend.decide(requests, mode)
    else:
        for r in requests:
            backend.decide([r], mode)
    return perf_counter() - tic


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[8, 64, 256])
    parser.add_argument(
        "--history", type=int, nargs="+", default=[0, 3], help="remembered rounds per prompt"
    )
    parser.add_argument(
        "--budgets", type=int, nargs="+", default=[16384, 4096, 1024], help="batch_tokens to try"
    )
    parser.add_argument("--budget-agents", type=int, default=64, help="N for the budget table")
    parser.add_argument("--repeats", type=int, default=3, help="best of this many timings")
    parser.add_argument("--device", default=None, help="cpu, cuda, ... (default: the config's)")
    parser.add_argument("--model", type=Path, default=None, help="a local checkpoint (backend=hf)")
    args = parser.parse_args()
    prompts = backend_config(None, None)["organism"]  # what the organism's agents are asked
    cfg = backend_config(args.model, args.device)
    backend = make_backend(cfg, np.random.default_rng(0))
    print(f"model: {args.model or 'the organism'} on {backend.device}")
    warm = round_requests(prompts, 8, 1)
    for mode in ("score", "generate"):
        backend.decide(warm, mode)
    speed_ups(backend, prompts, args.sizes, args.history, args.repeats)
    budgets(backend, prompts, args.budgets, args.budget_agents, args.history, args.repeats)


def speed_ups(backend, prompts: dict, sizes: list[int], histories: list[int], repeats: int) -> None:
    """Decisions per second of a batched round and of one call per agent, side by side."""
    print("decisions per second, a round in one batch vs one call per agent")
    print(f"{'mode':<9}{'history':>8}{'N':>6}{'batched':>10}{'one by one':>12}{'speed-up':>10}")
    for mode in ("score", "generate"):
        for history in histories:
            for n in sizes:
                requests = round_requests(prompts, n, history)
                batched, single = (
                    n / min(seconds(backend, mode, requests, way) for _ in range(repeats))
                    for way in (True, False)
                )
                print(
                    f"{mode:<9}{history:>8}{n:>6}{batched:>10.1f}{single:>12.1f}"
                    f"{batched / single:>9.1f}x"
                )


def budgets(
    backend, prompts: dict, budgets: list[int], n: int, histories: list[int], repeats: int
) -> None:
    """Speed of a batched round under each micro-batch budget, relative to the configured one.

    The budgets take turns within each repeat, so a noisy spell slows them alike.
    """
    configured = backend.batch_tokens
    tried = [configured, *budgets]
    print(f"\nbatched round of {n} agents under each batch_tokens, speed relative to {configured}")
    print(f"{'mode':<9}{'history':>8}" + "".join(f"{b:>10}" for b in budgets))
    for mode in ("score", "generate"):
        for history in histories:
            requests = round_requests(prompts, n, history)
            best = dict.fromkeys(tried, float("inf"))
            for _ in range(repeats):
                for budget in tried:
                    backend.batch_tokens = budget
                    best[budget] = min(best[budget], seconds(backend, mode, requests, True))
            ratios = "".join(f"{best[configured] / best[b]:>9.2f}x" for b in budgets)
            print(f"{mode:<9}{history:>8}{ratios}")
    backend.batch_tokens = configured


if __name__ == "__main__":
    try:
        main()
    except InputError as e:
        fail(str(e))
