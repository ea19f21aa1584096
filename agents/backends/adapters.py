"""Which LoRA adapter versions a model runs, by version name.

`AdapterTable`: a transformers model and its PEFT adapters in this process (backend=hf,
the organism, and the trainer that adds versions to the same model). A version name
maps to the PEFT adapter it runs as: a new version trains in its parent's adapter and
takes over its name, so an update adds and deletes no PEFT adapters.

`AdapterRegistry`: versions served by another process (vLLM's engine, an OpenAI-
compatible server): each is registered once, under a new name, directory and integer id;
vLLM caches adapters by these, and a reused one would serve stale weights.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from envs.errors import InputError

BASE = "__base__"  # PEFT's name for "no adapter" in a mixed batch


class AdapterTable:
    """The model (wrapped by PEFT once it has an adapter) and its versions by name."""

    def __init__(self, model):
        self.model = model
        self.peft: dict[str, str] = {}  # version name -> the PEFT adapter it runs as

    def __contains__(self, name: str) -> bool:
        return name in self.peft

    def __bool__(self) -> bool:
        return bool(self.peft)

    def load(self, adapters: Mapping[str, Path]) -> None:
        """Add PEFT LoRA adapters (name -> directory in PEFT's layout) next to the others."""
        from peft import PeftModel

        for name, path in adapters.items():
            path = Path(path).expanduser()
            if not (path / "adapter_config.json").is_file():
                raise InputError(f"adapter {name!r}: {path} holds no PEFT adapter_config.json")
            if name in self.peft:
                raise InputError(
                    f"adapter {name!r}: already loaded; a new version needs a new name"
                )
            if isinstance(self.model, PeftModel):
                self.model.load_adapter(str(path), adapter_name=name)
            else:
                self.model = PeftModel.from_pretrained(self.model, str(path), adapter_name=name)
            self.peft[name] = name
        self.model.eval()

    def add(self, name: str, adapter: str, config) -> None:
        """A fresh LoRA (PEFT's identity initialisation) called `adapter`, run by `name`."""
        from peft import PeftModel, get_peft_model

        if isinstance(self.model, PeftModel):
            self.model.add_adapter(adapter, config)
        else:
            with warnings.catch_warnings():  # PEFT reads an attribute transformers 5 deprecates
                warnings.filterwarnings("ignore", message=".is_gradient_checkpointing.")
                self.model = get_peft_model(self.model, config, adapter_name=adapter)
        self.model.eval()
        self.peft[name] = adapter

    def alias(self, name: str, parent: str) -> str:
        """`name` runs in its parent's PEFT adapter (which it will train); returns that."""
        self.peft[name] = self.peft[parent]
        return self.peft[name]

    def retire(self, name: str) -> None:
        """A version superseded in its adapter: its name no longer resolves (files stay)."""
        del self.peft[name]

    def peft_names(self, names: Sequence[str | None]) -> list[str]:
        """The PEFT adapter each version runs as (BASE for None: the base model)."""
        unknown = sorted({n for n in names if n is not None and n not in self.peft})
        if unknown:
            raise InputError(f"adapter {unknown[0]!r}: requested before it was loaded")
        return [self.peft[n] if n is not None else BASE for n in names]

    def routing(self, names: Sequence[str | None]) -> dict:
        """PEFT's per-row `adapter_names` for a batch; nothing when no adapter is loaded."""
        peft = self.peft_names(names)
        return {"adapter_names": peft} if self.peft else {}


@dataclass(frozen=True)
class Adapter:
    """One registered LoRA version: vLLM's name, integer id and directory for it."""

    name: str
    id: int
    path: Path


class AdapterRegistry:
    """LoRA versions by name; a name, id or directory is never given to a second version."""

    def __init__(self) -> None:
        self.by_name: dict[str, Adapter] = {}

    def add(self, name: str, path: Path | str) -> Adapter:
        """Register a new version (PEFT directory) and give it the next integer id (from 1)."""
        path = Path(path).resolve()
        if name in self.by_name:
            raise InputError(
                f"adapter {name!r}: a version of that name is already loaded "
                f"({self.by_name[name].path}); a new version needs a new name"
            )
        holder = next((a.name for a in self.by_name.values() if a.path == path), None)
        if holder is not None:
            raise InputError(
                f"adapter {name!r}: {path} already holds adapter {holder!r}; "
                "a new version needs a new directory"
            )
        if not (path / "adapter_config.json").is_file():
            raise InputError(f"adapter {name!r}: {path} holds no PEFT adapter_config.json")
        adapter = Adapter(name, len(self.by_name) + 1, path)
        self.by_name[name] = adapter
        return adapter

    def get(self, name: str | None) -> Adapter | None:
        """The adapter a request names (None: the base model)."""
        if name is None:
            return None
        if name not in self.by_name:
            raise InputError(f"adapter {name!r}: requested before it was loaded")
        return self.by_name[name]

    def state_dict(self) -> list[dict]:
        return [{"name": a.name, "path": str(a.path)} for a in self.by_name.values()]
