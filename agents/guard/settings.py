"""guard.*: the typed view of conf/guard/, checked before anything heavy loads.

The corrector's own settings are checked here too, but built from the mapping as written:
its cache key is a hash of those values (sim/corrector.py), so reading them back from a
typed view (`3` as `3.0`) would move an existing cache.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

from agents.backends.settings import NAMES, backend_config
from agents.guard.base import FEEDBACK, POSITIONS
from envs.errors import InputError, Section, integer, number


@dataclass(frozen=True)
class GuardConfig(Section):
    """guard=none: no guard stage."""

    FIELD = "guard"
    KINDS: ClassVar = ("none", "calibrated", "model", "corrector")
    name: str

    def __post_init__(self):
        self._choice("name", self.KINDS)


@dataclass(frozen=True)
class PlacedGuard(GuardConfig):
    """What every guard stage has: where its correction acts, what the agent remembers."""

    position: str
    feedback: str

    def __post_init__(self):
        super().__post_init__()
        self._choice("position", POSITIONS)
        self._choice("feedback", FEEDBACK)


@dataclass(frozen=True)
class CalibratedConfig(PlacedGuard):
    """guard=calibrated: a stand-in of known catch and false-edit rates."""

    catch_rate: float
    false_edit_rate: float

    def __post_init__(self):
        super().__post_init__()
        for name in ("catch_rate", "false_edit_rate"):
            self._set(name, number(getattr(self, name), f"guard.{name}", high=1.0))


@dataclass(frozen=True)
class ModelGuardConfig(PlacedGuard):
    """guard=model: any backend (guard.backend, checked here, typed where the guard makes
    it) in Aligner's format."""

    mode: str
    backend: Mapping

    def __post_init__(self):
        super().__post_init__()
        backend = self.backend
        if not isinstance(backend, Mapping) or backend.get("name") not in NAMES:
            got = backend.get("name") if isinstance(backend, Mapping) else backend
            raise InputError(
                f"guard.backend.name: {got!r}; expected one of {', '.join(NAMES)} "
                "(e.g. guard/backend=hf guard.backend.model.path=DIR)"
            )
        if self.mode not in ("score", "generate"):
            raise InputError(f"guard.mode: {self.mode!r}; expected score or generate")
        try:  # named as the guard's field
            backend_config(backend)
        except InputError as e:
            raise InputError(f"guard.{e}") from None


@dataclass(frozen=True)
class CorrectorConfig(ModelGuardConfig):
    """guard=corrector: a model guard trained here from the guard backend's local weights."""

    cache_dir: str
    corrector: Mapping

    def __post_init__(self):
        super().__post_init__()
        if self.backend["name"] not in ("organism", "hf"):
            raise InputError(
                f"guard.backend.name: {self.backend['name']!r}; the corrector trains from "
                "local weights: organism or hf (with guard.backend.model.path=DIR)"
            )
        check_corrector(self.corrector)


def check_corrector(cfg: Mapping) -> None:
    """guard.corrector's settings, before the simulator plays or anything trains."""
    field = "guard.corrector"
    integer(cfg["seed"], f"{field}.seed", minimum=0)
    data = cfg["data"]
    for key in ("scenarios", "rounds", "held_out_scenarios"):
        integer(data[key], f"{field}.data.{key}")
    number(data["identity_share"], f"{field}.data.identity_share", below=True, high=1.0)
    train = cfg["train"]
    for key in ("warmup_epochs", "epochs"):
        number(train[key], f"{field}.train.{key}")
    number(train["lr"], f"{field}.train.lr", above=True)
    integer(train["batch_tokens"], f"{field}.train.batch_tokens")


KINDS = {
    "none": GuardConfig,
    "calibrated": CalibratedConfig,
    "model": ModelGuardConfig,
    "corrector": CorrectorConfig,
}


def guard_config(values: Mapping) -> GuardConfig:
    """The typed guard section for its name (an unknown name is named by GuardConfig's
    check)."""
    return GuardConfig.of_kind(values, KINDS)
