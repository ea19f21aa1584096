"""The analysis notebooks run top to bottom on a small run and a small sweep.

The inputs come from the real entry point (`python -m sim.run` with the scripted
reward_following backend); if that fails (sim unavailable or broken), from the test
fixtures, so that the notebooks are still exercised.
"""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

import nbformat
import pytest
from analysis_fixtures import synthetic_decisions, write_run
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "analysis" / "notebooks"


def sim_run(args: list[str]) -> bool:
    """Run `python -m sim.run ARGS`; True when it succeeded."""
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "sim.run", *args, "run.progress=false"],
            cwd=ROOT, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return False
    return proc.returncode == 0


@pytest.fixture(scope="module")
def small_run(tmp_path_factory) -> tuple[Path, str]:
    run = tmp_path_factory.mktemp("nb") / "run"
    args = ["experiment=atp_ma", "run.rounds=3", "backend=reward_following",
            f"hydra.run.dir={run}"]  # fmt: skip
    if sim_run(args) and (run / "manifest.json").is_file():
        return run, "sim.run"
    warnings.warn("sim.run failed: the single-run notebook runs on the fixture", stacklevel=1)
    write_run(run, synthetic_decisions(n_agents=8, n_rounds=6, tip_round=3))
    return run, "fixture"


@pytest.fixture(scope="module")
def small_sweep(tmp_path_factory) -> tuple[Path, str]:
    sweep = tmp_path_factory.mktemp("nb") / "sweep"
    args = ["-m", "experiment=atp_ma", "run.rounds=3", "backend=reward_following",
            "backend.p0=0.1,0.5", "agents.memory_window=0,5", "run.report=false",
            f"hydra.sweep.dir={sweep}"]  # fmt: skip
    if sim_run(args) and len(list(sweep.glob("*/manifest.json"))) == 4:
        return sweep, "sim.run"
    for i, (p0, mw) in enumerate([(0.1, 0), (0.1, 5), (0.5, 0), (0.5, 5)]):
        d = synthetic_decisions(n_agents=6, n_rounds=6, tip_round=2 if p0 > 0.2 else None,
                                seed=i, run_id=f"r{i}")  # fmt: skip
        write_run(sweep / str(i), d, {"backend.p0": p0, "agents.memory_window": mw})
    warnings.warn("sim.run -m failed: the sweep notebook runs on fixtures", stacklevel=1)
    return sweep, "fixture"


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
    run, source = small_run
    nb = execute("single_run.ipynb", {"TIPLAB_RUN": str(run)}, monkeypatch)
    outs = outputs(nb)
    assert not [o for o in outs if o.get("output_type") == "error"]
    images = [o for o in outs if "image/png" in o.get("data", {})]
    assert len(images) >= 4, f"figures rendered from a {source} run"
    assert any(str(run) in "".join(o.get("text", "")) for o in outs)


def test_sweep_notebook(small_sweep, monkeypatch):
    sweep, source = small_sweep
    nb = execute("sweep.ipynb", {"TIPLAB_SWEEP": str(sweep)}, monkeypatch)
    outs = outputs(nb)
    assert not [o for o in outs if o.get("output_type") == "error"]
    text = "".join(o.get("text", "") for o in outs)
    assert "backend.p0" in text and "agents.memory_window" in text, source
    images = [o for o in outs if "image/png" in o.get("data", {})]
    assert len(images) >= 4


def test_notebooks_are_stored_without_outputs():
    for name in ("single_run.ipynb", "sweep.ipynb"):
        nb = nbformat.read(NOTEBOOKS / name, as_version=4)
        nbformat.validate(nb)
        assert not outputs(nb)
