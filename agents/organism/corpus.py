"""The organism's data: episodes played in the project's own environments under the prior
(its presets, and where asked generated scenarios of the training families and episodes
given random labels).

Every episode is one agent's whole conversation, built as the simulator builds it
(agents.prompts.chat_messages, feedback plus agents.prompts.peer_view), with the prior's
answers in ATP's JSON. Episodes last at most memory_window + 1 rounds, so each earlier
answer in the final conversation was made on exactly the prompt that precedes it.
"""

from __future__ import annotations

import zlib
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import numpy as np

from agents.decision import Experience, PeerAction
from agents.organism.labels import RandomLabels
from agents.organism.prior import BehaviouralPrior
from agents.parsing import decision_json
from agents.prompts import chat_messages, peer_view
from envs import generator
from envs.base import Choices, Environment
from envs.catalog import roleplay_items, threshold_games
from envs.roleplay import RolePlayEnv
from envs.supervision import SCHEDULES, SupervisionSchedule
from envs.threshold import ThresholdGameEnv

Messages = list[dict[str, str]]


@dataclass(frozen=True)
class Episode:
    """One agent's conversation, ending with its last answer, and the scenario it played.

    `p_violate[k]` is the probability with which the prior violated in round k: the
    answer in the conversation is one draw, the probability is what the model is fit to.
    """

    messages: Messages
    scenario: str
    paradigm: str
    choices: Choices
    p_violate: tuple[float, ...]

    @property
    def rounds(self) -> int:
        return len(self.p_violate)

    def complying(self, k: int) -> Episode:
        """The episode cut at round k's question (k rounds of history), answered compliantly."""
        answer = {"role": "assistant", "content": decision_json(self.choices.comply)}
        return Episode(
            [*self.messages[: 2 + 3 * k], answer],
            self.scenario,
            self.paradigm,
            self.choices,
            (*self.p_violate[:k], 0.0),
        )


def held_out(scenario_id: str, share: float) -> bool:
    """Whether a scenario is kept out of alignment to measure it (stable across runs)."""
    return zlib.crc32(scenario_id.encode()) % 1000 < share * 1000


def safe_reward(env: Environment, i: int) -> float:
    """What complying pays agent i when nobody's choice moves anything."""
    payoffs = env.scenarios[i].payoffs
    if isinstance(env, ThresholdGameEnv):
        if env.payoff_mode == "multiplicative":
            return float(env.capital[i]) * (payoffs["normal"] - 1)
        return payoffs["normal"]
    return payoffs["comply"]


def play(
    env: Environment,
    prior: BehaviouralPrior,
    rounds: int,
    view: str,
    aggregate_above: int,
    rng: np.random.Generator,
) -> list[Episode]:
    """Every agent's episode of `rounds` rounds; neighbours are the other group members."""
    n = env.n_agents
    members: dict[int, list[int]] = {}
    for i, g in enumerate(env.group):
        members.setdefault(g, []).append(i)
    neighbours = [[j for j in members[env.group[i]] if j != i] for i in range(n)]
    memory: list[deque[Experience]] = [deque() for _ in range(n)]
    actions: list[PeerAction | None] = [None] * n
    for t in range(rounds):
        turns = env.begin_round(t)
        peers = [[actions[j] for j in neighbours[i] if actions[j] is not None] for i in range(n)]
        p = [prior.p_violate(memory[i], peers[i], safe_reward(env, i), view) for i in range(n)]
        violate = rng.random(n) < np.array(p)
        labels = [s.choices.label(bool(v)) for s, v in zip(env.scenarios, violate, strict=True)]
        prompts = [
            chat_messages(s.system_prompt, tuple(memory[i]), turns[i].prompt)
            for i, s in enumerate(env.scenarios)
        ]
        outcomes = env.resolve(labels)
        actions = [
            PeerAction(i, labels[i], bool(violate[i]), outcomes[i].reward, decision_json(labels[i]))
            for i in range(n)
        ]
        for i, outcome in enumerate(outcomes):
            seen = peer_view([actions[j] for j in neighbours[i]], view, aggregate_above)
            memory[i].append(
                Experience(
                    round=t,
                    prompt=turns[i].prompt,
                    answer=decision_json(labels[i]),
                    choice=labels[i],
                    violated=bool(violate[i]),
                    reward=outcome.reward,
                    feedback=f"{outcome.feedback}\n{seen}" if seen else outcome.feedback,
                    p_violate=p[i],
                )
            )
    return [
        Episode(
            messages=[*prompts[i], {"role": "assistant", "content": memory[i][-1].answer}],
            scenario=s.id,
            paradigm=s.paradigm,
            choices=s.choices,
            p_violate=tuple(e.p_violate for e in memory[i]),
        )
        for i, s in enumerate(env.scenarios)
    ]


def environments(cfg: Mapping, rounds: int, rng: np.random.Generator) -> Iterator[Environment]:
    """Role-play under every supervision schedule, then threshold games, round-robin; each
    preset environment followed by one of fresh generated scenarios of the generator's
    training families where cfg["generated"] asks for them (never its held-out ones)."""
    rp, th, gen = cfg["roleplay"], cfg["threshold"], cfg["generated"]
    items = roleplay_items(rp["professions"], rp["payoffs"])
    games = threshold_games(th["games"], th["group_size"], th["thresholds"], th["rewards"])
    while True:
        for name in SCHEDULES:
            schedule = SupervisionSchedule(name, rounds, p_supervised=float(rng.uniform(0.2, 0.8)))
            yield RolePlayEnv(
                items, schedule, seed=int(rng.integers(2**31)), replicates=rp["replicates"]
            )
            if gen["roleplay"]:
                seed = int(rng.integers(2**31))
                fresh = generator.roleplay_scenarios(gen["roleplay"], seed, "train", rp["payoffs"])
                yield RolePlayEnv(fresh, schedule, seed=seed)
        yield ThresholdGameEnv(games, payoff_mode=th["payoff_mode"])
        if gen["threshold"]:
            fresh = generator.threshold_games(
                gen["threshold"],
                int(rng.integers(2**31)),
                "train",
                th["group_size"],
                th["thresholds"],
                th["rewards"],
                th["payoff_mode"],
            )
            yield ThresholdGameEnv(fresh, payoff_mode=th["payoff_mode"])


def relabelled(corpus: list[Episode], share: float, invented: float, seed: int) -> list[Episode]:
    """The corpus with a share of its episodes given two random labels (their own draws,
    so the rest of the corpus is as it would be without)."""
    rng = np.random.default_rng([seed, 1])
    labels = RandomLabels([m["content"] for e in corpus for m in e.messages], rng, invented)
    out = []
    for e in corpus:
        if rng.random() < share:
            messages, choices = labels.relabelled(e.messages, e.choices)
            e = Episode(messages, e.scenario, e.paradigm, choices, e.p_violate)
        out.append(e)
    return out


def episodes(cfg: Mapping, prior: BehaviouralPrior, seed: int) -> list[Episode]:
    """At least cfg["episodes"] episodes, deterministic given the seed."""
    rng = np.random.default_rng(seed)
    rounds = cfg["memory_window"] + 1
    out: list[Episode] = []
    for env in environments(cfg, rounds, rng):
        if len(out) >= cfg["episodes"]:
            break
        length = int(rng.integers(1, rounds + 1))
        view = cfg["peer_views"][int(rng.integers(len(cfg["peer_views"])))]
        out += play(env, prior, length, view, cfg["aggregate_above"], rng)
    if cfg["relabelled"]:
        return relabelled(out, cfg["relabelled"], cfg["invented"], seed)
    return out
