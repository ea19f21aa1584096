"""Shared fixtures. The organism is built at most once per session: it lives in the cache
(TIPLAB_CACHE, default ~/.cache/tiplab) that every run and subprocess of the session reuses."""

from pathlib import Path

import pytest


def backend_config(name: str, **changed) -> dict:
    """conf/backend/<name>.yaml composed and resolved, as the simulator hands it to the
    backend factory, with the `changed` settings (a nested mapping is merged key by key)."""
    from sim.build import compose

    return compose([f"backend={name}"], {"backend": changed})["backend"]


@pytest.fixture(scope="session")
def organism_config() -> dict:
    return backend_config("organism")


@pytest.fixture(scope="session")
def organism_path(organism_config) -> Path:
    from agents.organism.build import organism_dir

    return organism_dir(organism_config["organism"], organism_config["cache_dir"])
