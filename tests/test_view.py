"""The live view in a real browser: `tiplab view` on loopback, driven in headless Chromium.

Needs Debian's chromium and chromium-driver (.ci/run installs them); skipped without.
Screenshots are kept in artefacts/view/ (git-ignored), or $TIPLAB_ARTEFACTS.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path

import polars as pl
import pytest

pytest.importorskip("selenium", reason="selenium is in the dev extra")
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

from tests.browser import (  # noqa: E402
    CHROMIUM,
    DRIVER,
    ROOT,
    button,
    figures,
    text,
    view_server,
)
from tests.helpers import chromium_driver  # noqa: E402

pytestmark = pytest.mark.skipif(
    not (CHROMIUM and DRIVER),
    reason="needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)",
)
ARTEFACTS = Path(os.environ.get("TIPLAB_ARTEFACTS", ROOT / "artefacts")) / "view"


@pytest.fixture
def view(tmp_path):
    """Starts `tiplab view ARGS`; returns its URL. Stopped after the test."""
    with ExitStack() as servers:
        yield lambda *args: servers.enter_context(view_server(*args, log=tmp_path / "view.log"))


@pytest.fixture
def browser(tmp_path):
    driver = chromium_driver(tmp_path / "chromium")
    yield driver
    driver.quit()


def screenshot(browser, name: str) -> None:
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(ARTEFACTS / f"{name}.png"))


def test_driving_a_model_steps_it_and_draws_its_records(view, browser, tmp_path):
    out = tmp_path / "driven"
    url = view("backend=reward_following", "run.rounds=4", f"--out={out}")
    browser.get(url)
    wait = WebDriverWait(browser, 120)
    wait.until(lambda b: "Step: 0" in text(b))
    assert "temptation" in text(browser) and "supervision schedule" in text(browser)
    for step in (1, 2):
        button(browser, "STEP").click()
        wait.until(lambda b, step=step: f"Step: {step}" in text(b))
    wait.until(lambda b: figures(b) >= 5)  # graph, curves, p_violate, updates, guard
    screenshot(browser, "driven")
    (run,) = out.iterdir()
    rounds = pl.read_parquet(run / "rounds.parquet")
    assert rounds.get_column("round").to_list() == [0, 1]
    assert rounds.get_column("n_agents").to_list() == [64, 64]
    assert (run / "graph.parquet").is_file()

    # another supervision schedule, then Reset: a new model (a new run) plays under it
    browser.find_element(By.XPATH, "//*[text()='supervision schedule']/..").click()
    wait.until(lambda b: b.find_elements(By.XPATH, "//*[text()='alternating']"))
    browser.find_elements(By.XPATH, "//*[text()='alternating']")[-1].click()
    button(browser, "RESET").click()
    wait.until(lambda b: "Step: 0" in text(b))
    button(browser, "STEP").click()
    wait.until(lambda b: "Step: 1" in text(b))
    (again,) = set(out.iterdir()) - {run}
    played = pl.read_parquet(again / "decisions.parquet")
    assert played.get_column("schedule").unique().to_list() == ["alternating"]
    assert played.get_column("supervision").unique().to_list() == ["supervised"]  # round 0


def test_following_a_running_run_shows_its_rounds_as_they_are_recorded(view, browser, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    browser.get(view(str(run)))
    wait = WebDriverWait(browser, 120)
    wait.until(lambda b: "waiting for a run" in text(b))
    # 10,000 agents: the graph panel draws a sample; a round takes about a second here
    sim = subprocess.Popen(
        [sys.executable, "-m", "sim.run", "experiment=cascade", "env.group_size=10000",
         "env.thresholds=[5000]", "deviants.count=20", "run.rounds=12", "run.report=false",
         f"hydra.run.dir={run}"],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    seen = []
    deadline = time.monotonic() + 300
    while "12 of 12 rounds played (complete)" not in seen and time.monotonic() < deadline:
        line = next((t for t in text(browser).splitlines() if "rounds played" in t), None)
        if line and line not in seen:
            seen.append(line)
            if line.startswith("4 of 12"):
                wait.until(lambda b: figures(b) >= 5)
                screenshot(browser, "following")
        time.sleep(0.2)
    assert sim.wait(timeout=120) == 0, sim.stderr.read()
    assert seen[-1] == "12 of 12 rounds played (complete)", seen
    played = [int(line.split()[0]) for line in seen]
    assert played == sorted(played) and set(played) - {0, 12}, seen  # rounds as they came
    wait.until(lambda b: figures(b) >= 5)
    screenshot(browser, "followed")
