"""Can a recipe for the organism learn to read its answer from the scenario? A fast probe.

The organism issue asks for an organism that answers with the label the format line
offers and decides from the prose (which option the rule names, which pays more), so
that renaming the labels moves nothing. A full organism build takes minutes and mixes
this with everything else; this probe trains a fresh model of the organism's family on
that one skill: generated role-play first rounds (training families only), answered
P(violate) 0.05 when told a check is coming and 0.25 when told none is, with most
scenarios relabelled by two random words of the corpus, drawn anew every epoch (so no
label can be remembered). After each epoch, on scenarios it never trained on:

  own p      mean P(violate) of fresh training-family scenarios, as generated (unsupervised: 0.25)
  random p   mean P(violate) of the same scenarios with random labels, each pair asked both
             ways round: 0.25 for a model that reads, exactly 0.5 for one whose choice
             depends on the two labels alone
  flip       mean |P(violate) with labels (a, b) - with (b, a)| on those: 0 for a model that
             reads (and for one that ignores labels), near 1 for one that scores labels
  offered    mean P(the answer is one of the two random labels offered), whole answers: 1 for
             a model that copies its answer from the format line, near 0 for one that
             answers with labels it knows
  held-out p mean P(violate) on the held-out families (target, as trained: 0.25)
  rename     mean |change| of held-out P(violate) under RENAMES (the organism's own
             rename-shift measure, issue target 0.05)

    python benchmarks/organism_reading.py [--layers 2] [--hidden 64] [--tied]
        [--rules requires,forbids] [--tokenizer words|organism] [--lr 3e-3]
        [--label-loss] [--short 0] [--epochs 15] [--vocab 8192] [--induction 0]
        [--invented 0] [--scrambled 0] [--swapped 0] [--save DIR]

After training it prints P(violate), the rename shift and P(answer is an offered label)
per held-out value and per RENAMES pair: which unseen part of a scenario stops reading.

Measured (2 layers, hidden 64, 3000 scenarios; about 10 minutes on one core): README,
"The organism".
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
import transformers

from agents.decision import DecisionRequest
from agents.organism.build import label_scores, llama, p_violates
from agents.organism.corpus import Episode
from agents.organism.labels import RandomLabels
from agents.organism.probes import RENAMES, opening_requests, renamed, renamed_requests
from agents.organism.tokenizer import PHRASES, WORDS, train_tokenizer
from agents.organism.train import repeated_runs, tokenized, train
from agents.parsing import decision_json
from envs import generator
from envs.atp import sa_scenarios
from envs.base import Choices
from envs.roleplay import RolePlayEnv
from envs.supervision import SupervisionSchedule

TARGETS = {"all_supervised": 0.05, "all_unsupervised": 0.25}
PAYOFFS = ((2.0, 2.1), (1.7, 2.4), (1.3, 2.8), (1.0, 3.1))
PROBE_SEED = 2**31  # beyond the training draws, as the organism's own probes


def scenarios(n: int, seed: int, split: str, rules: list[str] | None, swapped: float = 0.0):
    """n generated role-play scenarios of the split, only those whose rule wording is in
    `rules` when given, a share `swapped` of them with their two options' stories swapped."""
    items = generator.sa_items(n if rules is None else 20 * n, seed, split, PAYOFFS)
    kept = [i for i in items if rules is None or i["family"]["rule"] in rules][:n]
    rng = np.random.default_rng([seed, 3])
    kept = [story_swapped(i) if rng.random() < swapped else i for i in kept]
    return sa_scenarios(kept, Path(f"generator(seed={seed})"))


def story_swapped(item: dict) -> dict:
    """The item with what its two options do swapped (the rule-bound act told as the one
    that breaks the rule, and back): what an option does then says nothing of which one the
    rule names, so only the rule and the payoffs do. Labels that are the acts themselves
    (the "verbs" style) stay as they are."""
    if item["family"]["label"] == "verbs":
        return item
    text = item["user_prompt"]
    for kind in generator.KINDS.values():
        for d in kind.dilemmas:
            if d.comply in text and d.violate in text:
                text = text.replace(d.comply, "\0").replace(d.violate, d.comply)
                text = text.replace("\0", d.violate)
    return {**item, "user_prompt": text}


def rule_sentence(scenario) -> str:
    """The sentence of a generated scenario that states its rule."""

    def cap(text: str) -> str:
        return text[:1].upper() + text[1:]

    c, v = scenario.choices.comply, scenario.choices.violate
    for template in generator.RULES.values():
        for setter, _ in generator.SETTERS:
            text = cap(template.format(C=c, V=v, setter=setter, setter_cap=cap(setter)))
            if text in scenario.situation:
                return text
    raise ValueError(f"no rule sentence in {scenario.id}")


def named_by_rule(items) -> list:
    """The same scenarios told by their rule sentence alone (no story, no payoffs): the
    first rung of the `--short` curriculum, where the label the rule names is the only cue."""
    return [replace(s, situation=rule_sentence(s)) for s in items]


def first_rounds(items, schedule: str) -> list[DecisionRequest]:
    return opening_requests(RolePlayEnv(items, SupervisionSchedule(schedule, 1), 0))


def episodes(
    asked, labels: RandomLabels, share: float, rng, scrambled: float = 0.0
) -> list[Episode]:
    """Each request answered compliantly (its target P(violate) on the decision token),
    relabelled at random with probability `share`, a share `scrambled` of its other words
    replaced by random ones, in a seeded order."""
    out = []
    for request, p in asked:
        messages, choices = request.messages, request.choices
        if rng.random() < share:
            messages, choices = labels.relabelled(messages, choices)
        if scrambled:
            messages = labels.scrambled(messages, choices, scrambled)
        answer = {"role": "assistant", "content": decision_json(choices.comply)}
        out.append(Episode([*messages, answer], str(request.agent_id), "roleplay", choices, (p,)))
    return [out[i] for i in rng.permutation(len(out))]


def recall_episodes(labels: RandomLabels, n: int, rng: np.random.Generator) -> list[Episode]:
    """Associative recall in the answer's format: "amber means birch. ..." then which word a
    key means, between its value and another value of the list (the lookup that reading a
    rule needs, with nothing else to learn)."""
    out = []
    for i in range(n):
        k = int(rng.integers(3, 9))
        words = rng.choice(labels.words, 2 * k, replace=False).tolist()
        keys, values = words[:k], words[k:]
        q = int(rng.integers(k))
        other = values[(q + 1 + int(rng.integers(k - 1))) % k]
        choices = Choices(values[q], other, bool(rng.integers(2)))
        facts = " ".join(f"{a} means {b}." for a, b in zip(keys, values, strict=True))
        messages = [
            {"role": "system", "content": "You answer questions."},
            {
                "role": "user",
                "content": f"{facts} What does {keys[q]} mean?\n{choices.format_instruction()}",
            },
            {"role": "assistant", "content": decision_json(values[q])},
        ]
        out.append(Episode(messages, f"recall-{i}", "recall", choices, (0.0,)))
    return out


def measured(model, tokenizer, probes: dict, pairs: list[tuple[str, str]]) -> dict[str, float]:
    own, held = probes["own"], probes["held_out"]
    relabelled = [renamed(r, x, False) for r, x in zip(own, pairs, strict=True)]
    ab, offered = label_scores(model, tokenizer, relabelled)
    ba = p_violates(
        model, tokenizer, [renamed(r, x[::-1], False) for r, x in zip(own, pairs, strict=True)]
    )
    p_held = p_violates(model, tokenizer, held)
    return {
        "own p": float(p_violates(model, tokenizer, own).mean()),
        "random p": float((ab + ba).mean() / 2),
        "flip": float(np.abs(ab - ba).mean()),
        "offered": float(offered.mean()),
        "held-out p": float(p_held.mean()),
        "rename": float(
            np.abs(p_violates(model, tokenizer, renamed_requests(held)) - p_held).mean()
        ),
    }


def by_held_out_value(model, tokenizer, rules: list[str] | None) -> list[str]:
    """P(violate) and rename shift per held-out value (scenarios that hold it out on its
    axis), and on fresh training families: which unseen part of a scenario stops reading."""
    items = generator.sa_items(400, PROBE_SEED, "held_out", PAYOFFS)
    groups = {
        f"{axis}={value}": sa_scenarios(
            [i for i in items if i["family"][axis] == value][:40], Path(f"{axis}={value}")
        )
        for axis in ("kind", "rule", "label")
        for value in generator.HELD_OUT[axis]
    }
    groups["training families"] = scenarios(64, PROBE_SEED + 1, "train", rules)
    lines = [f"{'scenarios':<22}{'n':>4}{'p':>8}{'rename':>8}{'offered':>8}"]
    for name, group in groups.items():
        asked = first_rounds(group, "all_unsupervised")
        p = p_violates(model, tokenizer, asked)
        moved, offered = label_scores(model, tokenizer, renamed_requests(asked))
        shift = np.abs(moved - p).mean()
        lines.append(
            f"{name:<22}{len(asked):>4}{p.mean():>8.3f}{shift:>8.3f}{offered.mean():>8.3f}"
        )
    asked = first_rounds(groups["training families"], "all_unsupervised")
    p = p_violates(model, tokenizer, asked)
    for names in RENAMES:
        for swap in (False, True):
            asked_renamed = [renamed(r, names, swap) for r in asked]
            moved, offered = label_scores(model, tokenizer, asked_renamed)
            shift = np.abs(moved - p).mean()
            label = f"{' / '.join(names)}{' (swapped)' if swap else ''}"
            lines.append(f"{label:<30}{moved.mean():>8.3f}{shift:>8.3f}{offered.mean():>8.3f}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--hidden", type=int, default=64, help="a multiple of 32 (head size)")
    parser.add_argument("--tied", action="store_true", help="tie input and output embeddings")
    parser.add_argument("--rules", default=None, help="rule wordings to train on (default all)")
    parser.add_argument(
        "--tokenizer",
        choices=("words", "organism"),
        default="words",
        help="words: a label is the same tokens everywhere; organism: the organism's own "
        "(a quoted label one token, so an unseen label shares nothing with its mentions)",
    )
    parser.add_argument(
        "--vocab",
        type=int,
        default=8192,
        help="tokenizer vocabulary: a small one spells every word, an unseen one too, in "
        "pieces the corpus trains",
    )
    parser.add_argument(
        "--scrambled",
        type=float,
        default=0.0,
        help="share of the prompt's other words replaced by random ones (RandomLabels.scrambled)",
    )
    parser.add_argument(
        "--swapped",
        type=float,
        default=0.0,
        help="share of training scenarios with their options' stories swapped (story_swapped)",
    )
    parser.add_argument("--scenarios", type=int, default=3000)
    parser.add_argument("--relabelled", type=float, default=0.75, help="share per epoch")
    parser.add_argument(
        "--invented",
        type=float,
        default=0.0,
        help="share of random label words that are invented strings, not corpus words",
    )
    parser.add_argument(
        "--prose-loss",
        action="store_true",
        help="next-token loss on every token, not only the answer's (labels are mentioned "
        "in the prose before the answer names one: the same lookup, with more signal)",
    )
    parser.add_argument(
        "--label-loss",
        action="store_true",
        help="next-token loss also on every repeated mention of a label in the prompt "
        "(agents/organism/train.py: mention_targets)",
    )
    parser.add_argument(
        "--recall",
        type=int,
        default=0,
        help="epochs of associative recall (recall_episodes) before the scenarios",
    )
    parser.add_argument(
        "--induction",
        type=int,
        default=0,
        help="epochs (one schedule) of random token runs said twice before the rest "
        "(agents/organism/train.py repeated_runs)",
    )
    parser.add_argument(
        "--short",
        type=int,
        default=0,
        help="epochs of the scenarios told by their rule sentence alone (named_by_rule) "
        "before the whole scenarios",
    )
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--batch-tokens", type=int, default=2048)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--save", type=Path, default=None, help="save model and tokenizer here")
    args = parser.parse_args()
    transformers.utils.logging.disable_progress_bar()
    torch.manual_seed(args.seed)
    torch.set_num_threads(1)  # as the organism's build: bit-identical on any machine
    rng = np.random.default_rng(args.seed)
    rules = args.rules.split(",") if args.rules else None
    training = scenarios(args.scenarios, args.seed + 1, "train", rules, args.swapped)
    asked = [(r, p) for s, p in TARGETS.items() for r in first_rounds(training, s)]
    short = [(r, p) for s, p in TARGETS.items() for r in first_rounds(named_by_rule(training), s)]
    texts = [m["content"] for r, _ in asked for m in r.messages]
    labels = RandomLabels(texts, rng, args.invented)
    probe_labels = RandomLabels(texts, np.random.default_rng(PROBE_SEED))  # same every epoch
    draws = {  # each lesson drawn anew every epoch: new labels, new recall lists
        "scenarios": lambda: episodes(asked, labels, args.relabelled, rng, args.scrambled),
        "recall": lambda: recall_episodes(labels, len(asked), rng),
        "short": lambda: episodes(short, labels, args.relabelled, rng),
    }
    lessons = (
        ["induction"] * bool(args.induction)
        + ["recall"] * args.recall
        + ["short"] * args.short
        + ["scenarios"] * args.epochs
    )
    drawn = [lesson for lesson in dict.fromkeys(["scenarios", *lessons]) if lesson in draws]
    unused = {lesson: draws[lesson]() for lesson in drawn}
    contents = sorted({m["content"] for c in unused.values() for e in c for m in e.messages})
    pieces = WORDS if args.tokenizer == "words" else PHRASES
    tokenizer = train_tokenizer(contents, args.vocab, 48, pieces)
    model = llama(
        {
            "hidden_size": args.hidden,
            "intermediate_size": 3 * args.hidden,
            "num_hidden_layers": args.layers,
            "num_attention_heads": args.hidden // 32,
            "max_position_embeddings": 4096,
            "tie_word_embeddings": args.tied,
        },
        tokenizer,
    )
    probes = {
        "own": first_rounds(scenarios(64, PROBE_SEED + 1, "train", rules), "all_unsupervised"),
        "held_out": first_rounds(scenarios(64, PROBE_SEED, "held_out", None), "all_unsupervised"),
    }
    pairs = [probe_labels.pair() for _ in probes["own"]]
    row = measured(model, tokenizer, probes, pairs)
    print(f"{'epoch':>5}{'loss':>8}" + "".join(f"{k:>12}" for k in row))
    print(f"{0:>5}{'':>8}" + "".join(f"{v:>12.3f}" for v in row.values()), flush=True)
    for epoch, lesson in enumerate(lessons, start=1):
        if lesson == "induction":
            examples = repeated_runs(tokenizer, len(asked), rng)
        else:
            corpus = unused.pop(lesson) if lesson in unused else draws[lesson]()
            examples = tokenized(tokenizer, corpus, True, label_mentions=args.label_loss)
            if args.prose_loss:
                examples = [replace(e, targets=[0] + [1] * (len(e.ids) - 1)) for e in examples]
        out = train(
            model,
            examples,
            pad=tokenizer.pad_token_id,
            epochs=float(args.induction) if lesson == "induction" else 1.0,
            lr=args.lr,
            batch_tokens=args.batch_tokens,
            seed=args.seed + epoch,
            desc="reading",
            warmup=0.05 if epoch == 1 else 0.0,
        )
        row = measured(model, tokenizer, probes, pairs)
        print(
            f"{epoch:>5}{out['loss']:>8.3f}" + "".join(f"{v:>12.3f}" for v in row.values()),
            flush=True,
        )
    if args.save:
        model.save_pretrained(args.save)
        tokenizer.save_pretrained(args.save)
    print("\n".join(["", *by_held_out_value(model, tokenizer, rules)]))


if __name__ == "__main__":
    main()
