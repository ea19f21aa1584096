"""TippingModel: the Mesa model whose step is one round of the Alignment Tipping Process."""

from __future__ import annotations

from time import perf_counter

import mesa
import networkx as nx

from agents.agent import TipAgent
from agents.backends.base import Backend
from envs.base import Environment
from sim.recorder import Recorder


class TippingModel(mesa.Model):
    """Agents on a graph, one environment, one policy; `step()` plays one round.

    A round: the environment opens it, every agent observes, the policy decides for all
    of them in ONE batched call, the environment pays out, every agent remembers, and
    the recorder flushes the round to disk.
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
    ):
        super().__init__(seed=seed)
        backend.check_mode(mode)
        self.env = env
        self.backend = backend
        self.graph = graph
        self.recorder = recorder
        self.mode = mode
        self.peer_view = peer_view
        self.aggregate_above = aggregate_above
        self.round = 0
        self.turns = []
        self.population = [
            TipAgent(self, i, scenario, memory_window) for i, scenario in enumerate(env.scenarios)
        ]
        for agent in self.population:
            agent.neighbors = [self.population[j] for j in sorted(graph.neighbors(agent.index))]

    def step(self) -> None:
        start = perf_counter()
        t = self.round
        self.turns = self.env.begin_round(t)
        requests = self.agents.map("observe")
        tic = perf_counter()
        decisions = self.backend.decide(requests, self.mode)
        decide_s = perf_counter() - tic
        outcomes = self.env.resolve([d.choice for d in decisions])
        for agent, turn, decision, outcome in zip(
            self.population, self.turns, decisions, outcomes, strict=True
        ):
            agent.act(turn.prompt, decision, outcome)
        self.agents.do("remember")
        self.recorder.write_round(
            t,
            self.env,
            [turn.supervision for turn in self.turns],
            requests,
            decisions,
            outcomes,
            [len(a.neighbors) for a in self.population],
            decide_s=decide_s,
            wall_s=perf_counter() - start,
        )
        self.round += 1
