"""A sweep's progress line: "runs done / total", each run named by its swept values.

Drawn in the launching process from the runs' manifests, which every launcher's runs
write into the sweep directory (local processes, joblib workers, SLURM tasks alike).
"""

from __future__ import annotations

import json
import sys
import threading
from pathlib import Path

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

FINISHED = ("complete", "failed")


def job_labels(config: DictConfig) -> list[str]:
    """Per job of the sweep, in job order: its swept overrides, e.g. "seed=1 env.k=[6]".

    The jobs are the sweeper's own expansion of the config's sweep parameters and the
    command line's comma lists; the keys that are the same in every job are left out.
    """
    params = [f"{k}={v}" for k, v in (config.hydra.sweeper.get("params") or {}).items()]
    task = OmegaConf.to_container(config.hydra.overrides.task, resolve=False)
    overrides = OverridesParser.create().parse_overrides([*params, *task])
    swept = {o.get_key_element() for o in overrides if o.is_sweep_override()}
    jobs = BasicSweeper.split_arguments(overrides, None)[0]
    return [" ".join(o for o in job if o.split("=", 1)[0] in swept) for job in jobs]


class SweepProgress:
    """One line on stderr, refreshed by a thread that reads the runs' manifests (runs in
    job-number subdirectories) until closed; a run is done once complete or failed."""

    def __init__(self, sweep_dir: Path, labels: list[str], every_s: float = 0.5):
        self.sweep_dir, self.every_s = Path(sweep_dir), every_s
        self.labels = {str(job): label for job, label in enumerate(labels)}
        self.done: set[str] = set()
        self.bar = tqdm(total=len(labels), desc="runs", unit="run", file=sys.stderr)
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._watch, daemon=True)
        self.thread.start()

    def _watch(self) -> None:
        while not self.stopped.wait(self.every_s):
            self.refresh()

    def refresh(self) -> None:
        for path in sorted(self.sweep_dir.glob("*/manifest.json")):
            name = path.parent.name
            if name in self.done:
                continue
            try:
                status = json.loads(path.read_text()).get("status")
            except (OSError, ValueError):  # a failed run's directory may go away
                continue
            if status in FINISHED:
                self.done.add(name)
                self.bar.set_postfix_str(f"#{name} {self.labels.get(name, '')} {status}", False)
                self.bar.update(1)

    def close(self) -> None:
        self.stopped.set()
        self.thread.join()
        self.refresh()
        self.bar.close()
