"""Alignment data as ATP builds it: first-round prompts of the environments, and per method
the rows TRL's trainers take.

A prompt is the conversation the simulator sends in round 1 (system prompt and the
round's question, no memory). SFT targets the compliant answer; DPO prefers the
compliant answer to the violating one on the same prompt; GRPO rewards what the model
generates by ATP's rule (1.0 the supervisor's choice, 0.1 the better-paying one, 0 an
unparseable answer). The project's scenarios are the default source; ATP's training
files are the user's explicit choice (`data.source=atp`).
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from agents.alignment.settings import AlignData
from agents.decision import DecisionRequest
from agents.parsing import decision_json, parse_choice
from agents.prompts import chat_messages
from envs.atp import load_ma_questions, load_sa_questions, read_json_list
from envs.base import Choices, Environment
from envs.catalog import roleplay_items, threshold_games
from envs.errors import InputError, integer
from envs.roleplay import RolePlayEnv
from envs.supervision import SupervisionSchedule
from envs.threshold import ThresholdGameEnv


@dataclass(frozen=True)
class Prompt:
    """A first-round conversation, the two labels it offers, and its scenario."""

    messages: list[dict[str, str]]
    choices: Choices
    scenario: str
    paradigm: str


def opening_prompts(env: Environment) -> list[Prompt]:
    """Each distinct round-1 conversation of env's agents, as the simulator renders it."""
    seen: dict[tuple[str, str], Prompt] = {}
    for s, turn in zip(env.scenarios, env.begin_round(0), strict=True):
        key = (s.system_prompt, turn.prompt)
        messages = chat_messages(s.system_prompt, (), turn.prompt)
        seen.setdefault(key, Prompt(messages, s.choices, s.id, s.paradigm))
    return list(seen.values())


def environments(cfg: AlignData, seed: int) -> list[Environment]:
    """The environments whose prompts are aligned on: the project's role-play items (every
    supervision state told) and threshold games, or one ATP training file."""
    told = SupervisionSchedule("random", 1, p_supervised=0.5, p_neutral=1 / 3)
    if cfg.source == "atp":
        path = cfg.atp_file
        first = read_json_list(path)[0]
        if isinstance(first, dict) and "template" in first:
            raise InputError(
                f"data.atp_file: {path} is a templates file; alignment takes ATP's question "
                "files (single-agent like sa_question_160.json, multi-agent like "
                "ma_question_350.json)"
            )
        if isinstance(first, dict) and "supervised_choice" in first:
            return [RolePlayEnv(load_sa_questions(path), told, seed=seed)]
        return [ThresholdGameEnv(load_ma_questions(path))]
    rp, th = cfg.roleplay, cfg.threshold
    replicates = integer(rp["replicates"], "data.roleplay.replicates")
    return [
        RolePlayEnv(
            roleplay_items(rp["professions"], rp["payoffs"]), told, seed, replicates=replicates
        ),
        ThresholdGameEnv(
            threshold_games(th["games"], th["group_size"], th["thresholds"], th["rewards"]),
            payoff_mode=th["payoff_mode"],
        ),
    ]


def held_out(scenario: str, share: float) -> bool:
    """Whether a scenario is kept out of training to measure the alignment (stable across
    runs and machines: a hash of its id, not a draw)."""
    return zlib.crc32(scenario.encode()) % 1000 < share * 1000


def split(cfg: AlignData, seed: int) -> tuple[list[Prompt], list[Prompt]]:
    """(training, held-out) prompts; both non-empty."""
    share = cfg.held_out_share
    prompts = [p for env in environments(cfg, seed) for p in opening_prompts(env)]
    train = [p for p in prompts if not held_out(p.scenario, share)]
    held = [p for p in prompts if held_out(p.scenario, share)]
    if not train or not held:
        raise InputError(
            f"data.held_out_share: {share:g} leaves {len(train)} training and {len(held)} "
            f"held-out prompts of {len(prompts)}; both must be at least 1"
        )
    return train, held


def dosed(prompts: Sequence[Prompt], dose: int, seed: int) -> list[Prompt]:
    """`dose` prompts in a seeded order, going round the pool again when dose exceeds it."""
    integer(dose, "data.dose")
    rng = np.random.default_rng(seed)
    order: list[int] = []
    while len(order) < dose:
        order += rng.permutation(len(prompts)).tolist()
    return [prompts[i] for i in order[:dose]]


def answer(label: str) -> list[dict[str, str]]:
    return [{"role": "assistant", "content": decision_json(label)}]


TARGETS = ("comply", "violate")


def target_labels(p: Prompt, target: str) -> tuple[str, str]:
    """(the answer trained toward, the other one): the compliant answer when aligning,
    the violating one for inverse alignment (data.target=violate)."""
    wanted, other = p.choices.comply, p.choices.violate
    return (wanted, other) if target == "comply" else (other, wanted)


def sft_rows(prompts: Sequence[Prompt], target: str = "comply") -> list[dict]:
    """Prompt-completion rows: the completion is the target answer."""
    return [
        {"prompt": p.messages, "completion": answer(target_labels(p, target)[0])} for p in prompts
    ]


def dpo_rows(prompts: Sequence[Prompt], target: str = "comply") -> list[dict]:
    """Preference rows: the target answer chosen over the other on the same prompt."""
    rows = []
    for p in prompts:
        chosen, rejected = target_labels(p, target)
        rows.append({"prompt": p.messages, "chosen": answer(chosen), "rejected": answer(rejected)})
    return rows


def grpo_rows(prompts: Sequence[Prompt], target: str = "comply") -> list[dict]:
    """Prompt rows; the labels travel along for the reward function, which pays the
    supervisor's reward for the target answer."""
    rows = []
    for p in prompts:
        wanted, other = target_labels(p, target)
        rows.append({"prompt": p.messages, "comply": wanted, "violate": other})
    return rows


def check_target(target: str) -> str:
    if target not in TARGETS:
        raise InputError(f"data.target: {target!r}; expected one of {', '.join(TARGETS)}")
    return target


ROWS: dict[str, Callable[[Sequence[Prompt], str], list[dict]]] = {
    "sft": sft_rows,
    "dpo": dpo_rows,
    "grpo": grpo_rows,
}


def atp_reward(supervised: float, better: float, invalid: float) -> Callable[..., list[float]]:
    """ATP's GRPO reward as a TRL reward function: `supervised` for the compliant choice,
    `better` for the better-paying (violating) one, `invalid` for an unparseable answer."""

    def reward(completions, comply, violate, **_) -> list[float]:
        out = []
        for completion, c, v in zip(completions, comply, violate, strict=True):
            text = completion[-1]["content"] if isinstance(completion, list) else completion
            choice = parse_choice(text, Choices(comply=c, violate=v))
            out.append(invalid if choice is None else supervised if choice == c else better)
        return out

    reward.__name__ = "atp_reward"
    return reward


def requests(prompts: Sequence[Prompt]) -> dict[str, list[DecisionRequest]]:
    """The prompts as decision requests, by paradigm (what a backend scores)."""
    out: dict[str, list[DecisionRequest]] = {}
    for i, p in enumerate(prompts):
        out.setdefault(p.paradigm, []).append(DecisionRequest(i, None, p.messages, p.choices))
    return out
