"""manifest.json: what a run was (resolved config, seed, versions, git sha) and how far it got."""

from __future__ import annotations

import json
import os
import subprocess
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

from agents.secrets import redacted
from envs.errors import InputError

MISSING = object()
PACKAGES = ("tiplab", "mesa", "networkx", "hydra-core", "polars", "torch", "transformers", "peft")


def package_versions() -> dict[str, str | None]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def git_sha() -> str | None:
    root = Path(__file__).resolve().parent.parent
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None


def parse_overrides(overrides: list[str], config: dict) -> dict[str, object]:
    """Command-line overrides as {dotted key: value}, the swept parameters of a sweep.

    A key of the config takes its resolved value (so `env.rewards=[{high: 1.5, ...}]`
    is recorded as data); a group choice such as `experiment=atp_ma` keeps its name.
    """
    parsed = {}
    for line in overrides:
        key, _, raw = line.partition("=")
        key = key.lstrip("+~")
        node = config
        for part in key.split("."):
            node = node.get(part, MISSING) if isinstance(node, dict) else MISSING
        parsed[key] = raw if node is MISSING or isinstance(node, dict) else node
    return parsed


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class Manifest:
    """The run's manifest.json, rewritten atomically whenever the run's status changes."""

    def __init__(self, run_dir: Path, data: dict):
        self.path = Path(run_dir) / "manifest.json"
        self.data = data

    @classmethod
    def start(
        cls,
        run_dir: Path,
        run_id: str,
        seed: int,
        n_rounds: int,
        config: dict,
        overrides: list[str],
    ) -> Manifest:
        manifest = cls(
            run_dir,
            {
                "run_id": run_id,
                "seed": seed,
                "status": "running",
                "rounds_completed": 0,
                "n_rounds": n_rounds,
                "overrides": parse_overrides(overrides, config),
                "config": config,
                "packages": package_versions(),
                "git_sha": git_sha(),
                "started": now(),
                "finished": None,
            },
        )
        manifest.write()
        return manifest

    @classmethod
    def read(cls, run_dir: Path) -> Manifest:
        """The manifest in run_dir; an InputError naming it when it is not one of ours."""
        path = Path(run_dir) / "manifest.json"
        try:
            data = json.loads(path.read_bytes())
        except (OSError, UnicodeDecodeError, ValueError) as e:
            raise InputError(f"{path}: not a readable manifest ({type(e).__name__})") from None
        fields = {"run_id": str, "status": str, "config": dict, "rounds_completed": int}
        for name, kind in fields.items():
            if not isinstance(data, dict) or not isinstance(data.get(name), kind):
                raise InputError(f"{path}: damaged manifest (no {kind.__name__} field {name!r})")
        return cls(run_dir, data)

    def update(self, **fields) -> None:
        self.data.update(fields)
        self.write()

    def write(self) -> None:
        tmp = self.path.with_name(".manifest.json.tmp")
        tmp.write_text(redacted(json.dumps(self.data, indent=2, default=str)))
        os.replace(tmp, self.path)
