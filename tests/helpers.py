"""Helpers the test modules share: the project root and the simulator as a user runs it."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def sim_run(*args, cwd=ROOT, timeout=300) -> subprocess.CompletedProcess:
    """`python -m sim.run ARGS` in a subprocess, output captured, Hydra's short errors."""
    return subprocess.run(
        [sys.executable, "-m", "sim.run", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "HYDRA_FULL_ERROR": "0"},
    )
