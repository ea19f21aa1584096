"""The agent: a Mesa agent on a network cell that observes its situation and remembers."""

from __future__ import annotations

from collections import deque

from mesa.discrete_space import FixedAgent

from agents.decision import Decision, DecisionRequest, Experience, PeerAction
from agents.prompts import chat_messages, peer_view
from envs.base import Outcome, Scenario, Turn


class TipAgent(FixedAgent):
    """One deployed LLM agent bound to an environment slot, fixed to a node of the graph.

    The round is two-phase so that the whole population decides in one batch: `observe`
    turns the environment's turn into a request, the model sends all requests at once,
    and `remember` (once every agent's action is visible) writes the round into memory
    together with what the neighbours did.

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
        self.neighbor_ids: tuple[int, ...] = ()

    def history(self) -> tuple[Experience, ...]:
        return tuple(self.memory) if self.memory_window else ()

    def peers(self) -> tuple[PeerAction, ...]:
        """The neighbours' last round (those that have played one).

        Read from the model's list of actions by index: at 100,000 agents, visiting each
        neighbour object costs more in cache misses than everything else an agent does.
        """
        return tuple(filter(None, map(self.model.actions.__getitem__, self.neighbor_ids)))

    def observe(self, turn: Turn) -> DecisionRequest:
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

    def peer_action(self, decision: Decision, outcome: Outcome) -> PeerAction:
        """This round as the agent's neighbours see it."""
        return PeerAction(
            agent=self.index,
            choice=decision.choice,
            violated=self.scenario.choices.is_violation(decision.choice),
            reward=outcome.reward,
            text=decision.text,
        )

    def remember(self, prompt: str, decision: Decision, outcome: Outcome) -> None:
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
                violated=self.scenario.choices.is_violation(decision.choice),
                reward=outcome.reward,
                feedback=feedback,
                p_violate=decision.p_violate,
            )
        )
