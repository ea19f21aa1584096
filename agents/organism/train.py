"""Supervised training on answers: the data (tokenised conversations), the objective
(cross-entropy on the assistant's tokens only) and the loop, kept apart as in TRL.

Pre-training and alignment are both this: they differ in the conversations and in
whether every answer of a conversation is a target or only its last.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from tqdm import tqdm
from transformers.utils import logging as hf_logging

from agents.organism.corpus import Episode
from agents.parsing import decision_json
from envs.base import Choices


@dataclass(frozen=True)
class Example:
    """A conversation's token ids, which of them are targets, and its decisions.

    `decisions` are (position, comply token, violate token, P(violate)): at a decision
    token the target is the two-way distribution, not the label that happened to be drawn.
    `group` (the paradigm) lets training stop on one group while it goes on for another.
    """

    ids: list[int]
    targets: list[int]
    decisions: tuple[tuple[int, int, int, float], ...] = ()
    group: str = ""


def answer_spans(mask: Sequence[int]) -> list[int]:
    """Where each run of assistant tokens starts."""
    return [t for t, m in enumerate(mask) if m and (t == 0 or not mask[t - 1])]


def decision_tokens(tokenizer, choices: Choices) -> tuple[int, int, int]:
    """Where in the answer the two labels' answers first differ, and both tokens there."""
    comply, violate = (
        tokenizer(decision_json(label), add_special_tokens=False)["input_ids"]
        for label in (choices.comply, choices.violate)
    )
    j = next(j for j, (a, b) in enumerate(zip(comply, violate, strict=False)) if a != b)
    return j, comply[j], violate[j]


def mention_targets(
    tokenizer, ids: Sequence[int], targets: list[int], choices: Choices
) -> list[int]:
    """`targets` with a next-token target also on every repeated mention of a label.

    With random labels only copying predicts those tokens, so each mention is a lesson in
    the lookup the answer needs: many per conversation where the answer gives one. Only
    the tokens that tell the two labels apart count ("Option" in "Option A" does not).
    """
    comply, violate = (
        set(tokenizer(label, add_special_tokens=False)["input_ids"])
        for label in (choices.comply, choices.violate)
    )
    label_tokens = comply ^ violate
    out, seen = list(targets), set()
    for t, token in enumerate(ids):
        if token in label_tokens and token in seen:
            out[t] = 1
        seen.add(token)
    return out


def tokenized(
    tokenizer, episodes: Sequence[Episode], last_answer_only: bool, label_mentions: bool = False
) -> list[Example]:
    """Episodes through the chat template; targets are the assistant tokens it marks (and,
    with `label_mentions`, the labels' repeated mentions: `mention_targets`)."""
    out = []
    for e in episodes:
        enc = tokenizer.apply_chat_template(
            e.messages, tokenize=True, return_dict=True, return_assistant_tokens_mask=True
        )
        ids, targets = list(enc["input_ids"]), list(enc["assistant_masks"])
        starts = answer_spans(targets)
        j, comply, violate = decision_tokens(tokenizer, e.choices)
        decisions = [(s + j, comply, violate, p) for s, p in zip(starts, e.p_violate, strict=True)]
        if last_answer_only:
            targets = [0] * starts[-1] + targets[starts[-1] :]
            decisions = decisions[-1:]
        if label_mentions:
            targets = mention_targets(tokenizer, ids, targets, e.choices)
        out.append(Example(ids, targets, tuple(decisions), e.paradigm))
    return out


def repeated_runs(tokenizer, n: int, rng: np.random.Generator) -> list[Example]:
    """n runs of 8-48 random tokens said twice, the second time a target.

    Copying with nothing else to learn: the head that continues a sequence seen earlier
    forms in a few hundred steps here, and every token of the vocabulary is read and
    written. Without it the organism copies only labels it has trained on; with it (and
    episodes given random labels), labels it never saw, spelled in several tokens, are
    copied from the format line (README, "A copying warm-up").
    """
    specials = set(tokenizer.all_special_ids)
    vocab = np.array([i for i in range(len(tokenizer)) if i not in specials])
    out = []
    for _ in range(n):
        run = rng.choice(vocab, int(rng.integers(8, 49))).tolist()
        out.append(Example(run + run, [0] * (len(run) + 1) + [1] * (len(run) - 1), (), "copying"))
    return out


def answer_loss(model, batch: dict[str, torch.Tensor]):
    """Mean cross-entropy of the target tokens; the LM head runs on those positions only.

    A decision token's target is the prior's two-way distribution over the labels.
    """
    hidden = model.get_decoder()(
        input_ids=batch["ids"], attention_mask=batch["mask"]
    ).last_hidden_state
    where = batch["targets"][:, 1:].bool()
    logp = model.get_output_embeddings()(hidden[:, :-1][where]).float().log_softmax(-1)

    def nll(tokens: torch.Tensor) -> torch.Tensor:
        return -logp.gather(1, tokens[:, 1:][where][:, None])[:, 0]

    p = batch["p_violate"][:, 1:][where]
    soft = (1 - p) * nll(batch["comply"]) + p * nll(batch["violate"])
    return torch.where(p >= 0, soft, nll(batch["ids"])).mean()


def batches(
    examples: Sequence[Example], batch_tokens: int, rng: np.random.Generator, shortest_first: bool
) -> list[list[int]]:
    """Index lists of similar length (little padding), shortest first or in a seeded order.

    Shortest first is a curriculum: one-round conversations teach the answer format and
    which two labels a scenario offers in many cheap steps, before the long ones.
    """
    order = sorted(range(len(examples)), key=lambda i: (len(examples[i].ids), rng.random()))
    out: list[list[int]] = []
    for i in order:
        if out and (len(out[-1]) + 1) * len(examples[i].ids) <= batch_tokens:
            out[-1].append(i)
        else:
            out.append([i])
    return out if shortest_first else [out[k] for k in rng.permutation(len(out))]


def collated(examples: Sequence[Example], pad: int) -> dict[str, torch.Tensor]:
    """Right-padded ids, attention and target masks, and the decision targets (p < 0: none)."""
    width = max(len(e.ids) for e in examples)
    shape = (len(examples), width)
    batch = {
        "ids": torch.full(shape, pad, dtype=torch.long),
        "mask": torch.zeros(shape, dtype=torch.long),
        "targets": torch.zeros(shape, dtype=torch.long),
        "comply": torch.zeros(shape, dtype=torch.long),
        "violate": torch.zeros(shape, dtype=torch.long),
        "p_violate": torch.full(shape, -1.0),
    }
    for b, e in enumerate(examples):
        n = len(e.ids)
        batch["ids"][b, :n] = torch.tensor(e.ids)
        batch["mask"][b, :n] = 1
        batch["targets"][b, :n] = torch.tensor(e.targets)
        for t, comply, violate, p in e.decisions:
            batch["comply"][b, t] = comply
            batch["violate"][b, t] = violate
            batch["p_violate"][b, t] = p
    return batch


def train(
    model,
    examples: Sequence[Example],
    *,
    pad: int,
    epochs: float,
    lr: float,
    batch_tokens: int,
    seed: int,
    desc: str,
    warmup: float = 0.05,
    finished: Callable[[], Collection[str]] | None = None,
    check_every: int = 0,
    curriculum: bool = False,
) -> dict:
    """AdamW with warmup and cosine decay over `epochs` passes (fractional allowed).

    `finished`, asked every `check_every` steps, names the groups done: their examples
    are left out of the remaining batches, and training ends once every group is done
    (alignment stops per paradigm once the organism is as aligned as asked there, so a
    paradigm that aligns fast is not pushed past its target while another catches up).
    Returns the steps taken and the last loss.
    """
    rng = np.random.default_rng(seed)
    plan: list[list[int]] = []
    total = 0
    while not plan or len(plan) < total:
        epoch = batches(examples, batch_tokens, rng, shortest_first=curriculum and not plan)
        total = total or max(1, math.ceil(epochs * len(epoch)))
        plan += epoch
    plan = plan[:total]
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    warm = max(1, int(warmup * total))
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda s: min(1.0, (s + 1) / warm) * (0.1 + 0.45 * (1 + math.cos(math.pi * s / total))),
    )
    model.train()
    loss = float("nan")
    steps = 0
    quiet = not hf_logging.is_progress_bar_enabled()  # run.progress=false silences these too
    groups = {e.group for e in examples}
    done: Collection[str] = ()
    bar = tqdm(plan, desc=desc, unit="step", leave=False, disable=quiet)
    for steps, batch in enumerate(bar, start=1):
        chosen = [examples[i] for i in batch if examples[i].group not in done]
        if not chosen:
            continue
        value = answer_loss(model, collated(chosen, pad))
        value.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        loss = value.item()
        bar.set_postfix(loss=f"{loss:.3f}")
        if finished is not None and check_every and steps % check_every == 0:
            model.eval()
            done = set(finished())
            if groups <= done:
                break
            model.train()
    bar.close()
    model.eval()
    return {"steps": steps, "loss": loss}
