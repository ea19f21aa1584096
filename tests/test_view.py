"""The live view in a real browser: `tiplab view` on loopback, driven in headless Chromium.

Needs Debian's chromium and chromium-driver (.ci/run installs them); skipped without.
Screenshots are kept in artefacts/view/ (git-ignored), or $TIPLAB_ARTEFACTS.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import polars as pl
import pytest

from tests.helpers import ROOT

CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is in the dev extra")
pytestmark = pytest.mark.skipif(
    not (CHROMIUM and DRIVER),
    reason="needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)",
)
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

ARTEFACTS = Path(os.environ.get("TIPLAB_ARTEFACTS", ROOT / "artefacts")) / "view"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1400,1000",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def view(tmp_path):
    """Starts `tiplab view ARGS` on a free loopback port; returns its URL. Stopped after."""
    servers = []

    def start(*args) -> str:
        port = free_port()
        command = [sys.executable, "-m", "sim.cli", "view", *args, "--port", str(port)]
        log = (tmp_path / f"view-{port}.log").open("w")
        servers.append(
            subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=log, start_new_session=True)
        )
        url = f"http://127.0.0.1:{port}/"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(url, timeout=5)
                return url
            except OSError:
                assert servers[-1].poll() is None, (tmp_path / f"view-{port}.log").read_text()
                time.sleep(0.5)
        raise TimeoutError(f"the view did not answer at {url}")

    yield start
    for server in servers:
        os.killpg(server.pid, signal.SIGINT)  # the command and the solara server it started
        server.wait(timeout=30)


@pytest.fixture
def browser(tmp_path):
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in [*FLAGS, f"--user-data-dir={tmp_path / 'chromium'}"]:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=webdriver.ChromeService(DRIVER), options=options)
    yield driver
    driver.quit()


def text(browser) -> str:
    return browser.find_element(By.TAG_NAME, "body").text


def figures(browser) -> int:
    """Panels drawn: images the browser has decoded (a matplotlib PNG each)."""
    return browser.execute_script(
        "return [...document.images].filter(i => i.complete && i.naturalWidth > 100).length"
    )


def button(browser, label: str):
    return next(b for b in browser.find_elements(By.TAG_NAME, "button") if b.text == label)


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
        next(
            b for b in browser.find_elements(By.TAG_NAME, "button") if b.text.upper() == "STEP"
        ).click()
        wait.until(lambda b, step=step: f"Step: {step}" in text(b))
    wait.until(lambda b: figures(b) >= 4)  # graph, curves, p_violate, updates
    screenshot(browser, "driven")
    (run,) = out.iterdir()
    rounds = pl.read_parquet(run / "rounds.parquet")
    assert rounds.get_column("round").to_list() == [0, 1]
    assert rounds.get_column("n_agents").to_list() == [64, 64]
    assert (run / "graph.parquet").is_file()


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
                wait.until(lambda b: figures(b) >= 4)
                screenshot(browser, "following")
        time.sleep(0.2)
    assert sim.wait(timeout=120) == 0, sim.stderr.read()
    assert seen[-1] == "12 of 12 rounds played (complete)", seen
    played = [int(line.split()[0]) for line in seen]
    assert played == sorted(played) and set(played) - {0, 12}, seen  # rounds as they came
    wait.until(lambda b: figures(b) >= 4)
    screenshot(browser, "followed")
