"""Alignment recipes: SFT, DPO and GRPO through TRL on any local checkpoint
(agents.alignment.aligned.align), and the organism's aligned variants
(agents.alignment.organism)."""

from agents.alignment.aligned import align
from agents.alignment.settings import METHODS

__all__ = ["METHODS", "align"]
