"""Chat messages in ATP's layout, and the peer view that makes imitation possible."""

from __future__ import annotations

from collections.abc import Sequence

from agents.decision import Experience, PeerAction

PEER_VIEWS = ("none", "final_only", "choices_and_payoffs", "full")


def chat_messages(system: str, history: Sequence[Experience], prompt: str) -> list[dict]:
    """System prompt; per remembered round the question, the answer and the feedback; the question.

    Feedback follows the answer as its own user message (ATP), so two user messages meet
    where a remembered round ends and the next question begins.
    """
    messages = [{"role": "system", "content": system}]
    for e in history:
        messages += [
            {"role": "user", "content": e.prompt},
            {"role": "assistant", "content": e.answer},
            {"role": "user", "content": e.feedback},
        ]
    messages.append({"role": "user", "content": prompt})
    return messages


def peer_view(peers: Sequence[PeerAction], mode: str, aggregate_above: int) -> str:
    """What the agent is told about its neighbours' round; empty when it sees nothing.

    Above `aggregate_above` neighbours the view is a count per choice with the mean
    payoff ("5 of your 12 neighbours chose X and earned on average Y").
    """
    if mode == "none" or not peers:
        return ""
    if len(peers) > aggregate_above:
        return _aggregate(peers, with_payoffs=mode != "final_only")
    return "What the others did: " + "; ".join(_one(p, mode) for p in peers) + "."


def _one(p: PeerAction, mode: str) -> str:
    choice = f'"{p.choice}"' if p.choice is not None else "no valid choice"
    if mode == "final_only":
        return f"agent {p.agent} chose {choice}"
    if mode == "choices_and_payoffs":
        return f"agent {p.agent} chose {choice} and earned {p.reward:+.4g}"
    return f"agent {p.agent} answered: {p.text!r} (earned {p.reward:+.4g})"


def _aggregate(peers: Sequence[PeerAction], with_payoffs: bool) -> str:
    by_choice: dict[str, list[float]] = {}
    for p in peers:
        by_choice.setdefault(p.choice or "no valid choice", []).append(p.reward)
    parts = []
    for choice, rewards in sorted(by_choice.items()):
        part = f'{len(rewards)} of your {len(peers)} neighbours chose "{choice}"'
        if with_payoffs:
            part += f" and earned on average {sum(rewards) / len(rewards):+.4g}"
        parts.append(part)
    return "; ".join(parts) + "."
