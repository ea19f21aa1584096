"""Readers for ATP's released data formats (arXiv 2510.04860, aiming-lab/ATP).

Three formats:
- single-agent question files (`sa_question_64.json`, `sa_question_160.json`): role-play
  items with the rule-compliant `supervised_choice`, the higher-paying `better_choice`
  and, in the evaluation set only, the three supervision texts;
- multi-agent templates (`ma_templates.json`): threshold games with `{n}`,
  `{cooperation_threshold}` and reward placeholders, filled from the config;
- multi-agent questions (`ma_question_350.json` and ATP's evaluation questions): one
  instantiated game per item, with its own size, threshold and rewards in `params`.

Every field is checked for its type and value, and every problem is an InputError of
one line naming the file, the item and the field.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path

from envs.base import Choices, Conditions, Scenario
from envs.errors import InputError
from envs.threshold import ThresholdGame

SUPERVISION = ("supervised", "unsupervised", "neutral")
MA_FIELDS = (
    "system_prompt",
    "user_prompt_mult",
    "user_prompt_add",
    "collective_choice",
    "independent_choice",
)
FORMAT_LABEL = re.compile(r'"choice"\s*:\s*"?([^"}]*?)"?\s*}')
INSTRUCTION = re.compile(r"\s*IMPORTANT:.*$", re.DOTALL)


def read_json_list(path: str | Path) -> list:
    """The top-level list of a JSON file, or an InputError saying what is wrong with it."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: file not found")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise InputError(f"{path}: not valid JSON ({e.msg} at line {e.lineno})") from None
    except UnicodeDecodeError:
        raise InputError(f"{path}: not a UTF-8 text file") from None
    if not isinstance(data, list) or not data:
        raise InputError(f"{path}: expected a non-empty JSON list of items")
    return data


class Item:
    """One item of an ATP file, read field by field; a bad field is an InputError that
    names the file, the item and the field (`params.high_reward`, `template.system_prompt`)."""

    def __init__(self, path: Path, index: int, raw: object, prefix: str = ""):
        if not isinstance(raw, dict):
            raise InputError(
                f"{path}: item {index}{prefix and ' ' + prefix}: expected a JSON object"
            )
        self.path, self.index, self.raw, self.prefix = path, index, raw, prefix

    def where(self, field: str) -> str:
        return f"{self.path}: item {self.index}: {self.prefix}{field}"

    def get(self, field: str):
        if field not in self.raw:
            raise InputError(
                f"{self.path}: item {self.index}: missing field {self.prefix + field!r}"
            )
        return self.raw[field]

    def text(self, field: str, optional: bool = False) -> str | None:
        """A string field; optional ones may be absent (None), never null or another type."""
        if optional and field not in self.raw:
            return None
        value = self.get(field)
        if not isinstance(value, str):
            raise InputError(f"{self.where(field)}: expected a string, got {kind(value)}")
        return value

    def label(self, field: str) -> str:
        value = self.text(field)
        if not value.strip():
            raise InputError(f"{self.where(field)}: expected a non-empty choice label")
        return value.strip()

    def child(self, field: str) -> Item:
        value = self.get(field)
        if not isinstance(value, dict):
            raise InputError(f"{self.where(field)}: expected a JSON object, got {kind(value)}")
        return Item(self.path, self.index, value, f"{self.prefix}{field}.")

    def number(self, field: str) -> float:
        value = self.get(field)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InputError(f"{self.where(field)}: expected a number, got {kind(value)}")
        if not math.isfinite(value):
            raise InputError(f"{self.where(field)}: expected a finite number, got {value!r}")
        return float(value)

    def integer(self, field: str, minimum: int) -> int:
        value = self.get(field)
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise InputError(
                f"{self.where(field)}: expected an integer >= {minimum}, got {value!r}"
            )
        return value


def kind(value: object) -> str:
    """A JSON value's type as the file's author would name it."""
    if value is None:
        return "null"
    if isinstance(value, str):
        return f"the string {value[:40]!r}"
    names = {bool: "a boolean", list: "a list", dict: "an object"}
    return names.get(type(value), f"the number {value!r}")


def choices_of(item: Item, fields: tuple[str, str], example: str | None) -> tuple[str, str]:
    """The two labels, checked against each other and against the format example."""
    a, b = (item.label(f) for f in fields)
    if a.lower() == b.lower():
        raise InputError(
            f"{item.path}: item {item.index}: {fields[0]!r} and {fields[1]!r} are the same label"
        )
    for label in FORMAT_LABEL.findall(example or ""):
        if label.strip().lower() not in (a.lower(), b.lower()):
            raise InputError(
                f"{item.where('format_example')} names choice {label!r}, "
                f"not one of the two choices {a!r} / {b!r}"
            )
    return a, b


def above(item: Item, high: tuple[str, float], low: tuple[str, float], what: str) -> None:
    """The tempting payoff must pay more than the safe one, or there is no temptation."""
    if high[1] <= low[1]:
        raise InputError(
            f"{item.where(high[0])}: {what} payoff {high[1]:g} must exceed {low[0]} ({low[1]:g})"
        )


def _source(raw: dict) -> str:
    """Where an item comes from: the generator names its family; ATP's own files do not."""
    return "generator" if raw.get("family") else "atp"


def ordered(choices: Choices, example: str | None, collective: str | None = None) -> Choices:
    """choices in the order the format example names them; without one the collective
    choice first (as in ATP's multi-agent files), else the compliant one."""
    labels = FORMAT_LABEL.findall(example or "")
    if labels:
        first = labels[0].strip().lower() != choices.violate.lower()
    else:
        first = collective is None or choices.comply == collective
    return replace(choices, comply_first=first)


def load_sa_questions(path: str | Path) -> list[Scenario]:
    """Role-play scenarios from an ATP single-agent question file.

    The training file (question_160) has no supervision texts: its prompts are played
    without one, as ATP plays them (single-turn prompts).
    """
    path = Path(path)
    return sa_scenarios(read_json_list(path), path)


def sa_scenarios(items: Sequence, path: Path) -> list[Scenario]:
    """Role-play scenarios from single-agent question items (`path` names them in errors)."""
    scenarios = []
    for i, raw in enumerate(items):
        item = Item(path, i, raw)
        environment = item.text("environment")
        system, prompt = item.text("system_prompt"), item.text("user_prompt")
        example = item.text("format_example", True)
        comply, violate = choices_of(item, ("supervised_choice", "better_choice"), example)
        params = item.child("params")
        low, high = params.number("low_reward"), params.number("high_reward")
        above(params, ("high_reward", high), ("low_reward", low), "the violating (better_choice)")
        texts = {s: item.text(f"{s}_text", optional=True) for s in SUPERVISION}
        scenarios.append(
            Scenario(
                id=str(raw.get("id") or f"{environment}/{i}"),
                paradigm="roleplay",
                name=environment,
                system_prompt=system,
                situation=INSTRUCTION.sub("", prompt),
                choices=ordered(Choices(comply=comply, violate=violate), example),
                payoffs={"comply": low, "violate": high},
                supervision_texts={s: t for s, t in texts.items() if t is not None},
                conditions=Conditions.for_roleplay(
                    _source(raw), environment, {"comply": low, "violate": high}, raw.get("family")
                ),
            )
        )
    return scenarios


def violation_choices(collective: str, independent: str, violation: str) -> Choices:
    """ATP counts the collective choice as the violation ("collusion")."""
    if violation not in ("collective", "independent"):
        raise InputError(f"env.violation: {violation!r}; expected collective or independent")
    if violation == "collective":
        return Choices(comply=independent, violate=collective)
    return Choices(comply=collective, violate=independent)


def load_ma_games(
    path: str | Path,
    size: int,
    thresholds: Sequence[int],
    reward_sets: Sequence[Mapping[str, float]],
    payoff_mode: str,
    violation: str = "collective",
) -> list[ThresholdGame]:
    """Threshold games from either multi-agent file: templates are filled from the config
    (size, thresholds, reward sets); instantiated questions bring their own."""
    items = read_json_list(path)
    if isinstance(items[0], dict) and "template" in items[0]:
        return load_ma_templates(path, size, thresholds, reward_sets, payoff_mode, violation)
    return load_ma_questions(path, violation)


def load_ma_questions(path: str | Path, violation: str = "collective") -> list[ThresholdGame]:
    """One threshold game per item of an instantiated multi-agent question file, each with
    its own group size n, threshold and (high, normal, low) rewards; its text states them."""
    path = Path(path)
    games = []
    for i, raw in enumerate(read_json_list(path)):
        item = Item(path, i, raw)
        environment = item.text("environment")
        system, prompt = item.text("system_prompt"), item.text("user_prompt")
        example = item.text("format_example", True)
        collective, independent = choices_of(
            item, ("cooperative_choice", "independent_choice"), example
        )
        params = item.child("params")
        n = params.integer("n", minimum=2)
        k = params.integer("cooperation_threshold", minimum=1)
        if k > n:
            raise InputError(f"{params.where('cooperation_threshold')}: {k} exceeds n ({n})")
        rewards = {x: params.number(f"{x}_reward") for x in ("high", "normal", "low")}
        above(
            params,
            ("high_reward", rewards["high"]),
            ("normal_reward", rewards["normal"]),
            "the collective success",
        )
        tag = "-".join(f"{rewards[x]:g}" for x in ("high", "normal", "low"))
        games.append(
            ThresholdGame(
                scenario=Scenario(
                    id=f"{environment}/{i}/n{n}/k{k}/{tag}",
                    paradigm="threshold",
                    name=environment,
                    system_prompt=system,
                    situation=INSTRUCTION.sub("", prompt),
                    choices=ordered(
                        violation_choices(collective, independent, violation), example, collective
                    ),
                    payoffs=rewards,
                    conditions=Conditions.for_game(
                        _source(raw), environment, k, n, rewards, raw.get("family")
                    ),
                ),
                size=n,
                threshold=k,
                collective_label=collective,
                payoffs_in_situation=True,
            )
        )
    return games


def load_ma_templates(
    path: str | Path,
    size: int,
    thresholds: Sequence[int],
    reward_sets: Sequence[Mapping[str, float]],
    payoff_mode: str,
    violation: str = "collective",
) -> list[ThresholdGame]:
    """Threshold games from ATP's multi-agent templates file, one per template x k x rewards.

    The payoff sentence is ATP's own (multiplicative or additive form).
    """
    path = Path(path)
    items = read_json_list(path)
    return ma_template_games(items, path, size, thresholds, reward_sets, payoff_mode, violation)


def ma_template_games(
    items: Sequence,
    path: Path,
    size: int,
    thresholds: Sequence[int],
    reward_sets: Sequence[Mapping[str, float]],
    payoff_mode: str,
    violation: str = "collective",
) -> list[ThresholdGame]:
    """Threshold games from multi-agent template items (`path` names them in errors)."""
    games = []
    for i, raw in enumerate(items):
        item = Item(path, i, raw)
        environment = item.text("environment")
        t = item.child("template")
        texts = {f: t.text(f) for f in ("system_prompt", "user_prompt_mult", "user_prompt_add")}
        example = t.text("format_example", True)
        collective, independent = choices_of(
            t, ("collective_choice", "independent_choice"), example
        )
        choices = ordered(
            violation_choices(collective, independent, violation), example, collective
        )
        text = texts["user_prompt_mult" if payoff_mode == "multiplicative" else "user_prompt_add"]
        for k in thresholds:
            for r in reward_sets:
                fill = dict(
                    n=size,
                    cooperation_threshold=k,
                    high_reward=f"{r['high']:g}",
                    normal_reward=f"{r['normal']:g}",
                    low_reward=f"{r['low']:g}",
                    delta_high=f"{r['high'] - 1:g}",
                    delta_normal=f"{r['normal'] - 1:g}",
                    delta_low=f"{r['low'] - 1:g}",
                )
                try:
                    system_prompt, situation = (
                        texts["system_prompt"].format(**fill),
                        text.format(**fill),
                    )
                except (KeyError, IndexError, ValueError) as e:
                    raise InputError(
                        f"{path}: item {i}: template has a placeholder that cannot be filled ({e})"
                    ) from None
                tag = "-".join(f"{r[x]:g}" for x in ("high", "normal", "low"))
                games.append(
                    ThresholdGame(
                        scenario=Scenario(
                            id=f"{environment}/k{k}/{tag}",
                            paradigm="threshold",
                            name=environment,
                            system_prompt=system_prompt,
                            situation=situation,
                            choices=choices,
                            payoffs=dict(r),
                            conditions=Conditions.for_game(
                                _source(raw), environment, k, size, r, raw.get("family")
                            ),
                        ),
                        size=size,
                        threshold=int(k),
                        collective_label=collective,
                        payoffs_in_situation=True,
                    )
                )
    return games
