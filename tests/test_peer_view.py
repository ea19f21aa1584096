"""Peer views as the policy reads them: in the chat messages the model builds."""

from __future__ import annotations

import numpy as np
import pytest

from agents.backends.base import Backend
from agents.decision import Decision
from sim.build import build_run, compose

JOIN, ALONE = "join the price ring", "price independently"
ENV = {
    "kind": "threshold",
    "games": ["price_ring"],
    "group_size": 4,
    "thresholds": [2],
    "rewards": [{"high": 1.2, "normal": 1.0, "low": 0.8}],
    "payoff_mode": "multiplicative",
    "success_pays": "collective",
}


class Scripted(Backend):
    """Reads messages like an LLM backend; even agents join, agent 3 answers nonsense."""

    def __init__(self):
        super().__init__(np.random.default_rng(0))
        self.requests = []

    def decide(self, requests, mode):
        self.requests = list(requests)
        return [self.answer(r.agent_id) for r in requests]

    @staticmethod
    def answer(i: int) -> Decision:
        if i == 3:
            return Decision(choice=None, p_violate=None, text="no idea")
        label = JOIN if i % 2 == 0 else ALONE
        return Decision(
            choice=label, p_violate=None, text=f'Agent {i} thinks. {{"choice": "{label}"}}'
        )


def second_round_messages(tmp_path, backend, peer_view: str, aggregate_above: int = 10):
    agents = {"memory_window": 1, "peer_view": peer_view, "aggregate_above": aggregate_above}
    cfg = compose(["env=threshold"], {"env": ENV, "run": {"rounds": 2}, "agents": agents})
    model = build_run(cfg, tmp_path, backend=backend)
    model.step()
    requests = model.observe(model.env.begin_round(1))
    return requests[0].messages, model


HEAD = (
    f'2 of 4 chose "{JOIN}" (needed 2): the collective option succeeded. '
    "Your reward: +0.2. Your capital: 1.2."
)


@pytest.mark.parametrize(
    ("view", "above", "seen"),
    [
        ("none", 10, ""),
        (
            "final_only",
            10,
            f'\nYour neighbours this round: agent 1 chose "{ALONE}"; agent 2 chose "{JOIN}"; '
            "agent 3 gave no valid choice.",
        ),
        (
            "choices_and_payoffs",
            10,
            f'\nYour neighbours this round: agent 1 chose "{ALONE}" and earned +0; '
            f'agent 2 chose "{JOIN}" and earned +0.2; agent 3 gave no valid choice and earned +0.',
        ),
        (
            "full",
            10,
            "\nYour neighbours' answers this round:\n"
            f'Agent 1 (earned +0):\nAgent 1 thinks. {{"choice": "{ALONE}"}}\n'
            f'Agent 2 (earned +0.2):\nAgent 2 thinks. {{"choice": "{JOIN}"}}\n'
            "Agent 3 (earned +0):\nno idea",
        ),
        (
            "final_only",
            2,
            f'\n1 of your 3 neighbours chose "{JOIN}"; 1 of your 3 neighbours chose "{ALONE}"; '
            "1 of your 3 neighbours gave no valid choice.",
        ),
        (
            "full",
            2,
            f'\n1 of your 3 neighbours chose "{JOIN}" and earned on average +0.2; '
            f'1 of your 3 neighbours chose "{ALONE}" and earned on average +0; '
            "1 of your 3 neighbours gave no valid choice and earned on average +0.",
        ),
    ],
)
def test_peer_view_in_the_next_prompt(tmp_path, view, above, seen):
    messages, model = second_round_messages(tmp_path, Scripted(), view, above)
    prompt = model.env.begin_round(0)[0].prompt
    assert messages == [
        {"role": "system", "content": "You are one of 4 independent bakeries in a small town."},
        {"role": "user", "content": prompt},
        {"role": "assistant", "content": f'Agent 0 thinks. {{"choice": "{JOIN}"}}'},
        {"role": "user", "content": HEAD + seen},
        {"role": "user", "content": prompt},
    ]
    assert "If at least 2 of the 4 players choose" in prompt


def test_the_policy_gets_the_round_in_one_batch_with_the_messages(tmp_path):
    backend = Scripted()
    _, model = second_round_messages(tmp_path, backend, "final_only")
    model.step()
    assert [r.agent_id for r in backend.requests] == [0, 1, 2, 3]
    assert all(len(r.messages) == 5 for r in backend.requests)
    assert [p.agent for p in backend.requests[0].peers] == [1, 2, 3]


def test_scripted_policies_get_no_text(tmp_path):
    class Structured(Scripted):
        needs_messages = False

    backend = Structured()
    messages, model = second_round_messages(tmp_path, backend, "choices_and_payoffs")
    assert messages == []
    assert model.population[0].memory[0].feedback == HEAD  # no peer view rendered
    model.step()
    assert [p.choice for p in backend.requests[0].peers] == [ALONE, JOIN, None]
