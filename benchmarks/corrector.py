"""guard=corrector: held-out quality per seed and the build against its 2-minute budget.

    python benchmarks/corrector.py [--seeds 0 1 2] [OVERRIDES ...]

Builds (or finds in the cache) the corrector of conf/guard/corrector.yaml for each run seed
(the corrector's own), single-threaded as every build is, and prints from its card the
held-out correction rate on violating answers and false-edit rate on compliant ones, next
to the base's own in Aligner's format, and the build's share of the 120 s budget (never
asserts a time; a cached corrector shows the seconds of the build that made it): the
training alone, and the whole build (the simulator's rounds and the measurements too).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agents.guard.settings import guard_config  # noqa: E402
from sim.build import compose  # noqa: E402
from sim.corrector import CARD, corrector_dir  # noqa: E402

BUDGET_S = 120.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()
    print(
        "seed  triplets  correction (base)  false edits (base)  discrimination"
        "  train/budget  build/budget"
    )
    for seed in args.seeds:
        cfg = compose(["guard=corrector", f"seed={seed}", *args.overrides])
        card = json.loads((corrector_dir(guard_config(cfg["guard"])) / CARD).read_text())
        after, base = card["held_out"], card["held_out_base"]
        print(
            f"{seed:>4}  {card['triplets']:>8}  {after['correction_rate']:.3f} "
            f"({base['correction_rate']:.3f})      {after['false_edit_rate']:.3f} "
            f"({base['false_edit_rate']:.3f})       "
            f"{after['correction_rate'] - after['false_edit_rate']:+.3f}          "
            f"{card['train_seconds'] / BUDGET_S:.2f}          "
            f"{card['build_seconds'] / BUDGET_S:.2f}"
        )


if __name__ == "__main__":
    main()
