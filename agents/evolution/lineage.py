"""Adapter versions: every update writes a new version under a new name, never in place.

Layout: `adapters/<owner>/v<version>/` in PEFT's standard form (adapter_config.json +
adapter_model.safetensors), named `<owner>-v<version>` (vLLM and PEFT key caches on the
name). A version is moved into place whole, so a directory is either absent or complete.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path


def sort_target_modules(config: Path) -> None:
    """PEFT writes target_modules from a set, in an order that varies between processes;
    sorted, the same update writes the same adapter_config.json bit for bit."""
    if not config.is_file():
        return
    data = json.loads(config.read_text())
    if isinstance(data.get("target_modules"), list):
        data["target_modules"] = sorted(data["target_modules"])
        config.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


@dataclass(frozen=True)
class Version:
    owner: str
    version: int
    parent: str | None

    @property
    def name(self) -> str:
        return f"{self.owner}-v{self.version}"


class Lineage:
    """The current version of every owner's adapter, and its files."""

    def __init__(self, root: Path, keep: int | None = None):
        self.root = Path(root)
        self.keep = keep
        self.current: dict[str, Version] = {}
        # The versions the last checkpoint names: a resume needs them, retention keeps them.
        self.saved: dict[str, Version] = {}

    def path(self, v: Version) -> Path:
        return self.root / v.owner / f"v{v.version}"

    def successor(self, owner: str) -> Version:
        parent = self.current.get(owner)
        return Version(owner, parent.version + 1 if parent else 1, parent.name if parent else None)

    def commit(self, v: Version, written: Path) -> Path:
        """Move a fully written adapter directory into its place; it becomes current."""
        target = self.path(v)
        target.parent.mkdir(parents=True, exist_ok=True)
        sort_target_modules(written / "adapter_config.json")
        written.rename(target)
        self.current[v.owner] = v
        self._retire(v.owner)
        return target

    def _retire(self, owner: str) -> None:
        """Retention: keep only the last `keep` versions on disk (all when keep is None),
        and the version the last checkpoint names, which a resumed run starts from."""
        if self.keep is None:
            return
        latest = self.current[owner].version
        saved = self.saved.get(owner)
        for old in (self.root / owner).glob("v*"):
            version = int(old.name[1:])
            if version <= latest - self.keep and (saved is None or version != saved.version):
                shutil.rmtree(old)

    def rewind(self) -> None:
        """Delete versions newer than the current ones (written after the last checkpoint)."""
        for owner_dir in self.root.glob("*"):
            newest = self.current.get(owner_dir.name)
            for d in owner_dir.glob("v*"):
                if newest is None or int(d.name[1:]) > newest.version:
                    shutil.rmtree(d)

    def state_dict(self) -> dict:
        """The state a checkpoint saves; its versions stay on disk until a later one is saved.

        (The next retirement happens at the next commit, after this checkpoint is written.)
        """
        self.saved = dict(self.current)
        return {"current": dict(self.current)}

    def load_state_dict(self, state: dict) -> None:
        self.current = dict(state["current"])
        self.saved = dict(self.current)
