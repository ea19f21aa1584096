"""The analysis notebooks run top to bottom on a small run and a small sweep.

The inputs come from the real entry point (`python -m sim.run experiment=atp_ma` with the
scripted reward_following backend), so the notebooks split by the preset's condition
(threshold) as a user's would.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from tests.helpers import sim_run

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "analysis" / "notebooks"


def run_ok(args: list[str]) -> None:
    """`python -m sim.run ARGS` succeeds (scripted policy, a few seconds)."""
    out = sim_run(*args, "run.progress=false")
    assert out.returncode == 0, out.stderr


@pytest.fixture(scope="module")
def small_run(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("nb") / "run"
    run_ok(["experiment=atp_ma", "run.rounds=3", "backend=reward_following",
             f"hydra.run.dir={run}"])  # fmt: skip
    return run


@pytest.fixture(scope="module")
def small_sweep(tmp_path_factory) -> Path:
    sweep = tmp_path_factory.mktemp("nb") / "sweep"
    run_ok(["-m", "experiment=atp_ma", "run.rounds=3", "backend=reward_following",
             "backend.p0=0.1,0.5", "agents.memory_window=1,5", "run.report=false",
             f"hydra.sweep.dir={sweep}"])  # fmt: skip
    return sweep


def execute(name: str, env: dict[str, str], monkeypatch) -> nbformat.NotebookNode:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    client = NotebookClient(nb, timeout=120, kernel_name="python3",
                            resources={"metadata": {"path": str(NOTEBOOKS)}})  # fmt: skip
    client.execute()
    return nb


def outputs(nb: nbformat.NotebookNode) -> list[dict]:
    return [o for cell in nb.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]


def test_single_run_notebook(small_run, monkeypatch):
    nb = execute("single_run.ipynb", {"TIPLAB_RUN": str(small_run)}, monkeypatch)
    outs = outputs(nb)
    assert not [o for o in outs if o.get("output_type") == "error"]
    images = [o for o in outs if "image/png" in o.get("data", {})]
    assert len(images) >= 5
    text = "".join(o.get("text", "") for o in outs)
    assert str(small_run) in text
    assert "compared by: ['threshold'] | interval unit: group" in text


def test_sweep_notebook(small_sweep, monkeypatch):
    nb = execute("sweep.ipynb", {"TIPLAB_SWEEP": str(small_sweep)}, monkeypatch)
    outs = outputs(nb)
    assert not [o for o in outs if o.get("output_type") == "error"]
    text = "".join(o.get("text", "") for o in outs)
    assert "backend.p0" in text and "agents.memory_window" in text
    assert "conditions: ['threshold']" in text
    images = [o for o in outs if "image/png" in o.get("data", {})]
    assert len(images) >= 4


def test_notebooks_are_stored_without_outputs():
    for name in ("single_run.ipynb", "sweep.ipynb"):
        nb = nbformat.read(NOTEBOOKS / name, as_version=4)
        nbformat.validate(nb)
        assert not outputs(nb)
