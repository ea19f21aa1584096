"""The organism's unaligned base and its aligned variants, built once and cached beside it.

`backend=organism backend.align=dpo` deploys the organism's pre-trained stage aligned by
conf/align/dpo.yaml at the default dose of conf/alignment.yaml; `backend.align=none`
deploys the unaligned base itself. A variant lives in the cache under the hash of its
base, recipe, data and seed, so every run and seed of a sweep reuses one build.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path

from agents.alignment.aligned import CARD, align
from agents.organism.build import locked, pretrained_dir

VERSION = 2  # bump when the recipes change what a config produces


def organism_base(organism: Mapping, cache_dir: str | Path) -> Path:
    """The organism's pre-trained, unaligned stage (saved by its build)."""
    return pretrained_dir(organism, cache_dir)


def variant_key(base: Path, recipe: Mapping, data: Mapping, seed: int) -> str:
    """The hash of what a variant is made of: its base (the organism's build, named by its
    config hash), recipe, data and seed."""
    source = f"{base.parent.name}/{base.name}"
    text = json.dumps([VERSION, source, recipe, data, seed], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def aligned_organism(
    organism: Mapping,
    cache_dir: str | Path,
    recipe: Mapping,
    data: Mapping,
    progress: bool | None = None,
) -> Path:
    """The organism's base aligned by `recipe` on `data` (seeded by the organism's seed);
    progress bars unless the Hugging Face libraries' are off (run.progress=false)."""
    base = organism_base(organism, cache_dir)
    seed = organism["seed"]
    root = Path(cache_dir).expanduser()
    path = root / f"aligned-{recipe['method']}-{variant_key(base, recipe, data, seed)}"
    if (path / CARD).is_file():
        return path
    with locked(root / f".{path.name}.lock"):
        if not (path / CARD).is_file():
            if progress is None:
                from transformers.utils import logging

                progress = logging.is_progress_bar_enabled()
            align(recipe, data, base, path, seed=seed, device="cpu", progress=progress)
    return path
