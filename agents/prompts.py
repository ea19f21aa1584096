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

    final_only: each neighbour's choice (ATP); choices_and_payoffs: and what it earned;
    full: its whole answer and what it earned. Above `aggregate_above` neighbours every
    mode becomes a count per choice ("5 of your 12 neighbours chose X"), with the mean
    payoff unless final_only, so that a large neighbourhood does not flood the prompt.
    """
    if mode == "none" or not peers:
        return ""
    if len(peers) > aggregate_above:
        return _aggregate(peers, with_payoffs=mode != "final_only")
    if mode == "full":
        return "Your neighbours' answers this round:\n" + "\n".join(
            f"Agent {p.agent} (earned {p.reward:+.4g}):\n{p.text}" for p in peers
        )
    return "Your neighbours this round: " + "; ".join(_one(p, mode) for p in peers) + "."


def _chose(choice: str | None) -> str:
    return f'chose "{choice}"' if choice is not None else "gave no valid choice"


def _one(p: PeerAction, mode: str) -> str:
    if mode == "final_only":
        return f"agent {p.agent} {_chose(p.choice)}"
    return f"agent {p.agent} {_chose(p.choice)} and earned {p.reward:+.4g}"


def _aggregate(peers: Sequence[PeerAction], with_payoffs: bool) -> str:
    by_choice: dict[str | None, list[float]] = {}
    for p in peers:
        by_choice.setdefault(p.choice, []).append(p.reward)
    parts = []
    for choice in sorted(by_choice, key=lambda c: (c is None, c or "")):
        rewards = by_choice[choice]
        part = f"{len(rewards)} of your {len(peers)} neighbours {_chose(choice)}"
        if with_payoffs:
            part += f" and earned on average {sum(rewards) / len(rewards):+.4g}"
        parts.append(part)
    return "; ".join(parts) + "."
