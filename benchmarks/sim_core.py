"""The simulator core with scripted policies: microseconds per agent-round, 1k to 100k agents.

    python benchmarks/sim_core.py [--sizes 1000 10000 100000] [--rounds 30 10 6]
                                  [--backends fixed fermi]

One threshold game over the whole population on a Watts-Strogatz small world (k=10,
p=0.1, scope=population), memory window 5, records written to a temporary directory
as in a real run (no checkpoints). Prints per size and policy: the set-up time (graph,
Mesa network space, agents), microseconds per agent-round over the rounds played (the
first rounds fill the memory window, so use >= 6 rounds for the steady state), and the
share of that time spent outside the policy's `decide` call. Never asserts a time.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sim.build import build_run, compose  # noqa: E402

BACKENDS = {
    "fixed": {"name": "fixed", "p_violate": 0.15},
    "fermi": {"name": "fermi", "beta": 10.0, "p0": 0.15},
    "reward_following": {"name": "reward_following", "p0": 0.15, "sensitivity": 4.0},
}


def config(n: int, rounds: int, backend: str, seed: int) -> dict:
    return compose(
        ["env=threshold", "graph=small_world", f"backend={backend}"],
        {
            "seed": seed,
            "run": {"rounds": rounds},
            "env": {"games": ["price_ring"], "group_size": n, "thresholds": [n // 2]},
            "graph": {"k": 10, "p": 0.1, "scope": "population"},
            "deviants": {"count": 0},
            "backend": BACKENDS[backend],
        },
    )


def measure(n: int, rounds: int, backend: str, seed: int = 0) -> dict:
    """Set-up seconds, microseconds per agent-round and the share outside the policy."""
    cfg = config(n, rounds, backend, seed)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        model = build_run(cfg, Path(tmp))
        setup = time.perf_counter() - start
        start = time.perf_counter()
        for _ in range(rounds):
            model.step()
        played = time.perf_counter() - start
        decide = model.recorder.rounds["decide_s"].sum()
    return {
        "setup_s": setup,
        "us_per_agent_round": 1e6 * played / (n * rounds),
        "outside_policy": 1 - decide / played,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 100000])
    parser.add_argument("--rounds", type=int, nargs="+", default=[30, 10, 6])
    parser.add_argument("--backends", nargs="+", default=["fixed", "fermi"], choices=BACKENDS)
    args = parser.parse_args()
    rounds = args.rounds + args.rounds[-1:] * (len(args.sizes) - len(args.rounds))
    print(f"{'agents':>8} {'policy':>17} {'rounds':>6} {'setup s':>8} {'us/agent-round':>15} "
          f"{'outside policy':>15}")  # fmt: skip
    for n, r in zip(args.sizes, rounds, strict=False):
        for backend in args.backends:
            m = measure(n, r, backend)
            print(
                f"{n:>8} {backend:>17} {r:>6} {m['setup_s']:>8.2f} "
                f"{m['us_per_agent_round']:>15.1f} {m['outside_policy']:>15.0%}",
                flush=True,
            )


if __name__ == "__main__":
    main()
