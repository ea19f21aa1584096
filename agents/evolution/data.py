"""From experience to training examples, one builder per objective.

Every example is a prompt (the request an agent decided on) and the index of a label
(0 = comply, 1 = violate); objectives work on the pair of label log-probabilities.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from agents.evolution.buffer import Sample


@dataclass(frozen=True)
class Example:
    sample: Sample
    label: int  # the action taken (pg, sft) or the preferred label (dpo)
    weight: float  # advantage (pg), 1 (sft, dpo)


def group_advantages(rewards: Sequence[float], eps: float = 1e-6) -> np.ndarray:
    """GRPO's advantages: (r - mean r) / (std r + eps) within the group; 0 if all equal."""
    r = np.asarray(rewards, dtype=float)
    if r.size == 0:
        return r
    std = r.std()
    return np.zeros_like(r) if std < eps else (r - r.mean()) / (std + eps)


def pg_examples(samples: Sequence[Sample]) -> list[Example]:
    """Every sample, its action weighted by its advantage within the owner's group."""
    adv = group_advantages([s.reward for s in samples])
    return [
        Example(s, int(s.violated), float(a)) for s, a in zip(samples, adv, strict=True) if a != 0.0
    ]


def dpo_examples(samples: Sequence[Sample]) -> list[Example]:
    """Preference pairs on the same prompt: the label that earned more there is preferred.

    Per scenario, when both labels were taken, the one with the higher mean reward is
    preferred on each of that scenario's prompts (each prompt: chosen vs the other label).
    """
    by_scenario: dict[str, dict[bool, list[float]]] = defaultdict(lambda: defaultdict(list))
    for s in samples:
        by_scenario[s.scenario][s.violated].append(s.reward)
    preferred = {
        sc: int(np.mean(r[True]) > np.mean(r[False]))
        for sc, r in by_scenario.items()
        if r[True] and r[False] and np.mean(r[True]) != np.mean(r[False])
    }
    return [Example(s, preferred[s.scenario], 1.0) for s in samples if s.scenario in preferred]


def sft_examples(samples: Sequence[Sample], top_q: float) -> list[Example]:
    """Rejection sampling: the decisions whose reward is in the owner's top `top_q` share."""
    if not samples:
        return []
    cut = np.quantile([s.reward for s in samples], 1.0 - top_q)
    return [Example(s, int(s.violated), 1.0) for s in samples if s.reward >= cut]


def correction_examples(samples: Sequence[Sample]) -> list[Example]:
    """A guard at position=training: each corrected decision as the pair (correction,
    proposal), the correction's label preferred, on top of the objective's own examples."""
    return [Example(s, s.preferred, 1.0) for s in samples if s.preferred is not None]
