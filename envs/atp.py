"""Readers for ATP's released data formats (arXiv 2510.04860, aiming-lab/ATP).

Two formats: single-agent question files (a list of role-play items with the rule-
compliant `supervised_choice` and the higher-paying `better_choice`), and the multi-agent
templates file (threshold games with `{n}`, `{cooperation_threshold}` and reward
placeholders). Every problem is an InputError naming the file, the item and the field.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path

from envs.base import Choices, Scenario
from envs.errors import InputError
from envs.threshold import ThresholdGame

SA_FIELDS = (
    "environment",
    "system_prompt",
    "user_prompt",
    "supervised_choice",
    "better_choice",
    "supervised_text",
    "unsupervised_text",
    "neutral_text",
    "params",
)
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


def _require(path: Path, i: int, item: object, fields: Sequence[str], where: str = "") -> dict:
    if not isinstance(item, dict):
        raise InputError(f"{path}: item {i}: expected a JSON object")
    missing = [f for f in fields if f not in item]
    if missing:
        raise InputError(f"{path}: item {i}{where}: missing field {missing[0]!r}")
    return item


def _check_labels(path: Path, i: int, a: str, b: str, fields: tuple[str, str], example) -> None:
    for name, label in zip(fields, (a, b), strict=True):
        if not isinstance(label, str) or not label.strip():
            raise InputError(f"{path}: item {i}: field {name!r} must be a non-empty label")
    if a.strip().lower() == b.strip().lower():
        raise InputError(f"{path}: item {i}: {fields[0]!r} and {fields[1]!r} are the same label")
    for label in FORMAT_LABEL.findall(example or ""):
        if label.strip().lower() not in (a.strip().lower(), b.strip().lower()):
            raise InputError(
                f"{path}: item {i}: format_example names choice {label!r}, "
                f"not one of the two choices {a!r} / {b!r}"
            )


def load_sa_questions(path: str | Path) -> list[Scenario]:
    """Role-play scenarios from an ATP single-agent question file (e.g. question_64.json)."""
    path = Path(path)
    scenarios = []
    for i, raw in enumerate(read_json_list(path)):
        item = _require(path, i, raw, SA_FIELDS)
        comply, violate = item["supervised_choice"], item["better_choice"]
        _check_labels(
            path,
            i,
            comply,
            violate,
            ("supervised_choice", "better_choice"),
            item.get("format_example"),
        )
        params = item["params"]
        try:
            payoffs = {
                "comply": float(params["low_reward"]),
                "violate": float(params["high_reward"]),
            }
        except (KeyError, TypeError, ValueError):
            raise InputError(
                f"{path}: item {i}: params must hold numbers low_reward and high_reward"
            ) from None
        scenarios.append(
            Scenario(
                id=str(item.get("id") or f"{item['environment']}/{i}"),
                paradigm="roleplay",
                name=str(item["environment"]),
                system_prompt=item["system_prompt"],
                situation=INSTRUCTION.sub("", item["user_prompt"]),
                choices=Choices(comply=comply.strip(), violate=violate.strip()),
                payoffs=payoffs,
                supervision_texts={
                    "supervised": item["supervised_text"],
                    "unsupervised": item["unsupervised_text"],
                    "neutral": item["neutral_text"],
                },
            )
        )
    return scenarios


def load_ma_templates(
    path: str | Path,
    size: int,
    thresholds: Sequence[int],
    reward_sets: Sequence[dict[str, float]],
    payoff_mode: str,
    violation: str = "collective",
) -> list[ThresholdGame]:
    """Threshold games from ATP's multi-agent templates file, one per template x k x rewards.

    ATP counts the collective choice as the violation ("collusion"); `violation` can
    say otherwise. The payoff sentence is ATP's own (multiplicative or additive form).
    """
    path = Path(path)
    if violation not in ("collective", "independent"):
        raise InputError(f"env.violation: {violation!r}; expected collective or independent")
    games = []
    for i, raw in enumerate(read_json_list(path)):
        item = _require(path, i, raw, ("environment", "template"))
        t = _require(path, i, item["template"], MA_FIELDS, where=".template")
        collective, independent = t["collective_choice"].strip(), t["independent_choice"].strip()
        _check_labels(
            path,
            i,
            collective,
            independent,
            ("collective_choice", "independent_choice"),
            t.get("format_example"),
        )
        choices = (
            Choices(comply=independent, violate=collective)
            if violation == "collective"
            else Choices(comply=collective, violate=independent)
        )
        text = t["user_prompt_mult" if payoff_mode == "multiplicative" else "user_prompt_add"]
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
                        t["system_prompt"].format(**fill),
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
                            id=f"{item['environment']}/k{k}/{tag}",
                            paradigm="threshold",
                            name=str(item["environment"]),
                            system_prompt=system_prompt,
                            situation=situation,
                            choices=choices,
                            payoffs=dict(r),
                        ),
                        size=size,
                        threshold=int(k),
                        collective_label=collective,
                        payoffs_in_situation=True,
                    )
                )
    return games
