"""How far the organism's alignment carries beyond its corpus, over organism seeds.

Builds (or loads from the cache) the organism at each seed and prints, from its
organism.json, the mean P(violate) of first rounds it never trained on, before and after
alignment (agents/organism/probes.py: the generator's training and held-out families, and
ATP's files where they lie), how far renaming a held-out scenario's labels moves it, how
much of its probability the renamed scenario's answer puts on the two labels offered (1 for
an organism that copies them), how closely its P(violate) after remembered rounds follows
the prior that wrote its corpus (`following`: correlation on fresh episodes; `relabel.`: on
the same episodes given two random labels), and the mean over seeds. Targets, from the
organism issue: 0.15 +/- 0.05 after alignment on every set, a rename shift of at most 0.05.

    python benchmarks/organism_generalisation.py [OVERRIDE ...] [--seeds 0 1 2]

OVERRIDEs are Hydra overrides of the organism's recipe, as for sim.run, e.g.
backend.organism.corpus.relabelled=0.5 (README, "The organism").

Each seed not yet cached is a full build (about 3 minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from agents.organism.build import META, organism_dir
from envs.errors import InputError
from sim.build import CONF, compose
from sim.overrides import check_overrides
from sim.run import fail

TARGET, TOLERANCE, RENAME_SHIFT = 0.15, 0.05, 0.05
FOLLOWING = {"reward_following": "following", "reward_following_relabelled": "relabel."}


def measured(seed: int, overrides: list[str]) -> dict:
    """organism.json of the organism built at `seed` (building it if needed)."""
    values = {"backend": {"organism": {"seed": seed}}}
    backend = compose(["backend=organism", *overrides], values)["backend"]
    path = organism_dir(backend["organism"], backend["cache_dir"])
    return json.loads((path / META).read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument(
        "overrides", nargs="*", help="Hydra overrides, e.g. backend.organism.corpus.relabelled=0.5"
    )
    args = parser.parse_args()
    check_overrides(str(CONF), "config", args.overrides)
    meta = {seed: measured(seed, args.overrides) for seed in args.seeds}
    found = {seed: m["unseen"] for seed, m in meta.items()}
    sets = list(found[args.seeds[0]]["after_alignment"])
    seeds = " / ".join(str(s) for s in args.seeds)
    print(f"mean P(violate), first rounds never trained on, seeds {seeds}; target {TARGET}")
    print(f"{'set':<20}{'before':>24}{'after':>24}{'mean after':>12}{'within':>8}")
    for name in sets:
        before, after = (
            [found[s][stage][name] for s in args.seeds]
            for stage in ("before_alignment", "after_alignment")
        )
        within = abs(np.mean(after) - TARGET) <= TOLERANCE
        cells = (" / ".join(f"{v:.2f}" for v in values) for values in (before, after))
        print(f"{name:<20}{next(cells):>24}{next(cells):>24}{np.mean(after):>12.3f}{within!s:>8}")
    for paradigm in found[args.seeds[0]]["rename_shift"]:
        shift = [found[s]["rename_shift"][paradigm] for s in args.seeds]
        values = " / ".join(f"{v:.2f}" for v in shift)
        print(
            f"rename shift {paradigm:<9}{values:>24}{'':>24}{np.mean(shift):>12.3f}"
            f"{np.mean(shift) <= RENAME_SHIFT!s:>8}"
        )
    for paradigm in found[args.seeds[0]]["offered_when_renamed"]:
        offered = [found[s]["offered_when_renamed"][paradigm] for s in args.seeds]
        values = " / ".join(f"{v:.2f}" for v in offered)
        print(f"offered {paradigm:<14}{values:>24}{'':>24}{np.mean(offered):>12.3f}")
    for labels, row in FOLLOWING.items():
        following = {s: meta[s][labels] for s in args.seeds}
        for paradigm in following[args.seeds[0]]["after_alignment"]:
            before, after = (
                [np.float64(following[s][stage][paradigm]["correlation"]) for s in args.seeds]
                for stage in ("before_alignment", "after_alignment")
            )
            cells = (" / ".join(f"{v:.2f}" for v in values) for values in (before, after))
            name = f"{row} {paradigm}"
            print(f"{name:<20}{next(cells):>24}{next(cells):>24}{np.mean(after):>12.3f}")


if __name__ == "__main__":
    try:
        main()
    except InputError as e:
        fail(str(e))
