"""Experience: what each adapter owner lived through since its last update."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from agents.decision import DecisionRequest


@dataclass(frozen=True)
class Sample:
    """One valid decision and what it earned, with the exact request it was made on."""

    owner: str
    request: DecisionRequest
    violated: bool
    reward: float
    p_violate: float | None
    round: int
    scenario: str
    preferred: int | None = None  # a guard's correction (0 comply, 1 violate) when it differs


class ExperienceBuffer:
    """Samples by owner, kept for `window` rounds (the group an advantage is relative to)."""

    def __init__(self, window: int):
        self.window = window
        self.samples: dict[str, list[Sample]] = defaultdict(list)

    def add(self, sample: Sample) -> None:
        self.samples[sample.owner].append(sample)

    def recent(self, owner: str, now: int) -> list[Sample]:
        """The owner's samples from the last `window` rounds up to round `now`."""
        kept = [s for s in self.samples[owner] if s.round > now - self.window]
        self.samples[owner] = kept
        return kept

    def state_dict(self) -> dict:
        return {"samples": dict(self.samples)}

    def load_state_dict(self, state: dict) -> None:
        self.samples = defaultdict(list, state["samples"])
