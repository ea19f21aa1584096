"""The agent: a mesa.Agent that observes its situation and remembers what it earned."""

from __future__ import annotations

from collections import deque

import mesa

from agents.decision import Decision, DecisionRequest, Experience, PeerAction
from agents.prompts import chat_messages, peer_view
from envs.base import Outcome, Scenario


class TipAgent(mesa.Agent):
    """One deployed LLM agent bound to an environment slot.

    The round is two-phase so that the whole population decides in one batch:
    `observe` builds the request, the model sends all requests at once, `act` stores the
    decision and its outcome, and `remember` (after every agent has acted) writes the
    round into memory together with what the neighbours did.
    """

    def __init__(self, model: mesa.Model, index: int, scenario: Scenario, memory_window: int):
        super().__init__(model)
        self.index = index
        self.scenario = scenario
        self.memory: deque[Experience] = deque(maxlen=memory_window or None)
        self.memory_window = memory_window
        self.adapter: str | None = None
        self.neighbors: list[TipAgent] = []
        self.action: PeerAction | None = None  # this agent's last round, as peers see it
        self.pending: tuple[str, Decision, Outcome] | None = None

    def history(self) -> tuple[Experience, ...]:
        return tuple(self.memory) if self.memory_window else ()

    def peers(self) -> tuple[PeerAction, ...]:
        return tuple(n.action for n in self.neighbors if n.action is not None)

    def observe(self) -> DecisionRequest:
        turn = self.model.turns[self.index]
        history = self.history()
        return DecisionRequest(
            agent_id=self.index,
            adapter=self.adapter,
            messages=chat_messages(self.scenario.system_prompt, history, turn.prompt),
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
        seen = peer_view(self.peers(), self.model.peer_view, self.model.aggregate_above)
        self.memory.append(
            Experience(
                round=self.model.round,
                prompt=prompt,
                answer=decision.text,
                choice=decision.choice,
                violated=self.scenario.choices.is_violation(decision.choice),
                reward=outcome.reward,
                feedback=f"{outcome.feedback}\n{seen}" if seen else outcome.feedback,
                p_violate=decision.p_violate,
            )
        )
        self.pending = None
