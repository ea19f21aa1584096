"""backend=organism: build (once, cached) or load the embedded model organism, then serve
it through backend=hf's code, exactly as any other local checkpoint is served.

`backend.align` deploys another stage of the same organism: `none` its pre-trained,
unaligned base, `sft`/`dpo`/`grpo` that base aligned by the recipe (agents.alignment).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from agents.backends.hf import HFBackend
from agents.backends.settings import OrganismConfig
from agents.organism.build import organism_dir
from envs.errors import InputError

ALIGNMENTS = (None, "none", "sft", "dpo", "grpo")


def organism_path(settings: OrganismConfig) -> Path:
    """The checkpoint backend.align names (the organism as built when it names none)."""
    align = settings.align
    if align not in ALIGNMENTS:
        expected = ", ".join("null" if a is None else a for a in ALIGNMENTS)
        raise InputError(f"backend.align: {align!r}; expected one of {expected}")
    cache = cache_root(settings.cache_dir)
    if align is None:
        return organism_dir(settings.organism, cache)
    from agents.alignment.organism import aligned_organism, organism_base

    if align == "none":
        return organism_base(settings.organism, cache)
    recipe = settings.recipes[align]
    return aligned_organism(settings.organism, cache, recipe, settings.align_data)


def cache_root(cache_dir: str) -> Path:
    """backend.cache_dir (TIPLAB_CACHE by default) as a directory, made if missing; named
    in one line when it cannot be one (a file, or a parent that is a file or read-only),
    before minutes of building."""
    root = Path(cache_dir).expanduser()
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise InputError(
            f"backend.cache_dir: {root} cannot be a directory ({e.strerror}); "
            "expected a directory for the organism's builds (or set TIPLAB_CACHE)"
        ) from None
    return root


def organism_backend(settings: OrganismConfig, rng: np.random.Generator) -> HFBackend:
    """The organism as backend=hf serves a checkpoint with its own chat template and
    transformers' attention; settings checked (by their type) before a build of minutes."""
    return HFBackend.serving(settings, rng, organism_path(settings))
