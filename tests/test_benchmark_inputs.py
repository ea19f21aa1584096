"""The organism benchmarks refuse bad input as sim.run does: one `error:` line, exit 2,
before any organism is built or any run is played."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from helpers import ROOT, refused_in_one_line

from agents.organism.probes import ATP_FILES, atp_dir

HAS_ATP = all((atp_dir() / name).is_file() for name in ATP_FILES.values())


def benchmark(script: str, *args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **env},
    )


@pytest.mark.parametrize("script", ["organism_generalisation.py", "organism_findings.py"])
def test_an_unknown_override_is_one_line(script, tmp_path):
    done = benchmark(
        script, "backend.organism.nosuch=1", "--seeds", "0", TIPLAB_CACHE=str(tmp_path)
    )
    refused_in_one_line(done, "error: config: Could not override 'backend.organism.nosuch'")
    assert not any(tmp_path.iterdir())  # nothing built


@pytest.mark.parametrize(
    "script",
    [
        "organism_generalisation.py",
        pytest.param(
            "organism_findings.py",
            marks=pytest.mark.skipif(not HAS_ATP, reason="ATP's files (../shared/atp) absent"),
        ),
    ],
)
def test_a_bad_organism_setting_is_one_line(script, tmp_path):
    done = benchmark(
        script,
        "backend.organism.architecture.head_dim=16",
        "--seeds",
        "0",
        TIPLAB_CACHE=str(tmp_path),
    )
    refused_in_one_line(done, "error: backend.organism.architecture.head_dim: 16")
    assert not any(tmp_path.iterdir())


def test_findings_without_atp_data_is_one_line(tmp_path):
    done = benchmark(
        "organism_findings.py", "--seeds", "0", TIPLAB_ATP=str(tmp_path), TIPLAB_CACHE=str(tmp_path)
    )
    refused_in_one_line(done, f"error: {tmp_path}: no sa_question_64.json, ma_templates.json")
    assert not any(tmp_path.iterdir())
