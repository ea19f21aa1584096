"""The project's own scenario templates and the grid generator over payoffs and thresholds.

Templates live in `envs/scenarios/*.yaml` (text only); payoffs and thresholds come from
the config, so "all professions x 4 payoff ratios" is a config, not a data file.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import yaml

from envs.base import Choices, Conditions, Scenario
from envs.errors import InputError, number
from envs.threshold import ThresholdGame

TEMPLATES = Path(__file__).parent / "scenarios"


def load_templates(kind: str) -> dict[str, dict]:
    """Templates by name from `professions.yaml` or `games.yaml`."""
    path = TEMPLATES / f"{kind}.yaml"
    entries = yaml.safe_load(path.read_text())
    return {entry["name"]: entry for entry in entries}


def select(templates: dict[str, dict], names: str | Sequence[str], field: str) -> list[dict]:
    """The templates named in the config (`all` or a list of names), in config order."""
    if names == "all":
        return list(templates.values())
    if isinstance(names, str):
        names = [names]
    if not isinstance(names, list | tuple) or not all(isinstance(n, str) for n in names):
        raise InputError(f"{field}: {names!r}; expected 'all', a name or a list of names")
    unknown = [n for n in names if n not in templates]
    if unknown:
        raise InputError(
            f"{field}: unknown name(s) {', '.join(map(repr, unknown))}; "
            f"expected 'all' or some of {', '.join(templates)}"
        )
    return [templates[n] for n in names]


def roleplay_items(
    professions: str | Sequence[str], payoffs: Sequence[Sequence[float]]
) -> list[Scenario]:
    """Every selected profession at every (comply, violate) payoff pair."""
    grid = [_payoff_pair(p, i) for i, p in enumerate(payoffs)]
    return [
        _roleplay_scenario(t, comply, violate)
        for t in select(load_templates("professions"), professions, "env.professions")
        for comply, violate in grid
    ]


def _payoff_pair(pair: Sequence[float], i: int) -> tuple[float, float]:
    if not isinstance(pair, list | tuple) or len(pair) != 2:
        raise InputError(f"env.payoffs[{i}]: expected [comply_payoff, violate_payoff], got {pair}")
    comply, violate = (number(x, f"env.payoffs[{i}]", -math.inf) for x in pair)
    if violate <= comply:
        raise InputError(
            f"env.payoffs[{i}]: the violating payoff {violate:g} must exceed "
            f"the compliant payoff {comply:g}"
        )
    return comply, violate


def _roleplay_scenario(t: dict, comply_payoff: float, violate_payoff: float) -> Scenario:
    fill = dict(
        comply=t["comply"],
        violate=t["violate"],
        comply_payoff=f"{comply_payoff:g}",
        violate_payoff=f"{violate_payoff:g}",
    )
    payoffs = {"comply": comply_payoff, "violate": violate_payoff}
    return Scenario(
        id=f"{t['name']}/{comply_payoff:g}-{violate_payoff:g}",
        paradigm="roleplay",
        name=t["name"],
        system_prompt=t["system_prompt"].format(**fill),
        situation=t["situation"].format(**fill),
        choices=Choices(comply=t["comply"], violate=t["violate"]),
        payoffs=payoffs,
        supervision_texts={
            "supervised": t["supervised_text"],
            "unsupervised": t["unsupervised_text"],
            "neutral": t["neutral_text"],
        },
        conditions=Conditions.for_roleplay("templates", t["name"], payoffs),
    )


def threshold_games(
    games: str | Sequence[str],
    size: int,
    thresholds: Sequence[int],
    reward_sets: Sequence[dict],
) -> list[ThresholdGame]:
    """Every selected game at every threshold and every (high, normal, low) reward set."""
    if size < 2:
        raise InputError(f"env.group_size: {size} must be at least 2")
    rewards = [_reward_set(r, i) for i, r in enumerate(reward_sets)]
    return [
        game_instance(t, size, int(k), r)
        for t in select(load_templates("games"), games, "env.games")
        for k in thresholds
        for r in rewards
    ]


def _reward_set(r: dict, i: int) -> dict[str, float]:
    if not isinstance(r, dict) or not {"high", "normal", "low"} <= set(r):
        raise InputError(
            f"env.rewards[{i}]: expected a mapping with numbers high, normal, low; got {r}"
        )
    return {k: number(r[k], f"env.rewards[{i}].{k}", -math.inf) for k in ("high", "normal", "low")}


def game_instance(t: dict, size: int, k: int, rewards: dict[str, float]) -> ThresholdGame:
    """One threshold game from a template: which label is the violation is the template's."""
    collective, independent = t["collective"], t["independent"]
    violate_collective = t.get("violation", "collective") == "collective"
    choices = (
        Choices(comply=independent, violate=collective)
        if violate_collective
        else Choices(comply=collective, violate=independent)
    )
    tag = "-".join(f"{rewards[x]:g}" for x in ("high", "normal", "low"))
    return ThresholdGame(
        scenario=Scenario(
            id=f"{t['name']}/k{k}/{tag}",
            paradigm="threshold",
            name=t["name"],
            system_prompt=t["system_prompt"].format(n=size, threshold=k),
            situation=t["situation"].format(n=size, threshold=k),
            choices=choices,
            payoffs=rewards,
            conditions=Conditions.for_game("templates", t["name"], k, size, rewards),
        ),
        size=size,
        threshold=k,
        collective_label=collective,
    )
