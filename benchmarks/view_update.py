"""The live view's page update time at 1,000 and 10,000 agents, in headless Chromium.

Following: a Watts cascade (experiment=cascade, one Erdos-Renyi graph) plays here one
round at a time while `tiplab view RUN` follows its directory; per round, the time from
its records being written to the page showing "population at round t" (the graph
redrawn; the other panels are drawn in the same pass).
Driving: `tiplab view OVERRIDES` on the same cascade; per Step click, the time until the
page shows the round it played (the round itself included).

The first round shown also lays the graph out (once per run), so it is reported apart.
Prints medians and maxima of the later rounds, and the 10,000- over 1,000-agent ratio.
Needs Debian's chromium and chromium-driver. `python benchmarks/view_update.py`
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sim.view import LiveModel  # noqa: E402
from tests.browser import button, text, view_server  # noqa: E402
from tests.helpers import chromium_driver  # noqa: E402

SIZES = (1_000, 10_000)


def cascade(n: int, rounds: int) -> list[str]:
    return [
        "experiment=cascade",
        f"env.group_size={n}",
        f"env.thresholds=[{n // 2}]",
        f"deviants.count={max(1, n // 500)}",
        f"run.rounds={rounds}",
    ]


def shown_round(page: str) -> int | None:
    line = next((s for s in page.splitlines() if s.startswith("population at round ")), None)
    return None if line is None else int(line.rsplit(" ", 1)[1])


def page_shows(browser, t: int, limit_s: float = 300) -> float:
    """Waits until the page shows round t's graph; returns when (time.perf_counter)."""
    deadline = time.monotonic() + limit_s
    while shown_round(text(browser)) != t:
        if time.monotonic() > deadline:
            raise TimeoutError(f"the page did not show round {t} in {limit_s:.0f} s")
        time.sleep(0.05)
    return time.perf_counter()


def following(n: int, rounds: int, work: Path) -> list[float]:
    """Seconds from each round's records written to the page showing them."""
    model = LiveModel(tuple(cascade(n, rounds)), str(work / "followed"))
    browser = chromium_driver(work / f"profile-follow-{n}")
    times = []
    with view_server(str(model.run_dir), log=work / f"follow-{n}.log") as url:
        browser.get(url)
        for t in range(rounds):
            model.step()
            written = time.perf_counter()
            times.append(page_shows(browser, t) - written)
    browser.quit()
    return times


def driving(n: int, rounds: int, work: Path) -> list[float]:
    """Seconds from a Step click to the page showing the round it played."""
    browser = chromium_driver(work / f"profile-drive-{n}")
    times = []
    args = [*cascade(n, rounds), f"--out={work / 'driven'}"]
    with view_server(*args, log=work / f"drive-{n}.log") as url:
        browser.get(url)
        while "Step: 0" not in text(browser):
            time.sleep(0.2)
        for t in range(rounds):
            start = time.perf_counter()
            button(browser, "STEP").click()
            times.append(page_shows(browser, t) - start)
    browser.quit()
    return times


def summary(times: list[float]) -> str:
    later = times[1:]
    return (
        f"first round {times[0]:.2f} s (with the layout), then median "
        f"{statistics.median(later):.2f} s, max {max(later):.2f} s ({len(later)} rounds)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=6)
    args = parser.parse_args()
    medians = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for n in SIZES:
            follow, drive = following(n, args.rounds, work), driving(n, args.rounds, work)
            medians[n] = statistics.median(follow[1:]), statistics.median(drive[1:])
            print(f"{n:>6,} agents  following: {summary(follow)}")
            print(f"{n:>6,} agents  driving:   {summary(drive)}")
    small, large = medians[SIZES[0]], medians[SIZES[-1]]
    print(f"10,000 / 1,000 agents: following {large[0] / small[0]:.1f}x, "
          f"driving {large[1] / small[1]:.1f}x")  # fmt: skip


if __name__ == "__main__":
    main()
