"""`tiplab view` on loopback, and what a page shows in Debian's headless Chromium (driven
by tests.helpers.chromium_driver), for the view's tests and benchmarks/view_update.py."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from selenium.webdriver.common.by import By

from tests.helpers import ROOT

CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def view_server(*args: str, log: Path, start_s: float = 120) -> Iterator[str]:
    """`tiplab view ARGS` on a free loopback port, as a user starts it; yields its URL and
    stops it (Ctrl-C to the command and the solara server it started) after."""
    port = free_port()
    command = [sys.executable, "-m", "sim.cli", "view", *args, "--port", str(port)]
    with log.open("w") as out:
        server = subprocess.Popen(command, cwd=ROOT, stdout=out, stderr=out, start_new_session=True)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + start_s
        while True:
            try:
                urllib.request.urlopen(url, timeout=5)
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the view did not start:\n{log.read_text()}") from None
                time.sleep(0.5)
        yield url
    finally:
        os.killpg(server.pid, signal.SIGINT)
        server.wait(timeout=30)


def text(browser) -> str:
    return browser.find_element(By.TAG_NAME, "body").text


def figures(browser) -> int:
    """Panels drawn: images the browser has decoded (a matplotlib PNG each)."""
    return browser.execute_script(
        "return [...document.images].filter(i => i.complete && i.naturalWidth > 100).length"
    )


def button(browser, label: str):
    """The button labelled `label` (as shown: Vuetify shows labels in capitals)."""
    buttons = browser.find_elements(By.TAG_NAME, "button")
    return next(b for b in buttons if b.text.upper() == label.upper())
