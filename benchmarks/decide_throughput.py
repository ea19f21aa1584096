"""Decisions per second of the organism: a whole round in one batch vs one request at a time.

ATP's loop asks the model once per agent; tiplab sends the round as one batch. For N
organism agents, with first-round prompts and with a few remembered rounds, both ways are
timed in this process, in score and in generate mode, and the speed-up is printed. Times
depend on the machine; only the ratios mean something.

    python benchmarks/decide_throughput.py [--sizes 8 64 256] [--history 0 3]
"""

from __future__ import annotations

import argparse
from pathlib import Path
from time import perf_counter

import numpy as np
from omegaconf import OmegaConf

from agents.backends import make_backend
from agents.decision import DecisionRequest
from agents.organism.corpus import episodes
from agents.organism.prior import BehaviouralPrior

CONF = Path(__file__).resolve().parents[1] / "conf" / "backend" / "organism.yaml"


def round_requests(cfg: dict, n: int, history: int) -> list[DecisionRequest]:
    """n agents' prompts with `history` remembered rounds, from the organism's own episodes."""
    corpus_cfg = {**cfg["corpus"], "episodes": 8 * n, "memory_window": history}
    played = [
        e for e in episodes(corpus_cfg, BehaviouralPrior(**cfg["prior"]), 1) if e.rounds > history
    ]
    return [
        DecisionRequest(i, None, e.messages[: 2 + 3 * history], e.choices)
        for i, e in enumerate(played[:n])
    ]


def rate(decide, requests, batched: bool, repeats: int = 3) -> float:
    """Decisions per second, deciding all requests at once or one call each (best of repeats)."""
    best = float("inf")
    for _ in range(repeats):
        tic = perf_counter()
        if batched:
            decide(requests)
        else:
            for r in requests:
                decide([r])
        best = min(best, perf_counter() - tic)
    return len(requests) / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[8, 64, 256])
    parser.add_argument(
        "--history", type=int, nargs="+", default=[0, 3], help="remembered rounds per prompt"
    )
    args = parser.parse_args()
    cfg = OmegaConf.to_container(OmegaConf.load(CONF), resolve=True)
    backend = make_backend(cfg, np.random.default_rng(0))
    warm = round_requests(cfg["organism"], 8, 1)
    for mode in ("score", "generate"):
        backend.decide(warm, mode)
    print("organism backend: decisions per second, a round in one batch vs one call per agent")
    print(f"{'mode':<9}{'history':>8}{'N':>6}{'batched':>10}{'one by one':>12}{'speed-up':>10}")
    for mode in ("score", "generate"):
        for history in args.history:
            for n in args.sizes:
                requests = round_requests(cfg["organism"], n, history)

                def decide(reqs, mode=mode):
                    return backend.decide(reqs, mode)

                batched, single = rate(decide, requests, True), rate(decide, requests, False)
                print(
                    f"{mode:<9}{history:>8}{n:>6}{batched:>10.1f}{single:>12.1f}"
                    f"{batched / single:>9.1f}x"
                )


if __name__ == "__main__":
    main()
