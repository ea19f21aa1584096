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
from envs.base import Environment
from envs.errors import InputError
from envs.threshold import ThresholdGameEnv
from sim.graph import Neighbors
from sim.recorder import Recorder, exposure


class TippingModel(mesa.Model):
    """Agents on a graph, one environment, one policy; `step()` plays one round.

    A round: the environment opens it, every agent observes, the policy decides for all
    of them in ONE batched call, the environment pays out, every agent remembers, and
    the recorder flushes the round to disk.

    Agent i sits on node i of the graph (a Mesa network space); its neighbours are the
    agents on the adjacent nodes. Planted `deviants` violate in round 0 whatever the
    policy would do (in every round if `deviants_always`); the policy is not asked for
    them then, and their records show p_violate 1.
    """

    def __init__(
        self,
        env: Environment,
        backend: Backend,
        graph: nx.Graph,
        recorder: Recorder,
        *,
        seed: int,
        mode: str = "score",
        memory_window: int = 5,
        peer_view: str = "final_only",
        aggregate_above: int = 10,
        deviants: Sequence[int] = (),
        deviants_always: bool = False,
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
        self.mode = mode
        self.needs_messages = backend.needs_messages
        self.peer_view = peer_view
        self.aggregate_above = aggregate_above
        self.deviants = np.zeros(env.n_agents, bool)
        self.deviants[list(deviants)] = True
        self.deviants_always = deviants_always
        self.round = 0
        self.turns = []
        self.actions: list[PeerAction | None] = [None] * env.n_agents  # last round, by agent
        self.last_round: tuple[list, list, list] = ([], [], [])  # requests, decisions, outcomes
        with collector_paused():
            self.space = Network(graph, capacity=1, random=self.random)
            self.population = [
                TipAgent(self, i, scenario, memory_window)
                for i, scenario in enumerate(env.scenarios)
            ]
            for agent in self.population:
                agent.cell = self.space[agent.index]
            for agent in self.population:
                agent.set_neighbors(
                    sorted(
                        (a for cell in agent.cell.connections.values() for a in cell.agents),
                        key=lambda a: a.index,
                    )
                )
        self.neighbors = Neighbors.from_lists([agent.neighbor_ids for agent in self.population])
        recorder.write_graph(self.neighbors)
        if isinstance(env, ThresholdGameEnv) and env.scope == "neighbourhood":
            env.set_neighbourhoods(self.neighbors.indptr, self.neighbors.indices)

    def step(self) -> None:
        with collector_paused():
            self._play_round()

    def _play_round(self) -> None:
        start = perf_counter()
        t = self.round
        self.turns = self.env.begin_round(t)
        requests = self.agents.map("observe")
        tic = perf_counter()
        decisions = self.decisions(requests)
        decide_s = perf_counter() - tic
        outcomes = self.env.resolve([d.choice for d in decisions])
        seen = exposure(self.neighbors, self.actions)
        for agent, turn, decision, outcome in zip(
            self.population, self.turns, decisions, outcomes, strict=True
        ):
            agent.act(turn.prompt, decision, outcome)
        self.agents.do("remember")
        self.last_round = (requests, decisions, outcomes)
        self.recorder.write_round(
            t,
            self.env,
            [turn.supervision for turn in self.turns],
            requests,
            decisions,
            outcomes,
            self.neighbors.degree,
            seen,
            decide_s=decide_s,
            wall_s=perf_counter() - start,
        )
        self.round += 1

    def planted(self, agent: int, t: int) -> bool:
        """Whether agent's decision in round t is a planted violation, not the policy's."""
        return bool(self.deviants[agent]) and (t == 0 or self.deviants_always)

    def decisions(self, requests: list[DecisionRequest]) -> list[Decision]:
        """The policy's decisions in one batch, planted deviants' violations in between."""
        if not (self.round == 0 or self.deviants_always) or not self.deviants.any():
            return self.backend.decide(requests, self.mode)
        asked = [r for r, planted in zip(requests, self.deviants, strict=True) if not planted]
        answers = iter(self.backend.decide(asked, self.mode) if asked else [])
        return [
            planted_violation(r) if planted else next(answers)
            for r, planted in zip(requests, self.deviants, strict=True)
        ]


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
