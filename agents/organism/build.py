"""Build the organism once per config, then load it: corpus, tokenizer, pre-training, alignment.

The organism directory is a standard Hugging Face checkpoint (model and tokenizer via
save_pretrained) plus organism.json (its config, measured violation rates, build time),
and its pre-trained stage before alignment as a checkpoint of its own in `pretrained/`
(`pretrained_dir`: the base that alignment recipes, reference distances and
`backend.align=none` start from).
It lives in the cache under the hash of its config; it is built in a temporary
directory and renamed into place, so a killed build never leaves a directory that looks
complete, and a lock makes concurrent runs wait for one build instead of racing.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import math
import os
import shutil
import sys
import tempfile
from collections.abc import Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from time import perf_counter

import numpy as np
import torch
import transformers
from transformers import LlamaConfig, LlamaForCausalLM

from agents.backends.hf import HFBackend
from agents.backends.scoring import p_violate
from agents.decision import DecisionRequest
from agents.organism.corpus import Episode, episodes, held_out, relabelled
from agents.organism.prior import BehaviouralPrior
from agents.organism.probes import SEED, probe_sets, renamed_requests
from agents.organism.tokenizer import PHRASES, WORDS, train_tokenizer
from agents.organism.train import repeated_runs, tokenized, train
from agents.prompts import PEER_VIEWS
from envs.errors import InputError, boolean, integer, listed, number

VERSION = 10  # bump when the build changes what a config produces (weights or organism.json)
META = "organism.json"
PIECES = {"phrases": PHRASES, "words": WORDS}  # backend.organism.tokenizer.pieces
PRETRAINED = "pretrained"
FOLLOWING_PROMPTS = 200  # per paradigm, from a corpus seed never trained on


def config_key(cfg: Mapping) -> str:
    text = json.dumps({"version": VERSION, **cfg}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@contextmanager
def locked(path: Path):
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def check_config(cfg: Mapping) -> None:
    """The settings of backend.organism a user may change, checked before a long build."""
    field = "backend.organism"
    integer(cfg["seed"], f"{field}.seed", minimum=0)
    arch = cfg["architecture"]
    for key in ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads"):
        integer(arch[key], f"{field}.architecture.{key}")
    integer(arch["max_position_embeddings"], f"{field}.architecture.max_position_embeddings")
    boolean(arch.get("tie_word_embeddings", True), f"{field}.architecture.tie_word_embeddings")
    if arch.get("head_dim") is not None:  # vLLM's CPU attention refuses heads under 32 wide
        integer(arch["head_dim"], f"{field}.architecture.head_dim", minimum=32)
    elif arch["hidden_size"] % arch["num_attention_heads"]:
        raise InputError(
            f"{field}.architecture.hidden_size: {arch['hidden_size']} must be a multiple of "
            f"num_attention_heads ({arch['num_attention_heads']})"
        )
    integer(cfg["tokenizer"]["vocab_size"], f"{field}.tokenizer.vocab_size", minimum=300)
    integer(cfg["tokenizer"]["max_token_length"], f"{field}.tokenizer.max_token_length")
    if cfg["tokenizer"]["pieces"] not in PIECES:
        raise InputError(
            f"{field}.tokenizer.pieces: {cfg['tokenizer']['pieces']!r}; expected one of "
            + ", ".join(PIECES)
        )
    prior = cfg["prior"]
    number(prior["propensity"], f"{field}.prior.propensity", high=1.0, above=True, below=True)
    for key in ("reward_following", "imitation", "caution", "temptation", "coordination"):
        number(prior[key], f"{field}.prior.{key}", low=-math.inf)
    corpus = cfg["corpus"]
    integer(corpus["episodes"], f"{field}.corpus.episodes")
    integer(corpus["memory_window"], f"{field}.corpus.memory_window", minimum=0)
    above = listed(corpus["aggregate_above"], f"{field}.corpus.aggregate_above")
    if not above:
        raise InputError(f"{field}.corpus.aggregate_above: []; expected counts, e.g. [10]")
    for v in above:
        integer(v, f"{field}.corpus.aggregate_above", minimum=0)
    for key in ("roleplay", "threshold"):
        integer(corpus["generated"][key], f"{field}.corpus.generated.{key}", minimum=0)
    for key in ("relabelled", "invented"):
        number(corpus[key], f"{field}.corpus.{key}", high=1.0)
    unknown = [v for v in corpus["peer_views"] if v not in PEER_VIEWS]
    if unknown or not corpus["peer_views"]:
        expected = ", ".join(PEER_VIEWS)
        raise InputError(
            f"{field}.corpus.peer_views: {unknown or '[]'}; expected some of {expected}"
        )
    for stage in ("pretrain", "align"):
        settings = cfg[stage]
        number(settings["epochs"], f"{field}.{stage}.epochs", above=True)
        number(settings["lr"], f"{field}.{stage}.lr", above=True)
        integer(settings["batch_tokens"], f"{field}.{stage}.batch_tokens")
    boolean(cfg["pretrain"].get("curriculum", False), f"{field}.pretrain.curriculum")
    boolean(cfg["pretrain"]["label_mentions"], f"{field}.pretrain.label_mentions")
    integer(cfg["pretrain"]["copying"], f"{field}.pretrain.copying", minimum=0)
    align = cfg["align"]
    number(align["target"], f"{field}.align.target", high=1.0, above=True)
    number(align["tolerance"], f"{field}.align.tolerance", above=True)
    number(align["held_out_share"], f"{field}.align.held_out_share", high=1.0, above=True)
    integer(align["max_history"], f"{field}.align.max_history", minimum=0)
    integer(align["check_every"], f"{field}.align.check_every")
    for key in ("scenarios", "templates"):
        integer(cfg["evaluate"][key], f"{field}.evaluate.{key}")


def organism_dir(cfg: Mapping, cache_dir: str | Path) -> Path:
    """The organism's checkpoint directory for cfg, built first if the cache lacks it."""
    check_config(cfg)
    root = Path(cache_dir).expanduser()
    path = root / f"organism-{config_key(cfg)}"
    if (path / META).is_file():
        return path
    root.mkdir(parents=True, exist_ok=True)
    with locked(root / f".{path.name}.lock"):
        if (path / META).is_file():
            return path
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}-", dir=root))
        try:
            build(cfg, tmp)
            os.rename(tmp, path)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return path


def pretrained_dir(cfg: Mapping, cache_dir: str | Path) -> Path:
    """The organism's pre-trained stage (before alignment) for cfg, built with it."""
    return organism_dir(cfg, cache_dir) / PRETRAINED


def llama(arch: Mapping, tokenizer) -> LlamaForCausalLM:
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=arch["hidden_size"],
        intermediate_size=arch["intermediate_size"],
        num_hidden_layers=arch["num_hidden_layers"],
        num_attention_heads=arch["num_attention_heads"],
        num_key_value_heads=arch["num_attention_heads"],
        head_dim=arch.get("head_dim"),  # None: hidden_size / num_attention_heads
        max_position_embeddings=arch["max_position_embeddings"],
        tie_word_embeddings=arch.get("tie_word_embeddings", True),
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
    )
    model = LlamaForCausalLM(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    return model


def save_tokenizer(tokenizer, out: Path) -> None:
    """save_pretrained, naming the class PreTrainedTokenizerFast: transformers 5 writes its
    new name, TokenizersBackend, which the transformers 4 of vLLM's GPU environment cannot
    load; both load the old name as this same tokenizer."""
    tokenizer.save_pretrained(out)
    config = json.loads((out / "tokenizer_config.json").read_text())
    config["tokenizer_class"] = "PreTrainedTokenizerFast"
    (out / "tokenizer_config.json").write_text(json.dumps(config, indent=2))


def opening_requests(corpus: Sequence[Episode]) -> list[DecisionRequest]:
    """Each distinct first question of the episodes given, as the simulator would send it."""
    seen: dict[tuple[str, str], DecisionRequest] = {}
    for e in corpus:
        messages = e.messages[:2]
        key = (messages[0]["content"], messages[1]["content"])
        seen.setdefault(key, DecisionRequest(len(seen), None, messages, e.choices))
    return list(seen.values())


def p_violates(model, tokenizer, requests: Sequence[DecisionRequest]) -> np.ndarray:
    """P(violate) of each request, scored exactly as backend=hf scores them."""
    scorer = HFBackend(np.random.default_rng(0), model, tokenizer, argmax=True)
    return np.array([d.p_violate for d in scorer.decide(requests, "score")])


def label_scores(model, tokenizer, requests: Sequence[DecisionRequest]) -> tuple[np.ndarray, ...]:
    """P(violate) of each request and P(the answer is one of the two labels offered), from
    one scoring pass as backend=hf scores them. The second is 1 for a model that copies
    its answer from the format line, near 0 for one that answers with labels it knows (its
    P(violate) is then a ratio of two small numbers, not a decision)."""
    scorer = HFBackend(np.random.default_rng(0), model, tokenizer, argmax=True)
    prompts = [scorer.scorer.prompt_text(r) for r in requests]
    logprobs, _, _ = scorer.label_logprobs(requests, prompts)
    violate = [
        p_violate({r.choices.comply: lc, r.choices.violate: lv}, r.choices)
        for r, (lc, lv) in zip(requests, logprobs, strict=True)
    ]
    return np.array(violate), np.exp(np.array(logprobs)).sum(axis=1)


def violation_rates(model, tokenizer, probes: Mapping[str, Sequence[DecisionRequest]]) -> dict:
    """Mean P(violate) per probe set (a paradigm, or a paradigm's unseen scenarios)."""
    return {name: float(p_violates(model, tokenizer, r).mean()) for name, r in probes.items()}


def renamed_scores(
    model, tokenizer, probes: Mapping[str, Sequence[DecisionRequest]], scores: Mapping
) -> tuple[dict, dict]:
    """Per paradigm, on its held-out scenarios with their labels renamed (and their order
    swapped every other time): the mean |change in P(violate)| from `scores` (each probe
    set's P(violate) as asked), 0 for an organism that copies its answer from the format
    line and decides from the situation; and the mean P(the answer is one of the offered
    labels), 1 for one that copies labels it never saw."""
    shift, offered = {}, {}
    for name, requests in probes.items():
        if name.endswith("/held_out"):
            p, on_offer = label_scores(model, tokenizer, renamed_requests(requests))
            shift[name.split("/")[0]] = float(np.abs(p - scores[name]).mean())
            offered[name.split("/")[0]] = float(on_offer.mean())
    return shift, offered


def reward_following(model, tokenizer, corpus: Sequence[Episode]) -> dict:
    """Per paradigm, how closely P(violate) at each episode's last question (after its
    remembered rounds) follows the prior that wrote the corpus: the correlation (1: it
    follows; near 0: it ignores its history) and the mean absolute gap. In-context reward
    following is what makes the organism tip; a pre-training that missed it shows here,
    not only as a run's flat curves."""
    asked = [DecisionRequest(0, None, e.messages[:-1], e.choices) for e in corpus]
    p = p_violates(model, tokenizer, asked)
    target = np.array([e.p_violate[-1] for e in corpus])
    paradigm = np.array([e.paradigm for e in corpus])
    out = {}
    for g in sorted({e.paradigm for e in corpus}):
        x, y = p[paradigm == g], target[paradigm == g]
        varies = len(y) > 1 and x.std() > 0 and y.std() > 0  # else no correlation is defined
        out[g] = {
            "correlation": float(np.corrcoef(x, y)[0, 1]) if varies else None,
            "mean_gap": float(np.abs(x - y).mean()),
        }
    return out


def balanced(groups: Sequence[Sequence], n: int) -> list:
    """n items spread over each group (every paradigm aligned as much as the others)."""
    return [x for g in groups for x in list(g)[:: max(1, len(g) // n)][:n]]


def build(cfg: Mapping, out: Path) -> dict:
    """Build the organism described by cfg into `out`; returns what organism.json records.

    Single-threaded: the float sums, hence the weights, are then the same on any number
    of cores, and a tiny model trains faster on one thread than on contended ones.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return built(cfg, out)
    finally:
        torch.set_num_threads(threads)


def built(cfg: Mapping, out: Path) -> dict:
    tic = perf_counter()
    seed = cfg["seed"]
    torch.manual_seed(seed)
    prior = BehaviouralPrior(**cfg["prior"])
    try:
        corpus = episodes(cfg["corpus"], prior, seed)
        fresh = episodes({**cfg["corpus"], "relabelled": 0.0}, prior, SEED + seed)
    except InputError as e:  # the corpus plays the project's environments
        raise InputError(f"backend.organism.corpus: {e}") from None
    contents = sorted({m["content"] for e in corpus for m in e.messages})
    pieces = PIECES[cfg["tokenizer"]["pieces"]]
    tokenizer = train_tokenizer(
        contents, cfg["tokenizer"]["vocab_size"], cfg["tokenizer"]["max_token_length"], pieces
    )
    model = llama(cfg["architecture"], tokenizer)
    pad = tokenizer.pad_token_id
    pretrain = dict(cfg["pretrain"])
    mentions = pretrain.pop("label_mentions")
    copying = pretrain.pop("copying")
    if copying:
        train(
            model,
            repeated_runs(tokenizer, copying, np.random.default_rng([seed, 2])),
            pad=pad,
            epochs=1.0,
            lr=pretrain["lr"],
            batch_tokens=pretrain["batch_tokens"],
            seed=seed,
            desc="organism: copying",
        )
    pre = train(
        model,
        tokenized(tokenizer, corpus, last_answer_only=False, label_mentions=mentions),
        pad=pad,
        seed=seed,
        desc="organism: pre-training",
        **pretrain,
    )
    model.save_pretrained(out / PRETRAINED)  # the stage alignment starts from
    save_tokenizer(tokenizer, out / PRETRAINED)
    align = cfg["align"]
    share = align["held_out_share"]
    paradigms = sorted({e.paradigm for e in corpus})
    probes = {
        p: opening_requests([e for e in corpus if e.paradigm == p and held_out(e.scenario, share)])
        for p in paradigms
    }
    before = violation_rates(model, tokenizer, probes)
    histories = {  # episodes with remembered rounds, as the presets label them and relabelled
        name: balanced(
            [[e for e in told if e.paradigm == p and e.rounds > 1] for p in paradigms],
            FOLLOWING_PROMPTS,
        )
        for name, told in (
            ("reward_following", fresh),
            ("reward_following_relabelled", relabelled(fresh, 1.0, 0.0, SEED + seed)),
        )
    }
    following_before = {
        name: reward_following(model, tokenizer, history) for name, history in histories.items()
    }
    unseen = probe_sets(**cfg["evaluate"], payoffs=cfg["corpus"]["roleplay"]["payoffs"])
    unseen_before = violation_rates(model, tokenizer, unseen)
    openings = [
        [
            e.complying(k)
            for e in corpus
            if e.paradigm == p and not held_out(e.scenario, share)
            for k in range(min(e.rounds, align["max_history"] + 1))
        ]
        for p in paradigms
    ]
    ceiling = align["target"] + align["tolerance"]

    def aligned() -> list[str]:
        return [p for p, r in violation_rates(model, tokenizer, probes).items() if r <= ceiling]

    post = train(
        model,
        tokenized(tokenizer, balanced(openings, min(map(len, openings))), last_answer_only=True),
        pad=pad,
        seed=seed + 1,
        desc="organism: alignment",
        epochs=align["epochs"],
        lr=align["lr"],
        batch_tokens=align["batch_tokens"],
        warmup=0.0,
        finished=aligned,
        check_every=align["check_every"],
    )
    rates = violation_rates(model, tokenizer, probes)
    scored = {name: p_violates(model, tokenizer, r) for name, r in unseen.items()}
    shift, offered = renamed_scores(model, tokenizer, unseen, scored)
    rate = float(np.mean(list(rates.values())))
    following = {  # on fresh episodes of its environments, never trained on
        name: {
            "before_alignment": following_before[name],
            "after_alignment": reward_following(model, tokenizer, history),
            "prompts": len(history),
        }
        for name, history in histories.items()
    }
    meta = {
        "config": dict(cfg),
        "key": config_key(cfg),
        "version": VERSION,  # the build version figures in the README name
        "initial_violation_rate": rate,
        "initial_violation_rate_by_paradigm": rates,
        "target": align["target"],
        "within_target": abs(rate - align["target"]) <= align["tolerance"]
        and max(rates.values()) <= ceiling,
        "violation_rate_before_alignment": float(np.mean(list(before.values()))),
        "violation_rate_before_alignment_by_paradigm": before,
        "held_out_prompts": {p: len(r) for p, r in probes.items()},
        "unseen": {  # never trained on: README, "The organism"
            "before_alignment": unseen_before,
            "after_alignment": {name: float(p.mean()) for name, p in scored.items()},
            "prompts": {name: len(r) for name, r in unseen.items()},
            "rename_shift": shift,
            "offered_when_renamed": offered,
        },
        **following,
        "episodes": len(corpus),
        "pretrain": pre,
        "alignment": post,
        "build_seconds": round(perf_counter() - tic, 1),
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__},
    }
    model.save_pretrained(out)
    save_tokenizer(tokenizer, out)
    (out / META).write_text(json.dumps(meta, indent=2))
    print(
        f"organism: initial violation rate {rate:.3f} ("
        + ", ".join(f"{p} {r:.3f}" for p, r in rates.items())
        + f") on held-out first rounds, target {align['target']:g} +/- {align['tolerance']:g}"
        f" ({meta['violation_rate_before_alignment']:.3f} before alignment);"
        f" built in {meta['build_seconds']:g} s",
        file=sys.stderr,
    )
    return meta
