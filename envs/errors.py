"""The one error type for user mistakes (bad config, bad data file), the checks of
config values that raise it, and the base of the config's typed sections."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, ClassVar, Self


class InputError(ValueError):
    """A user mistake: the message names the file, field or value and what was expected.

    Entry points print it as one line and exit with code 2, never with a traceback.
    """


def integer(value, field: str, minimum: int = 1, maximum: int | None = None) -> int:
    """`value` if it is an integer >= minimum (and <= maximum); else an InputError naming
    `field`."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or value < minimum
        or (maximum is not None and value > maximum)
    ):
        upper = f" and <= {maximum}" if maximum is not None else ""
        raise InputError(f"{field}: {value!r} must be an integer >= {minimum}{upper}")
    return value


def number(
    value,
    field: str,
    low: float = 0.0,
    high: float = math.inf,
    above: bool = False,
    below: bool = False,
) -> float:
    """`value` as a finite float between low and high, each bound included unless `above`
    (low) or `below` (high) excludes it; else an InputError naming `field`."""
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if (
        not ok
        or not (value > low if above else value >= low)
        or not (value < high if below else value <= high)
    ):
        bounds = [f"{'>' if above else '>='} {low:g}"] if low > -math.inf else []
        bounds += [f"{'<' if below else '<='} {high:g}"] if high < math.inf else []
        raise InputError(f"{field}: {value!r} must be a number {' and '.join(bounds)}".strip())
    return float(value)


def boolean(value, field: str) -> bool:
    """`value` if it is true or false; else an InputError naming `field`."""
    if not isinstance(value, bool):
        raise InputError(f"{field}: {value!r} must be true or false")
    return value


def listed(value, field: str) -> list:
    """`value` if it is a list; else an InputError naming `field` (a scalar where a list of
    values belongs, e.g. `env.thresholds=4` for `env.thresholds=[4]`)."""
    if not isinstance(value, list | tuple):
        raise InputError(f"{field}: {value!r} must be a list, e.g. [{value!r}]")
    return list(value)


def feasible(n_agents: int, field: str, bytes_per_agent: int = 16 * 1024) -> int:
    """n_agents if their state fits this machine's memory (at bytes_per_agent, a lower bound
    for an agent's memory, prompts and records); else an InputError naming `field` with
    the estimate, before any of it is allocated."""
    import os

    total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    need = n_agents * bytes_per_agent
    if need > total:
        raise InputError(
            f"{field}: {n_agents:,} agents need at least {need / 2**30:,.0f} GiB; "
            f"this machine has {total / 2**30:,.0f} GiB"
        )
    return n_agents


@dataclass(frozen=True)
class Section:
    """A config section read from a mapping that holds every field (the YAML's keys).

    Subclasses declare fields with their types and no defaults (the YAML in conf/ holds
    them) and check values in `__post_init__`, never converting a wrong type into a
    right one: `2` is no boolean and `"nan"` no number.
    """

    FIELD: ClassVar[str] = ""

    @classmethod
    def of(cls, values: Mapping) -> Self:
        if not isinstance(values, Mapping):
            raise InputError(f"{cls.FIELD}: {values!r} must be a mapping of settings")
        for f in fields(cls):
            if f.name not in values:
                raise InputError(f"{cls.FIELD}.{f.name}: missing (see conf/ for its value)")
        return cls(**{f.name: values[f.name] for f in fields(cls)})

    @classmethod
    def of_kind(cls, values: Mapping, kinds: Mapping[str, type[Section]]) -> Section:
        """The section of the subclass `kinds` gives for values["name"]; an unknown or
        missing name is read by cls itself, whose check names what it expected."""
        name = values.get("name") if isinstance(values, Mapping) else None
        return kinds.get(name, cls).of(values)

    def _set(self, name: str, value: Any) -> None:
        """A checked value in place of the given one (a frozen field, set once at init)."""
        object.__setattr__(self, name, value)

    def _choice(self, name: str, allowed) -> None:
        value = getattr(self, name)
        if value not in allowed:
            expected = ", ".join(allowed)
            raise InputError(f"{self.FIELD}.{name}: {value!r}; expected one of {expected}")
