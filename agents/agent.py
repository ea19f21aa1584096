"""The agent: a Mesa agent on a network cell that observes its situation and remembers."""

from __future__ import annotations

from collections import deque

from mesa.discrete_space import FixedAgent

from agents.decision import Decision, DecisionRequest, Experience, PeerAction
from agents.prompts import chat_messages, peer_view
from envs.base import Outcome, Scenario


class TipAgent(FixedAgent):
    """One deployed LLM agent bound to an environment slot, fixed to a node of the graph.

    The round is two-phase so that the whole population decides in one batch:
    `observe` builds the request, the model sends all requests at once, `act` stores the
    decision and its outcome, and `remember` (after every agent has acted) writes the
    round into memory together with what the neighbours did.

    Chat messages and the peer view are text for LLM policies only: when the model's
    policy does not read messages (`model.needs_messages` is false) they are not built.
    """

    def __init__(self, model, index: int, scenario: Scenario, memory_window: int):
        super().__init__(model)
        self.index = index
        self.scenario = scenario
        self.memory: deque[Experience] = deque(maxlen=memory_window or None)
        self.memory_window = memory_window
        self.adapter: str | None = None
        self.neighbors: list[TipAgent] = []
        self.neighbor_ids: tuple[int, ...] = ()
        self.pending: tuple[str, Decision, Outcome] | None = None

    @property
    def action(self) -> PeerAction | None:
        """This agent's last round as its peers see it (None before its first)."""
        return self.model.actions[self.index]

    @action.setter
    def action(self, value: PeerAction | None) -> None:
        self.model.actions[self.index] = value

    def set_neighbors(self, neighbors: list[TipAgent]) -> None:
        self.neighbors = neighbors
        self.neighbor_ids = tuple(n.index for n in neighbors)

    def history(self) -> tuple[Experience, ...]:
        return tuple(self.memory) if self.memory_window else ()

    def peers(self) -> tuple[PeerAction, ...]:
        """The neighbours' last round (those that have played one).

        Read from the model's list of actions by index: at 100,000 agents, visiting each
        neighbour object costs more in cache misses than everything else an agent does.
        """
        return tuple(filter(None, map(self.model.actions.__getitem__, self.neighbor_ids)))

    def observe(self) -> DecisionRequest:
        turn = self.model.turns[self.index]
        history = self.history()
        messages = (
            chat_messages(self.scenario.system_prompt, history, turn.prompt)
            if self.model.needs_messages
            else []
        )
        return DecisionRequest(
            agent_id=self.index,
            adapter=self.adapter,
            messages=messages,
            choices=self.scenario.choices,
            history=history,
            peers=self.peers(),
        )

    def act(self, prompt: str, decision: Decision, outcome: Outcome) -> None:
        self.pending = (prompt, decision, outcome)
        self.action = PeerAction(
            agent=self.index,
            choice=decision.choice,
            violated=self.scenario.choices.is_violation(decision.choice),
            reward=outcome.reward,
            text=decision.text,
        )

    def remember(self) -> None:
        prompt, decision, outcome = self.pending
        feedback = outcome.feedback
        if self.model.needs_messages:
            seen = peer_view(self.peers(), self.model.peer_view, self.model.aggregate_above)
            feedback = f"{feedback}\n{seen}" if seen else feedback
        self.memory.append(
            Experience(
                round=self.model.round,
                prompt=prompt,
                answer=decision.text,
                choice=decision.choice,
                violated=self.action.violated,
                reward=outcome.reward,
                feedback=feedback,
                p_violate=decision.p_violate,
            )
        )
        self.pending = None
