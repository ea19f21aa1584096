"""The one error type for user mistakes (bad config, bad data file), and the checks of
config values that raise it."""

from __future__ import annotations

import math


class InputError(ValueError):
    """A user mistake: the message names the file, field or value and what was expected.

    Entry points print it as one line and exit with code 2, never with a traceback.
    """


def integer(value, field: str, minimum: int = 1) -> int:
    """`value` if it is an integer >= minimum; else an InputError naming `field`."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InputError(f"{field}: {value!r} must be an integer >= {minimum}")
    return value


def number(
    value,
    field: str,
    low: float = 0.0,
    high: float = math.inf,
    above: bool = False,
    below: bool = False,
) -> float:
    """`value` as a float between low and high, each bound included unless `above` (low) or
    `below` (high) excludes it; else an InputError naming `field`."""
    ok = isinstance(value, int | float) and not isinstance(value, bool)
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
