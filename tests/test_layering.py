"""Dependencies point one way: sim never imports analysis, analysis never sim or agents."""

from __future__ import annotations

import subprocess
import sys

import pytest


def imported_after(modules: list[str]) -> set[str]:
    """Top-level packages of ours in sys.modules after importing `modules` afresh."""
    code = (
        "import importlib, sys\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        "print(' '.join(sorted({n.split('.')[0] for n in sys.modules})))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(out.stdout.split()) & {"sim", "agents", "envs", "analysis"}


def test_sim_does_not_import_analysis():
    modules = ["sim.run", "sim.recorder", "sim.build", "sim.view", "sim.cli"]
    assert "analysis" not in imported_after(modules)


@pytest.mark.parametrize(
    "module",
    [
        "analysis.report",
        "analysis.callbacks",
        "analysis.sweeps",
        "analysis.load",
        "analysis.view.app",
    ],
)
def test_analysis_reads_only_the_record_schema(module):
    assert imported_after([module]) <= {"analysis", "envs"}
