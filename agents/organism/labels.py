"""A scenario's two labels renamed: the probes' rename check and the corpus's relabelling.

The organism must answer with a label it reads from the format line, not one it has
learned to like. Renaming checks that (agents/organism/probes.py); relabelling a share of
its corpus with random labels, drawn per episode so that none can be remembered, teaches
it (a scenario whose labels are strangers can be answered only by copying one of them).
"""

from __future__ import annotations

import re

import numpy as np

from envs.base import Choices

Messages = list[dict[str, str]]
INSTRUCTION = re.compile(r"\n?IMPORTANT: end your answer.*$", re.DOTALL)  # the format line
INVENTED = "abcdefghijklmnopqrstuvwxyz0123456789"


def renamed_messages(
    messages: Messages, old: Choices, names: tuple[str, str], swap: bool
) -> tuple[Messages, Choices]:
    """The messages with the compliant and violating labels renamed to `names` wherever
    they are said (whole words: prose, peer views, answers), named in the other order in
    each format line if swap; and the new choices."""
    new = Choices(names[0], names[1], old.comply_first != swap)
    by_old = {old.comply: new.comply, old.violate: new.violate}
    words = "|".join(map(re.escape, sorted(by_old, key=len, reverse=True)))
    pattern = re.compile(rf"(?<!\w)({words})(?!\w)")
    out = []
    for m in messages:
        asks = m["role"] == "user" and INSTRUCTION.search(m["content"])
        text = pattern.sub(lambda x: by_old[x.group(1)], INSTRUCTION.sub("", m["content"]))
        out.append({**m, "content": f"{text}\n{new.format_instruction()}" if asks else text})
    return out, new


class RandomLabels:
    """Pairs of random labels in five shapes ("Amber", "Plan amber", "Option Amber",
    "amber river", "the amber"), made of the words of `texts`, a share `invented` of them
    made-up strings of letters and digits (tokens of any shape, so that copying cannot
    lean on words the model has learned)."""

    def __init__(self, texts: list[str], rng: np.random.Generator, invented: float = 0.0):
        self.words = sorted({w for t in texts for w in re.findall(r"[a-z]{3,}", t)})
        self.rng = rng
        self.invented = invented

    def made_up(self) -> str:
        """1-8 random letters and digits."""
        return "".join(self.rng.choice(list(INVENTED), int(self.rng.integers(1, 9))))

    def pair(self) -> tuple[str, str]:
        words = self.rng.choice(self.words, 5, replace=False).tolist()
        while self.invented:  # drawn only when asked: corpus-only draws stay as they were
            words = [self.made_up() if self.rng.random() < self.invented else w for w in words]
            if len(set(words)) == 5:
                break
        a, b, x, y, z = words
        return [
            (a.capitalize(), b.capitalize()),
            (f"{x.capitalize()} {a}", f"{x.capitalize()} {b}"),
            (f"Option {a.capitalize()}", f"Option {b.capitalize()}"),
            (f"{a} {y}", f"{b} {z}"),
            (f"the {a}", f"the {b}"),
        ][int(self.rng.integers(5))]

    def scrambled(self, messages: Messages, choices: Choices, share: float) -> Messages:
        """The messages with a share of the prompts' other words (not the labels', not the
        format line's) each replaced by a random word: a scenario whose story is partly
        strange can still be read from its rule and its payoffs, as an unseen kind must be."""
        keep = {w for label in (choices.comply, choices.violate) for w in re.findall(r"\w+", label)}

        def swap(match: re.Match) -> str:
            word = match.group(0)
            if word in keep or self.rng.random() >= share:
                return word
            return str(self.rng.choice(self.words))

        out = []
        for m in messages:
            if m["role"] == "assistant":
                out.append(m)
                continue
            asks = INSTRUCTION.search(m["content"])
            text = INSTRUCTION.sub("", m["content"])
            text = re.sub(r"[A-Za-z]{3,}", swap, text)
            out.append({**m, "content": text + (asks.group(0) if asks else "")})
        return out

    def relabelled(self, messages: Messages, choices: Choices) -> tuple[Messages, Choices]:
        """The messages with a random pair of labels, in a random order."""
        return renamed_messages(messages, choices, self.pair(), bool(self.rng.integers(2)))
