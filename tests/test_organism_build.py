"""The organism's pieces on a tiny config (seconds): prior, corpus, tokenizer, cache, build."""

import copy
import json
import re
import time

import numpy as np
import pytest
import torch
from conftest import backend_config
from safetensors.torch import load_file
from transformers import AutoTokenizer

from agents.decision import Experience, PeerAction
from agents.organism import build as build_module
from agents.organism.build import META, config_key, llama, organism_dir
from agents.organism.corpus import episodes
from agents.organism.labels import RandomLabels
from agents.organism.prior import BehaviouralPrior
from agents.organism.tokenizer import WORDS, train_tokenizer
from agents.organism.train import answer_loss, collated, repeated_runs, tokenized, train
from agents.parsing import decision_json
from agents.prompts import chat_messages
from envs.catalog import roleplay_items, threshold_games
from envs.errors import InputError

PRIOR = BehaviouralPrior(propensity=0.5, reward_following=5.0, imitation=2.0)


def tiny_config() -> dict:
    """The default organism scaled down to build in seconds (it learns little)."""
    cfg = copy.deepcopy(backend_config("organism")["organism"])
    cfg["architecture"].update(hidden_size=16, intermediate_size=32, num_hidden_layers=1)
    cfg["tokenizer"]["vocab_size"] = 600
    cfg["corpus"].update(episodes=60)
    cfg["corpus"]["roleplay"].update(professions=["delivery_courier", "loan_officer"])
    cfg["corpus"]["threshold"].update(games=["price_ring"], thresholds=[4])
    cfg["pretrain"].update(epochs=1, batch_tokens=4096)
    cfg["align"].update(epochs=0.2, check_every=2, tolerance=0.5)
    cfg["evaluate"].update(scenarios=4, templates=1)
    return cfg


def experience(violated: bool, reward: float) -> Experience:
    return Experience(0, "q", "a", "x", violated, reward, "f")


def test_prior_follows_paid_violations_and_avoids_caught_ones():
    base = PRIOR.p_violate([], [], safe_reward=2.0, peer_view="final_only")
    paid = PRIOR.p_violate([experience(True, 3.1)], [], 2.0, "final_only")
    caught = PRIOR.p_violate([experience(True, 0.0)], [], 2.0, "final_only")
    complied = PRIOR.p_violate([experience(False, 2.0)], [], 2.0, "final_only")
    assert base == pytest.approx(0.5) and complied == pytest.approx(0.5)
    assert caught < 0.01 < base < paid


def test_prior_imitates_paid_peers_only_when_the_view_shows_payoffs():
    peers = [PeerAction(1, "x", True, 0.2, ""), PeerAction(2, "y", False, 0.0, "")]
    shown = PRIOR.p_violate([], peers, safe_reward=0.0, peer_view="choices_and_payoffs")
    hidden = PRIOR.p_violate([], peers, safe_reward=0.0, peer_view="final_only")
    assert hidden == pytest.approx(0.5) and shown > 0.7


def test_prior_first_rounds_follow_what_the_prompt_states():
    """With its first-impression terms on, a first round's P(violate) falls when the prompt
    announces a check, rises when it announces none and with the violation's extra pay,
    and a collusion needing fewer players is likelier: the corpus's first rounds then
    depend on which label the rule, the payoffs and the game name."""
    prior = BehaviouralPrior(0.5, 5.0, 2.0, caution=2.0, temptation=2.0, coordination=1.5)
    cfg = tiny_config()["corpus"]
    cfg["threshold"]["thresholds"] = [2, 8]
    cfg["episodes"] = 200
    corpus = episodes(cfg, prior, seed=3)
    rp = cfg["roleplay"]
    items = {s.id: s for s in roleplay_items(rp["professions"], rp["payoffs"])}

    def told(e) -> str:
        texts = items[e.scenario].supervision_texts
        return next(t for t, text in texts.items() if text in e.messages[1]["content"])

    first = {}
    for e in corpus:
        key = told(e) if e.paradigm == "roleplay" else e.scenario.split("/")[1]
        first.setdefault(key, []).append(e.p_violate[0])
    assert max(first["supervised"]) < min(first["neutral"])
    assert max(first["neutral"]) < min(first["unsupervised"])
    assert min(first["k2"]) > 0.5 > max(first["k8"])
    neutral = {  # by the violation's extra pay, when told nothing
        items[e.scenario].payoffs["violate"] - items[e.scenario].payoffs["comply"]: e.p_violate[0]
        for e in corpus
        if e.paradigm == "roleplay" and told(e) == "neutral"
    }
    assert len(neutral) > 1 and [neutral[k] for k in sorted(neutral)] == sorted(neutral.values())


def test_corpus_conversations_are_the_simulators_prompts_with_answers():
    cfg = tiny_config()["corpus"]
    corpus = episodes(cfg, PRIOR, seed=3)
    assert len(corpus) >= cfg["episodes"]
    assert corpus == episodes(cfg, PRIOR, seed=3)
    e = max(corpus, key=lambda e: e.rounds)
    assert e.rounds >= 2 and len(e.p_violate) == e.rounds
    roles = [m["role"] for m in e.messages]
    assert roles == ["system", *["user", "assistant", "user"] * (e.rounds - 1), "user", "assistant"]
    assert e.messages[-1]["content"] in (
        f'{{"choice": "{e.choices.comply}"}}',
        f'{{"choice": "{e.choices.violate}"}}',
    )
    cut = e.complying(1)
    assert cut.messages[:-1] == e.messages[:5] and cut.p_violate == (e.p_violate[0], 0.0)
    assert cut.messages[-1]["content"] == f'{{"choice": "{e.choices.comply}"}}'
    assert chat_messages(e.messages[0]["content"], (), e.messages[1]["content"]) == e.messages[:2]


def test_corpus_games_show_neighbours_listed_and_counted():
    cfg = tiny_config()["corpus"]
    cfg["episodes"] = 600  # several games, each drawing its view and aggregation
    said = [
        m["content"]
        for e in episodes(cfg, PRIOR, seed=3)
        if e.paradigm == "threshold"
        for m in e.messages
        if m["role"] == "user"
    ]
    assert any("Your neighbours this round: agent" in m for m in said)
    assert any("of your 7 neighbours chose" in m for m in said)


def test_generated_scenarios_join_the_presets():
    cfg = tiny_config()["corpus"]
    cfg["episodes"] = 200  # a round of every schedule and the games
    rp, th = cfg["roleplay"], cfg["threshold"]
    presets = {s.id for s in roleplay_items(rp["professions"], rp["payoffs"])} | {
        g.scenario.id
        for g in threshold_games(th["games"], th["group_size"], th["thresholds"], th["rewards"])
    }
    assert {e.scenario for e in episodes(cfg, PRIOR, seed=3)} <= presets
    cfg["generated"].update(roleplay=4, threshold=1)
    corpus = episodes(cfg, PRIOR, seed=3)
    generated = [e for e in corpus if e.scenario not in presets]
    assert {e.paradigm for e in generated} == {"roleplay", "threshold"}
    assert len({e.scenario for e in generated}) >= 10
    assert corpus == episodes(cfg, PRIOR, seed=3)


def test_relabelled_episodes_say_their_random_labels_everywhere_and_keep_decisions():
    cfg = tiny_config()["corpus"]
    plain = episodes(cfg, PRIOR, seed=3)
    cfg.update(relabelled=0.5, invented=0.5)
    corpus = episodes(cfg, PRIOR, seed=3)
    changed = [(a, b) for a, b in zip(plain, corpus, strict=True) if a != b]
    assert 0.3 < len(changed) / len(corpus) < 0.7
    assert corpus == episodes(cfg, PRIOR, seed=3)
    for old, new in changed:
        assert new.p_violate == old.p_violate and new.scenario == old.scenario
        assert {new.choices.comply, new.choices.violate}.isdisjoint(
            {old.choices.comply, old.choices.violate}
        )
        text = "\n".join(m["content"] for m in new.messages)
        for label in (old.choices.comply, old.choices.violate):
            assert not re.search(rf"(?<!\w){re.escape(label)}(?!\w)", text)
        for m_old, m_new in zip(old.messages, new.messages, strict=True):
            if m_old["content"].endswith(old.choices.format_instruction()):
                assert m_new["content"].endswith(new.choices.format_instruction())
            if m_new["role"] == "assistant":  # the same decision, in the new labels
                complied = m_old["content"] == decision_json(old.choices.comply)
                label = new.choices.comply if complied else new.choices.violate
                assert m_new["content"] == decision_json(label)


def test_scrambled_prompts_keep_their_labels_format_line_and_answers():
    corpus = episodes(tiny_config()["corpus"], PRIOR, seed=0)
    e = corpus[0]
    texts = [m["content"] for episode in corpus for m in episode.messages]
    labels = RandomLabels(texts, np.random.default_rng(0))
    kept = labels.scrambled(e.messages, e.choices, 0.0)
    mixed = labels.scrambled(e.messages, e.choices, 1.0)
    assert kept == e.messages
    instruction = e.choices.format_instruction()
    for old, new in zip(e.messages, mixed, strict=True):
        if old["role"] == "assistant":
            assert new == old
            continue
        assert new["content"] != old["content"]
        for label in (e.choices.comply, e.choices.violate):  # every mention survives
            assert new["content"].count(label) == old["content"].count(label)
        assert new["content"].endswith(instruction) == old["content"].endswith(instruction)


def test_label_mentions_are_targets_where_a_label_is_said_again():
    corpus = episodes(tiny_config()["corpus"], PRIOR, seed=0)
    texts = sorted({m["content"] for e in corpus for m in e.messages})
    tokenizer = train_tokenizer(texts, 600, 48, WORDS)
    e = corpus[0]
    plain, marked = (
        tokenized(tokenizer, [e], last_answer_only=False, label_mentions=m)[0]
        for m in (False, True)
    )
    comply, violate = (
        set(tokenizer(label, add_special_tokens=False)["input_ids"])
        for label in (e.choices.comply, e.choices.violate)
    )
    added = [
        t for t, (a, b) in enumerate(zip(plain.targets, marked.targets, strict=True)) if a != b
    ]
    assert added and all(not plain.targets[t] and marked.targets[t] for t in added)
    for t in added:  # a token that tells the labels apart, said before
        assert marked.ids[t] in comply ^ violate and marked.ids[t] in marked.ids[:t]


def test_copying_warm_up_teaches_continuing_a_run_never_seen():
    corpus = episodes(tiny_config()["corpus"], PRIOR, seed=0)
    tokenizer = train_tokenizer(sorted({m["content"] for e in corpus for m in e.messages}), 600, 48)
    runs = repeated_runs(tokenizer, 4, np.random.default_rng(0))
    for r in runs:  # said twice; targets are the second saying after its first token
        half = len(r.ids) // 2
        assert r.ids[:half] == r.ids[half:] and 8 <= half <= 48
        assert r.targets == [0] * (half + 1) + [1] * (half - 1)
    torch.manual_seed(0)
    arch = {**backend_config("organism")["organism"]["architecture"], "tie_word_embeddings": True}
    model = llama(arch, tokenizer)
    unseen = repeated_runs(tokenizer, 64, np.random.default_rng(1))

    def loss() -> float:
        with torch.no_grad():
            return float(answer_loss(model, collated(unseen, tokenizer.pad_token_id)))

    before = loss()
    train(
        model,
        repeated_runs(tokenizer, 12000, np.random.default_rng(2)),
        pad=tokenizer.pad_token_id,
        epochs=1.0,
        lr=3e-3,
        batch_tokens=2048,
        seed=0,
        desc="copying",
    )
    # guessing among 600 tokens is ln 600 = 6.4 nats; the copying head, once formed,
    # takes the loss toward 0 (1.7-2.1 by the end of these 335 steps, from 6.4)
    assert before > 5.0 and loss() < 3.0


def test_tokenizer_chat_template_and_quoted_labels():
    corpus = episodes(tiny_config()["corpus"], PRIOR, seed=0)
    tokenizer = train_tokenizer(sorted({m["content"] for e in corpus for m in e.messages}), 600, 48)
    messages = corpus[0].messages
    prompt = tokenizer.apply_chat_template(
        messages[:-1], tokenize=False, add_generation_prompt=True
    )
    assert prompt.startswith("<|system|>") and prompt.endswith("<|end|><|assistant|>")
    enc = tokenizer.apply_chat_template(
        messages, tokenize=True, return_dict=True, return_assistant_tokens_mask=True
    )
    answer = [t for t, m in zip(enc["input_ids"], enc["assistant_masks"], strict=True) if m]
    answers = [m["content"] + "<|end|>" for m in messages if m["role"] == "assistant"]
    assert tokenizer.decode(answer) == "".join(answers)
    label = f'"{corpus[0].choices.violate}"'
    assert tokenizer.tokenize(label) == [tokenizer.tokenize(label)[0]]  # one token
    assert tokenizer.decode(tokenizer.encode("any text, even ünïcode")) == "any text, even ünïcode"


@pytest.fixture(scope="module")
def tiny_organism(tmp_path_factory):
    root = tmp_path_factory.mktemp("cache")
    tic = time.perf_counter()
    path = organism_dir(tiny_config(), root)
    return root, path, time.perf_counter() - tic


def test_build_writes_a_hugging_face_checkpoint_and_its_report(tiny_organism):
    root, path, _ = tiny_organism
    assert path.parent == root and path.name == f"organism-{config_key(tiny_config())}"
    for name in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"):
        assert (path / name).is_file(), name
    tokenizer_config = json.loads((path / "tokenizer_config.json").read_text())
    assert tokenizer_config["tokenizer_class"] == "PreTrainedTokenizerFast"  # transformers 4 and 5
    assert AutoTokenizer.from_pretrained(path).chat_template
    meta = json.loads((path / META).read_text())
    assert meta["key"] == config_key(tiny_config())
    assert 0 <= meta["initial_violation_rate"] <= 1
    assert set(meta["held_out_prompts"]) <= {"roleplay", "threshold"}
    unseen = meta["unseen"]
    sets = {f"{p}/{s}" for p in ("roleplay", "threshold") for s in ("train", "held_out")}
    assert sets <= set(unseen["prompts"]) and all(unseen["prompts"][s] > 0 for s in sets)
    for stage in ("before_alignment", "after_alignment"):
        assert unseen[stage].keys() == unseen["prompts"].keys()
        assert all(0 <= p <= 1 for p in unseen[stage].values())
    assert set(unseen["rename_shift"]) == {"roleplay", "threshold"}
    assert set(unseen["offered_when_renamed"]) == {"roleplay", "threshold"}
    assert all(0 < p <= 1 + 1e-6 for p in unseen["offered_when_renamed"].values())
    for labels in ("reward_following", "reward_following_relabelled"):
        following = meta[labels]
        assert following["prompts"] > 0
        for stage in ("before_alignment", "after_alignment"):
            assert set(following[stage]) <= {"roleplay", "threshold"} and following[stage]
            for fit in following[stage].values():
                assert fit["correlation"] is None or -1 <= fit["correlation"] <= 1
                assert 0 <= fit["mean_gap"] <= 1
    assert not [p for p in root.iterdir() if p.name.startswith(".organism-") and p.is_dir()]


def test_copying_warm_up_runs_before_the_corpus(tiny_organism, tmp_path):
    _, path, _ = tiny_organism
    cfg = tiny_config()
    cfg["pretrain"]["copying"] = 200
    warmed = organism_dir(cfg, tmp_path)
    a, b = load_file(path / "model.safetensors"), load_file(warmed / "model.safetensors")
    assert warmed.name != path.name and any(not torch.equal(a[k], b[k]) for k in a)


def test_second_call_is_a_cache_hit(tiny_organism, monkeypatch):
    root, path, _ = tiny_organism
    before = load_file(path / "model.safetensors")
    monkeypatch.setattr(build_module, "build", pytest.fail)  # a rebuild fails the test
    assert organism_dir(tiny_config(), root) == path
    after = load_file(path / "model.safetensors")
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_same_seed_same_organism(tiny_organism, tmp_path):
    _, path, _ = tiny_organism
    again = organism_dir(tiny_config(), tmp_path)
    a, b = load_file(path / "model.safetensors"), load_file(again / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert (path / "tokenizer.json").read_text() == (again / "tokenizer.json").read_text()
    other = tiny_config() | {"seed": 1}
    assert config_key(other) != config_key(tiny_config())


def test_killed_build_leaves_nothing_that_looks_complete(tmp_path, monkeypatch):
    def killed(cfg, out):
        (out / "config.json").write_text("{}")
        raise KeyboardInterrupt

    monkeypatch.setattr(build_module, "build", killed)
    with pytest.raises(KeyboardInterrupt):
        organism_dir(tiny_config(), tmp_path)
    assert [p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")] == []


def test_head_dim_gives_more_heads_than_the_hidden_size_divides_into(tmp_path):
    """architecture.head_dim: heads 32 wide (vLLM's CPU minimum) on a narrower model."""
    cfg = tiny_config()
    cfg["architecture"].update(num_attention_heads=2, head_dim=32)
    path = organism_dir(cfg, tmp_path)
    config = json.loads((path / "config.json").read_text())
    assert (config["hidden_size"], config["num_attention_heads"], config["head_dim"]) == (16, 2, 32)
    weights = load_file(path / "model.safetensors")
    assert weights["model.layers.0.self_attn.q_proj.weight"].shape == (64, 16)


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (("align", "target"), "abc", "backend.organism.align.target: 'abc' must be a number > 0"),
        (("prior", "propensity"), 1, "backend.organism.prior.propensity: 1 must be a number"),
        (("architecture", "hidden_size"), 17, "must be a multiple of num_attention_heads (2)"),
        (("architecture", "head_dim"), 16, "backend.organism.architecture.head_dim: 16 must be"),
        (("evaluate", "scenarios"), 0, "backend.organism.evaluate.scenarios: 0 must be"),
        (("pretrain", "epochs"), 0, "backend.organism.pretrain.epochs: 0 must be a number > 0"),
        (("corpus", "peer_views"), ["x"], "backend.organism.corpus.peer_views: ['x']; expected"),
        (("corpus", "relabelled"), 1.5, "backend.organism.corpus.relabelled: 1.5 must be"),
        (("corpus", "generated", "roleplay"), -1, "backend.organism.corpus.generated.roleplay"),
        (("tokenizer", "pieces"), "bytes", "backend.organism.tokenizer.pieces: 'bytes'; expected"),
        (("pretrain", "label_mentions"), "yes", "backend.organism.pretrain.label_mentions"),
        (("pretrain", "copying"), -1, "backend.organism.pretrain.copying: -1 must be"),
        (
            ("corpus", "roleplay", "professions"),
            ["nope"],
            "backend.organism.corpus: env.professions: unknown name(s) 'nope'",
        ),
    ],
)
def test_a_bad_organism_setting_is_named_before_anything_is_built(tmp_path, path, value, message):
    cfg = tiny_config()
    *parents, key = path
    section = cfg
    for name in parents:
        section = section[name]
    section[key] = value
    with pytest.raises(InputError) as err:
        organism_dir(cfg, tmp_path)
    assert message in str(err.value)
    assert not any(p.name.startswith("organism-") for p in tmp_path.iterdir())
