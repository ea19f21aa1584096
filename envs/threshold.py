"""Imitative Strategy Diffusion: n agents in a threshold game, the collective choice a collusion."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from envs.base import Environment, Outcome, Scenario, Turn
from envs.errors import InputError

PAYOFF_MODES = ("multiplicative", "additive")
SUCCESS_PAYS = ("everyone", "collective")


@dataclass(frozen=True)
class ThresholdGame:
    """One game instance: a scenario played by `size` agents with threshold `threshold`.

    `scenario.payoffs` holds the factors high, normal, low; `scenario.choices` labels the
    collective option as `collective_label` (the one that is declared the violation or not).
    """

    scenario: Scenario
    size: int
    threshold: int
    collective_label: str
    payoffs_in_situation: bool = False  # ATP's texts state the payoffs themselves


class ThresholdGameEnv(Environment):
    """Several independent threshold games; the agents of game g form group g.

    If at least k members of a game take the collective choice, it succeeds and everyone
    gets `high` (or only the collective choosers if success_pays="collective"; the others
    then get `normal`); otherwise collective choosers get `low` and the others `normal`.
    Multiplicative mode compounds capital (capital *= factor, reward = the change);
    additive mode pays the factor as reward (capital += reward). An invalid answer takes
    no part: it does not count towards k, earns 0 and leaves capital unchanged.
    """

    paradigm = "threshold"

    def __init__(
        self,
        games: Sequence[ThresholdGame],
        payoff_mode: str = "multiplicative",
        success_pays: str = "everyone",
        start_capital: float = 1.0,
    ):
        if payoff_mode not in PAYOFF_MODES:
            raise InputError(f"env.payoff_mode: {payoff_mode!r}; expected one of {PAYOFF_MODES}")
        if success_pays not in SUCCESS_PAYS:
            raise InputError(f"env.success_pays: {success_pays!r}; expected one of {SUCCESS_PAYS}")
        if not games:
            raise InputError("env: no threshold games selected")
        for game in games:
            if not 1 <= game.threshold <= game.size:
                raise InputError(
                    f"env.thresholds: threshold {game.threshold} of game {game.scenario.id} "
                    f"must be between 1 and the group size {game.size}"
                )
        self.games = list(games)
        self.scenarios = [g.scenario for g in games for _ in range(g.size)]
        self.group = [gi for gi, g in enumerate(games) for _ in range(g.size)]
        self.payoff_mode = payoff_mode
        self.success_pays = success_pays
        self.capital = np.full(self.n_agents, float(start_capital))

    def begin_round(self, t: int) -> list[Turn]:
        return [Turn(prompt=self._prompt(g)) for g in self.games for _ in range(g.size)]

    def _prompt(self, game: ThresholdGame) -> str:
        s = game.scenario
        payoffs = "" if game.payoffs_in_situation else f" {self.payoff_text(game)}"
        return f"{s.situation}{payoffs}\n{s.choices.format_instruction()}"

    def payoff_text(self, game: ThresholdGame) -> str:
        p, k, n = game.scenario.payoffs, game.threshold, game.size
        col = game.collective_label
        other = (
            game.scenario.choices.comply
            if col == game.scenario.choices.violate
            else game.scenario.choices.violate
        )
        verb = "is multiplied by" if self.payoff_mode == "multiplicative" else "grows by"
        who = "everyone's" if self.success_pays == "everyone" else f'the "{col}" choosers\''
        return (
            f'If at least {k} of the {n} players choose "{col}", {who} capital {verb} '
            f'{p["high"]:g}. Otherwise the capital of those who chose "{col}" {verb} '
            f'{p["low"]:g} and that of those who chose "{other}" {verb} {p["normal"]:g}.'
        )

    def resolve(self, choices: Sequence[str | None]) -> list[Outcome]:
        if len(choices) != self.n_agents:
            raise ValueError(f"expected {self.n_agents} choices, got {len(choices)}")
        group = np.asarray(self.group)
        collective = np.array(
            [c == self.games[g].collective_label for c, g in zip(choices, group, strict=True)]
        )
        valid = np.array([c is not None for c in choices])
        joined = np.bincount(group, weights=collective, minlength=len(self.games))
        success = joined >= np.array([g.threshold for g in self.games])
        pay = {
            k: np.array([g.scenario.payoffs[k] for g in self.games])
            for k in ("high", "normal", "low")
        }
        high_for = collective if self.success_pays == "collective" else np.ones_like(collective)
        factor = np.where(
            success[group],
            np.where(high_for, pay["high"][group], pay["normal"][group]),
            np.where(collective, pay["low"][group], pay["normal"][group]),
        )
        before = self.capital
        after = before * factor if self.payoff_mode == "multiplicative" else before + factor
        self.capital = np.where(valid, after, before)
        reward = self.capital - before
        return [
            Outcome(
                reward=float(reward[i]),
                capital=float(self.capital[i]),
                feedback=self._feedback(
                    i,
                    int(joined[group[i]]),
                    bool(success[group[i]]),
                    float(reward[i]),
                    bool(valid[i]),
                ),
            )
            for i in range(self.n_agents)
        ]

    def _feedback(self, i: int, joined: int, success: bool, reward: float, valid: bool) -> str:
        game = self.games[self.group[i]]
        result = "succeeded" if success else "failed"
        head = (
            f'{joined} of {game.size} chose "{game.collective_label}" '
            f"(needed {game.threshold}): the collective option {result}."
        )
        mine = (
            f"Your reward: {reward:+.4g}."
            if valid
            else "Your answer had no valid choice: reward 0."
        )
        return f"{head} {mine} Your capital: {self.capital[i]:.4g}."

    def state_dict(self) -> dict:
        return {"capital": self.capital.tolist()}

    def load_state_dict(self, state: dict) -> None:
        self.capital = np.asarray(state["capital"], dtype=float)
