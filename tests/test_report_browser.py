"""The report as a reader sees it: ATP's two settings run with their presets, each report
opened in headless Chromium, its sections, figures and captions checked on the page.

Needs Debian's chromium and chromium-driver (.ci/run installs them); skipped without.
Screenshots are kept in artefacts/report/ (git-ignored), or $TIPLAB_ARTEFACTS.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.helpers import ROOT, chromium_driver, sim_run

pytest.importorskip("selenium.webdriver", reason="selenium is in the dev extra")
pytestmark = pytest.mark.skipif(
    not (shutil.which("chromium") and shutil.which("chromedriver")),
    reason="needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)",
)
ARTEFACTS = Path(os.environ.get("TIPLAB_ARTEFACTS", ROOT / "artefacts")) / "report"


@pytest.mark.parametrize(
    ("preset", "sections", "condition"),
    [
        ("atp_ma", ["By threshold", "Tipping curve", "Exposure-response"], "threshold=2"),
        ("atp_sa", ["By payoff_ratio", "Tipping curve"], "payoff_ratio=1.05"),
    ],
)
def test_report_sections_and_captions_in_a_browser(tmp_path, preset, sections, condition):
    from selenium.webdriver.common.by import By

    run = tmp_path / preset
    done = sim_run(
        f"experiment={preset}",
        "backend=reward_following",
        "run.progress=false",
        f"hydra.run.dir={run}",
    )
    assert done.returncode == 0, done.stderr
    assert "violation rate per round by condition" in done.stdout
    assert condition in done.stdout
    driver = chromium_driver(tmp_path / "chromium")
    try:
        driver.get((run / "report" / "index.html").as_uri())
        titles = [h.text for h in driver.find_elements(By.TAG_NAME, "h2")]
        captions = [c.text for c in driver.find_elements(By.TAG_NAME, "figcaption")]
        drawn = driver.execute_script(
            "return [...document.images].filter(i => i.complete && i.naturalWidth > 100)"
            ".map(i => i.alt)"
        )
        body = driver.find_element(By.TAG_NAME, "body").text
        ARTEFACTS.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(ARTEFACTS / f"{preset}.png"))
    finally:
        driver.quit()
    for section in sections:
        assert section in titles
        assert section in drawn  # its figure decoded, not a broken image
    assert len(captions) == len(drawn) and all(len(c) > 40 for c in captions)
    assert "cluster-bootstrap interval" in captions[0]
    assert f"final violation rate, {condition}" in body
    assert "failed" not in body
