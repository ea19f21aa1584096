"""backend=organism: build (once, cached) or load the embedded model organism, then serve
it through backend=hf's code, exactly as any other local checkpoint is served."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from agents.backends.hf import HFBackend
from agents.organism.build import organism_dir


def organism_backend(cfg: Mapping, rng: np.random.Generator) -> HFBackend:
    path = organism_dir(cfg["organism"], cfg["cache_dir"])
    model = {**(cfg.get("model") or {}), "path": str(path)}
    return HFBackend.from_config({**cfg, "model": model}, rng)
