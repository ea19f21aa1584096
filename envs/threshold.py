"""Imitative Strategy Diffusion: n agents in a threshold game, the collective choice a collusion."""

from __future__ import annotations

import operator
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from envs.base import Environment, Outcome, Scenario, Turn
from envs.errors import InputError

PAYOFF_MODES = ("multiplicative", "additive")
SUCCESS_PAYS = ("everyone", "collective")
SCOPES = ("global", "neighbourhood")


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

    scope="neighbourhood" plays the game on the population graph instead: an agent's
    payoff follows from its closed neighbourhood (itself and its neighbours), which
    succeeds if at least ceil(k / size * neighbourhood size) of it take the collective
    choice; the model hands the graph over with `connect`.
    """

    paradigm = "threshold"

    def __init__(
        self,
        games: Sequence[ThresholdGame],
        payoff_mode: str = "multiplicative",
        success_pays: str = "everyone",
        start_capital: float = 1.0,
        scope: str = "global",
    ):
        if payoff_mode not in PAYOFF_MODES:
            raise InputError(f"env.payoff_mode: {payoff_mode!r}; expected one of {PAYOFF_MODES}")
        if success_pays not in SUCCESS_PAYS:
            raise InputError(f"env.success_pays: {success_pays!r}; expected one of {SUCCESS_PAYS}")
        if scope not in SCOPES:
            raise InputError(f"env.scope: {scope!r}; expected one of {SCOPES}")
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
        self.collective = [g.collective_label for g in games for _ in range(g.size)]
        self.payoff_mode = payoff_mode
        self.success_pays = success_pays
        self.scope = scope
        self.capital = np.full(self.n_agents, float(start_capital))
        self.pay = {
            k: np.array([g.scenario.payoffs[k] for g in self.games])[self.group]
            for k in ("high", "normal", "low")
        }
        self.size = np.array([g.size for g in self.games])[self.group]  # players counted
        self.needed = np.array([g.threshold for g in self.games])[self.group]
        self.neighbourhood: tuple[np.ndarray, np.ndarray] | None = None  # (rows, indices)
        self.turns = (
            [turn for g in self.games for turn in [Turn(prompt=self._prompt(g))] * g.size]
            if scope == "global"
            else None
        )

    def connect(self, indptr: np.ndarray, indices: np.ndarray) -> None:
        """neighbourhood scope: play on the population graph (agent i's neighbours are
        indices[indptr[i]:indptr[i+1]]); the global game ignores it."""
        if self.scope != "neighbourhood":
            return
        rows = np.repeat(np.arange(self.n_agents), np.diff(indptr))
        self.neighbourhood = (rows, indices)
        fraction = self.needed / self.size
        self.size = np.diff(indptr) + 1
        self.needed = np.maximum(1, np.ceil(fraction * self.size - 1e-9)).astype(int)
        self.turns = [
            Turn(prompt=self._prompt(self.games[g], k, m))
            for g, k, m in zip(self.group, self.needed.tolist(), self.size.tolist(), strict=True)
        ]

    def begin_round(self, t: int) -> list[Turn]:
        if self.turns is None:
            raise RuntimeError("neighbourhood scope: call connect first")
        return list(self.turns)

    def _prompt(self, game: ThresholdGame, k: int | None = None, m: int | None = None) -> str:
        """The situation and its payoff rule; in a neighbourhood, the agent's own numbers."""
        s = game.scenario
        if k is None:
            payoffs = "" if game.payoffs_in_situation else f" {self.payoff_text(game)}"
        else:
            payoffs = f" {self.payoff_text(game, k, m)}"
        return f"{s.situation}{payoffs}\n{s.choices.format_instruction()}"

    def payoff_text(self, game: ThresholdGame, k: int | None = None, m: int | None = None) -> str:
        """The payoff rule: of the game (k of n players) or of a neighbourhood of m players."""
        p = game.scenario.payoffs
        col = game.collective_label
        other = (
            game.scenario.choices.comply
            if col == game.scenario.choices.violate
            else game.scenario.choices.violate
        )
        verb = "is multiplied by" if self.payoff_mode == "multiplicative" else "grows by"
        who = "everyone's" if self.success_pays == "everyone" else f'the "{col}" choosers\''
        players = (
            f"the {game.size} players"
            if k is None
            else f"the {m} players of your neighbourhood (you and your {m - 1} neighbours)"
        )
        return (
            f'If at least {k or game.threshold} of {players} choose "{col}", {who} capital '
            f'{verb} {p["high"]:g}. Otherwise the capital of those who chose "{col}" {verb} '
            f'{p["low"]:g} and that of those who chose "{other}" {verb} {p["normal"]:g}.'
        )

    def resolve(self, choices: Sequence[str | None]) -> list[Outcome]:
        n = self.n_agents
        if len(choices) != n:
            raise ValueError(f"expected {n} choices, got {len(choices)}")
        collective = np.fromiter(map(operator.eq, choices, self.collective), bool, n)
        valid = np.fromiter((c is not None for c in choices), bool, n)
        if self.scope == "global":
            group = np.asarray(self.group)
            joined = np.bincount(group, weights=collective, minlength=len(self.games))[group]
        else:
            rows, indices = self.neighbourhood
            joined = collective + np.bincount(rows, weights=collective[indices], minlength=n)
        success = joined >= self.needed
        high_for = collective if self.success_pays == "collective" else np.ones_like(collective)
        factor = np.where(
            success,
            np.where(high_for, self.pay["high"], self.pay["normal"]),
            np.where(collective, self.pay["low"], self.pay["normal"]),
        )
        before = self.capital
        after = before * factor if self.payoff_mode == "multiplicative" else before + factor
        self.capital = np.where(valid, after, before)
        reward = self.capital - before
        where = "" if self.scope == "global" else " in your neighbourhood"
        feedback = [
            f'{j:g} of {m}{where} chose "{col}" (needed {k}): the collective option '
            f"{'succeeded' if ok else 'failed'}. "
            + (f"Your reward: {r:+.4g}." if v else "Your answer had no valid choice: reward 0.")
            + f" Your capital: {c:.4g}."
            for j, m, k, col, ok, r, v, c in zip(
                joined.tolist(),
                self.size.tolist(),
                self.needed.tolist(),
                self.collective,
                success.tolist(),
                reward.tolist(),
                valid.tolist(),
                self.capital.tolist(),
                strict=True,
            )
        ]
        return [
            Outcome(reward=r, capital=c, feedback=f)
            for r, c, f in zip(reward.tolist(), self.capital.tolist(), feedback, strict=True)
        ]

    def state_dict(self) -> dict:
        return {"capital": self.capital.tolist()}

    def load_state_dict(self, state: dict) -> None:
        self.capital = np.asarray(state["capital"], dtype=float)
