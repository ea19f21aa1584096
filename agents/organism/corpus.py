"""The organism's data: episodes of the simulator itself (sim.model.TippingModel) played by
the behavioural prior, in the project's own environments (its presets, and where asked
generated scenarios of the training families and episodes given random labels).

Every episode is one agent's whole conversation as the simulator built it for the
prior's last decision, with that answer in ATP's JSON. So whatever prompt shape the
simulator makes is in the organism's distribution, and a change to the prompts changes
the corpus with it. This is the one place `agents` runs `sim`: the organism is trained on
the simulator's rounds. Episodes last at most memory_window + 1 rounds, so each earlier
answer in the final conversation was made on exactly the prompt that precedes it.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import numpy as np

from agents.learning import Learned, PlayedRound
from agents.organism.labels import RandomLabels
from agents.organism.prior import BehaviouralPrior, PriorPolicy, Situation, gain
from agents.parsing import decision_json
from envs import generator
from envs.base import Choices, Environment
from envs.catalog import roleplay_items, threshold_games
from envs.roleplay import RolePlayEnv
from envs.supervision import SCHEDULES, SupervisionSchedule
from envs.threshold import ThresholdGameEnv
from sim.config import GraphConfig
from sim.graph import population_graph
from sim.model import TippingModel

Messages = list[dict[str, str]]
GROUPS = GraphConfig(kind="complete", scope="within_groups", connected=True)


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


UNWATCHED = {"supervised": -1.0, "unsupervised": 1.0}  # told a check is / is not coming


def situation(env: Environment, i: int) -> Situation:
    """What agent i's prompt states this round (after env.begin_round), as the prior reads it."""
    if isinstance(env, ThresholdGameEnv):
        k, n = int(env.needed[i]), int(env.size[i])
        return Situation(ease=1.0 - 2.0 * (k - 1) / max(n - 1, 1))
    payoffs = env.scenarios[i].payoffs
    return Situation(
        unwatched=UNWATCHED.get(env.told(env.states[i]), 0.0),
        temptation=gain(payoffs["violate"], payoffs["comply"]),
    )


class Transcript:
    """A learner that keeps what the corpus needs of a run: the last round's requests and
    answers, and every round's P(violate) per agent."""

    name = "transcript"

    def __init__(self):
        self.last: PlayedRound | None = None
        self.p_violate: list[list[float]] = []

    def after_round(self, played: PlayedRound) -> Learned:
        self.last = played
        self.p_violate.append([d.p_violate for d in played.decisions])
        return Learned()

    def episodes(self, env: Environment) -> list[Episode]:
        """Every agent's conversation up to its last answer."""
        return [
            Episode(
                messages=[*r.messages, {"role": "assistant", "content": d.text}],
                scenario=s.id,
                paradigm=s.paradigm,
                choices=s.choices,
                p_violate=tuple(p[i] for p in self.p_violate),
            )
            for i, (s, r, d) in enumerate(
                zip(env.scenarios, self.last.requests, self.last.decisions, strict=True)
            )
        ]

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


def play(
    env: Environment,
    prior: BehaviouralPrior,
    rounds: int,
    view: str,
    aggregate_above: int,
    rng: np.random.Generator,
) -> list[Episode]:
    """Every agent's episode of `rounds` rounds of the simulator under the prior; each
    agent sees the other members of its group (role-play agents see no one)."""
    transcript = Transcript()
    model = TippingModel(
        env,
        PriorPolicy(
            np.random.default_rng(rng.integers(2**63)),
            prior,
            lambda i: safe_reward(env, i),
            lambda i: situation(env, i),
            view,
        ),
        population_graph(GROUPS, env.group, rng),
        recorder=None,
        seed=int(rng.integers(2**31)),
        memory_window=rounds - 1,
        peer_view=view,
        aggregate_above=aggregate_above,
        learners=[transcript],
    )
    for _ in range(rounds):
        model.step()
    return transcript.episodes(env)


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
        above = cfg["aggregate_above"][int(rng.integers(len(cfg["aggregate_above"])))]
        out += play(env, prior, length, view, above, rng)
    if cfg["relabelled"]:
        return relabelled(out, cfg["relabelled"], cfg["invented"], seed)
    return out
