"""Helpers the test modules share: the project root, the simulator as a user runs it,
label scores computed by hand, and a device that runs out of memory."""

import contextlib
import io
import os
import shutil
import subprocess
import sys
from pathlib import Path

import torch

from agents.parsing import decision_json

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


def sim_main(*args) -> subprocess.CompletedProcess:
    """`python -m sim.run ARGS` in this process (sim.run.main, output captured), for the many
    bad-input cases where a fresh interpreter per case would cost more than the case."""
    from sim.run import main

    out, err, argv = io.StringIO(), io.StringIO(), sys.argv
    sys.argv = ["sim.run", *map(str, args)]
    code = 0
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            main()
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    finally:
        sys.argv = argv
    return subprocess.CompletedProcess(args, code, out.getvalue(), err.getvalue())


def hand_logprob(model, tokenizer, prompt: str, label: str, other: str) -> float:
    """log P(answer tail | the prefix both answers share) after the rendered `prompt`, from
    one plain forward pass of the whole text and a log-softmax."""
    ids, other_ids = (
        tokenizer(prompt + decision_json(x), add_special_tokens=False)["input_ids"]
        for x in (label, other)
    )
    start = next(i for i, (a, b) in enumerate(zip(ids, other_ids, strict=False)) if a != b)
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0].double()
    logp = logits.log_softmax(-1)
    return float(sum(logp[t - 1, ids[t]] for t in range(start, len(ids))))


def with_room_for(module: torch.nn.Module, rows: int) -> torch.nn.Module:
    """`module` raises torch's out-of-memory error on a forward of more than `rows` rows,
    as a device with room for `rows` rows would (this CPU cannot run out on demand)."""

    def check(module, args, kwargs):
        if kwargs["input_ids"].shape[0] > rows:
            raise torch.OutOfMemoryError(f"no room for {kwargs['input_ids'].shape[0]} rows")

    module.register_forward_pre_hook(check, with_kwargs=True)
    return module


CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1400,1000",
]


def chromium_driver(profile: Path):
    """Debian's headless chromium under selenium, with its own profile directory."""
    from selenium import webdriver

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for flag in [*CHROMIUM_FLAGS, f"--user-data-dir={profile}"]:
        options.add_argument(flag)
    return webdriver.Chrome(
        service=webdriver.ChromeService(shutil.which("chromedriver")), options=options
    )
