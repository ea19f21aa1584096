"""Shared fixtures. The organism is built at most once per session: it lives in the cache
(TIPLAB_CACHE, default ~/.cache/tiplab) that every run and subprocess of the session reuses."""

from pathlib import Path

import pytest
from omegaconf import OmegaConf

from tests.helpers import ROOT


def backend_config(name: str) -> dict:
    """conf/backend/<name>.yaml resolved, as the simulator hands it to the backend factory."""
    cfg = OmegaConf.load(ROOT / "conf" / "backend" / f"{name}.yaml")
    return OmegaConf.to_container(cfg, resolve=True)


@pytest.fixture(scope="session")
def organism_config() -> dict:
    return backend_config("organism")


@pytest.fixture(scope="session")
def organism_path(organism_config) -> Path:
    from agents.organism.build import organism_dir

    return organism_dir(organism_config["organism"], organism_config["cache_dir"])
