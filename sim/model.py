"""TippingModel: the Mesa model whose step is one round of the Alignment Tipping Process."""

from __future__ import annotations

import gc
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from time import perf_counter

import mesa
import networkx as nx
import numpy as np
from mesa.discrete_space import Network

from agents.agent import TipAgent
from agents.backends.base import Backend
from agents.decision import Decision, DecisionRequest, PeerAction
from agents.guard import Guard
from agents.guard.base import Review, Routed
from agents.learning import Learner, PlayedRound
from envs.base import Environment, Outcome, Turn
from envs.errors import InputError
from sim.graph import Neighbors
from sim.recorder import Recorder, exposure


class TippingModel(mesa.Model):
    """Agents on a graph, one environment, one policy; `step()` plays one round.

    A round, in the order `step` runs its stages:

        begin     the environment opens round t: every agent's turn
        observe   every agent builds its request (scenario, memory, neighbours' last round)
        decide    the policy decides for all of them in ONE batched call
        guard     (with a guard) it reviews every answer in ONE batched call
        resolve   the environment pays the chosen labels out
        remember  every agent stores the round and what its neighbours did
        record    the recorder flushes the round's rows to disk (a model without one,
                  such as the one playing the organism's corpus, keeps no records)
        learn     learners (self-evolution, reference probes) see the round; new adapters
                  apply from t+1

    Agent i sits on node i of the graph (a Mesa network space); its neighbours are the
    agents on the adjacent nodes. Planted `deviants` violate in round 0 whatever the
    policy would do (in every round if `deviants_always`); the policy is not asked for
    them then, their records show p_violate 1, and learners do not see them.

    Mesa's `steps` counts the rounds played (a checkpoint restores it).
    """

    def __init__(
        self,
        env: Environment,
        backend: Backend,
        graph: nx.Graph,
        recorder: Recorder | None,
        *,
        seed: int,
        mode: str = "score",
        memory_window: int = 5,
        peer_view: str = "final_only",
        aggregate_above: int = 10,
        deviants: Sequence[int] = (),
        deviants_always: bool = False,
        learners: Sequence[Learner] = (),
        guard: Guard | None = None,
    ):
        super().__init__(seed=seed)
        backend.check_mode(mode)
        if backend.needs_history and memory_window < 1:
            raise InputError(
                f"agents.memory_window: backend {type(backend).__name__} decides from the "
                "agent's last round, so it needs agents.memory_window >= 1"
            )
        if graph.number_of_nodes() < env.n_agents:
            raise InputError(
                f"graph: {graph.number_of_nodes()} nodes for {env.n_agents} agents; "
                "every agent needs a node"
            )
        self.env = env
        self.backend = backend
        self.recorder = recorder
        self.learners = list(learners)
        self.guard = guard
        self.mode = mode
        self.needs_messages = backend.needs_messages or (guard is not None and guard.needs_messages)
        self.peer_view = peer_view
        self.aggregate_above = aggregate_above
        self.deviants = np.zeros(env.n_agents, bool)
        self.deviants[list(deviants)] = True
        self.deviants_always = deviants_always
        self.round = 0  # the round being played (the next one between steps)
        self.actions: list[PeerAction | None] = [None] * env.n_agents  # last round, by agent
        with collector_paused():
            self.space = Network(graph, capacity=1, random=self.random)
            self.population = [
                TipAgent(self, i, scenario, memory_window)
                for i, scenario in enumerate(env.scenarios)
            ]
            for agent in self.population:
                agent.cell = self.space[agent.index]
            self.neighbors = Neighbors.from_lists(
                [
                    sorted(a.index for c in agent.cell.connections.values() for a in c.agents)
                    for agent in self.population
                ]
            )
        for agent in self.population:
            agent.neighbor_ids = self.neighbors.of(agent.index)
        env.connect(self.neighbors.indptr, self.neighbors.indices)

    def step(self) -> None:
        with collector_paused():
            self.round = self.steps - 1  # Mesa counted this step before calling it
            tic = perf_counter()
            turns = self.env.begin_round(self.round)
            requests = self.observe(turns)
            decisions, decide_s = self.decide(requests)
            reviews, routed = self.review(requests, decisions)
            outcomes, own_outcomes = self.resolve(routed)
            seen = exposure(self.neighbors, self.actions)  # what each agent saw deciding
            self.remember(turns, routed, outcomes, own_outcomes)
            self.record(turns, requests, decisions, outcomes, seen, decide_s, tic, reviews)
            self.learn(requests, routed.own, own_outcomes, routed.corrections)
            self.round = self.steps

    # -- the stages, in order ----------------------------------------------------------

    def observe(self, turns: Sequence[Turn]) -> list[DecisionRequest]:
        return [agent.observe(turn) for agent, turn in zip(self.population, turns, strict=True)]

    def decide(self, requests: list[DecisionRequest]) -> tuple[list[Decision], float]:
        """The policy's decisions in one batch, planted violations in between; seconds."""
        tic = perf_counter()
        planted = self.planted()
        if not planted.any():
            return self.backend.decide(requests, self.mode), perf_counter() - tic
        asked = [r for r, p in zip(requests, planted, strict=True) if not p]
        answers = iter(self.backend.decide(asked, self.mode) if asked else [])
        decisions = [
            planted_violation(r) if p else next(answers)
            for r, p in zip(requests, planted, strict=True)
        ]
        return decisions, perf_counter() - tic

    def review(
        self, requests: list[DecisionRequest], decisions: list[Decision]
    ) -> tuple[list[Review] | None, Routed]:
        """The guard's ONE batched review (none without a guard), and so which decision
        the environment pays, the neighbours see and each agent remembers."""
        if self.guard is None:
            return None, Routed.unguarded(decisions)
        reviews = self.guard.review(requests, decisions)
        return reviews, self.guard.route(decisions, reviews)

    def resolve(self, routed: Routed) -> tuple[list[Outcome], list[Outcome]]:
        """The environment pays out; and what each agent's own decision earned or would
        have earned (asked first, so both rounds see the same random draws)."""
        own = None if routed.own is routed.paid else self.env.what_if(choices(routed.own))
        outcomes = self.env.resolve(choices(routed.paid))
        return outcomes, outcomes if own is None else own

    def remember(
        self,
        turns: Sequence[Turn],
        routed: Routed,
        outcomes: Sequence[Outcome],
        own_outcomes: Sequence[Outcome],
    ) -> None:
        """Every agent's action becomes visible, then every agent remembers the round
        (with a guard: what the neighbours see and what the agent remembers may differ)."""
        self.actions = [
            agent.peer_action(d, o)
            for agent, d, o in zip(self.population, routed.shown, outcomes, strict=True)
        ]
        for agent, turn, d, o in zip(self.population, turns, routed.own, own_outcomes, strict=True):
            agent.remember(turn.prompt, d, o)

    def record(
        self, turns, requests, decisions, outcomes, seen, decide_s, tic, reviews=None
    ) -> None:
        if self.recorder is None:
            return
        if self.round == 0:
            self.recorder.write_graph(self.neighbors)
        self.recorder.write_round(
            self.round,
            self.env,
            [turn.supervision for turn in turns],
            requests,
            decisions,
            outcomes,
            self.neighbors.degree,
            seen,
            decide_s=decide_s,
            wall_s=perf_counter() - tic,
            reviews=reviews,
        )

    def learn(self, requests, decisions, outcomes, corrections=None) -> None:
        """Learners see the policy's own decisions as the agents remember them (and a
        guard's corrections at position=training); new adapters apply next round."""
        if not self.learners:
            return
        own = np.flatnonzero(~self.planted()).tolist()
        played = PlayedRound(
            self.round,
            [requests[i] for i in own],
            [decisions[i] for i in own],
            [outcomes[i] for i in own],
            None if corrections is None else [corrections[i] for i in own],
        )
        for learner in self.learners:
            learned = learner.after_round(played)
            for i, adapter in learned.adapters.items():
                self.population[i].adapter = adapter
            if learned.updates:
                self.recorder.write_updates(learned.updates)
            if learned.references:
                self.recorder.write_references(learned.references)

    # -----------------------------------------------------------------------------------

    def planted(self) -> np.ndarray:
        """Which agents' decisions this round are planted violations, not the policy's."""
        if self.round == 0 or self.deviants_always:
            return self.deviants
        return np.zeros_like(self.deviants)


def choices(decisions: Sequence[Decision]) -> list[str | None]:
    return [d.choice for d in decisions]


def planted_violation(request: DecisionRequest) -> Decision:
    label = request.choices.violate
    return Decision(choice=label, p_violate=1.0, text=f'{{"choice": "{label}"}}')


@contextmanager
def collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector off for the duration (restored after).

    A round allocates millions of short-lived, acyclic objects (requests, decisions,
    memories) that reference counting frees; meanwhile the collector's full passes walk
    the whole population's memory again and again, which at 100,000 agents takes most of
    the round. Cycles made during the round are collected after it.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
