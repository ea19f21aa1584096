"""backend=hf: user errors, LoRA adapters in mixed batches, micro-batching, a checkpoint's own
chat template and its switches, on the organism."""

import importlib.util
import re
import shutil

import numpy as np
import polars as pl
import pytest
import torch
from conftest import backend_config
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM, AutoTokenizer

from agents.backends import make_backend
from agents.backends.batching import micro_batches
from agents.decision import DecisionRequest
from agents.parsing import decision_json
from envs.base import Choices
from envs.errors import InputError
from tests.helpers import hand_logprob, with_room_for

CHOICES = Choices(comply="the marked route", violate="the plaza shortcut")


def hf(path, model=None, **extra):
    """backend=hf on the CPU in float32; `model` adds to backend.model, `extra` to backend."""
    model = {"path": str(path), "device": "cpu", "dtype": "float32", **(model or {})}
    return make_backend(backend_config("hf", model=model, **extra), np.random.default_rng(0))


def request(i: int, adapter=None) -> DecisionRequest:
    question = "Which route do you take? " * (1 + i % 3)
    messages = [
        {"role": "system", "content": "You are a courier."},
        {"role": "user", "content": question},
    ]
    return DecisionRequest(agent_id=i, adapter=adapter, messages=messages, choices=CHOICES)


def scores(backend, reqs):
    return np.array(backend.label_logprobs(reqs, [backend.scorer.prompt_text(r) for r in reqs])[0])


@pytest.mark.parametrize(
    ("model", "message"),
    [
        ({"path": None}, "backend.model.path: required"),
        ({"path": "/nonexistent/model"}, "is not a Hugging Face model directory"),
        ({"path": "/tmp", "dtype": "float8"}, "backend.model.dtype: 'float8'"),
        ({"path": "/tmp", "device": "tpu:x"}, "backend.model.device"),
    ],
)
def test_user_errors_are_one_line_input_errors(model, message):
    with pytest.raises(InputError, match=message) as err:
        make_backend(backend_config("hf", model=model), np.random.default_rng(0))
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"batch_tokens": "abc"}, "backend.batch_tokens: 'abc' must be an integer >= 1"),
        ({"batch_tokens": 0}, "backend.batch_tokens: 0 must be an integer >= 1"),
        ({"score": {"argmax": "maybe"}}, "backend.score.argmax: 'maybe' must be true or false"),
        (
            {"generate": {"temperature": -1}},
            "backend.generate.temperature: -1 must be a number >= 0",
        ),
        ({"generate": {"top_p": 0}}, "backend.generate.top_p: 0 must be a number > 0 and <= 1"),
        ({"generate": {"top_p": 1.5}}, "backend.generate.top_p: 1.5 must be a number > 0 and <= 1"),
        ({"generate": {"max_new_tokens": 0}}, "backend.generate.max_new_tokens: 0 must be an"),
    ],
)
def test_bad_settings_are_named_before_a_round_is_played(organism_path, settings, message):
    with pytest.raises(InputError, match=re.escape(message)):
        hf(organism_path, **settings)


@pytest.mark.skipif(torch.cuda.is_available(), reason="asks for CUDA where there is none")
def test_asking_for_cuda_without_a_gpu_is_an_input_error(organism_path):
    with pytest.raises(InputError, match="backend.model.device: cuda, but torch finds no CUDA GPU"):
        make_backend(
            backend_config("hf", model={"path": str(organism_path), "device": "cuda"}),
            np.random.default_rng(0),
        )


def test_missing_adapter_directory_is_an_input_error(organism_path, tmp_path):
    with pytest.raises(InputError, match="adapter 'a1': .* holds no PEFT adapter_config.json"):
        hf(organism_path, adapters={"a1": str(tmp_path / "missing")})


def test_unloaded_adapter_is_an_input_error(organism_path):
    with pytest.raises(InputError, match="requested before it was loaded"):
        hf(organism_path).decide([request(0, adapter="nope")], "score")


@pytest.fixture(scope="module")
def adapter_dir(organism_path, tmp_path_factory):
    """A PEFT LoRA adapter on the organism with random (non-zero) weights."""
    base = AutoModelForCausalLM.from_pretrained(organism_path)
    config = LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    path = tmp_path_factory.mktemp("adapter") / "a1"
    get_peft_model(base, config).save_pretrained(path)
    return path


def test_mixed_adapter_batch_equals_separate_batches(organism_path, adapter_dir):
    backend = hf(organism_path, generate={"max_new_tokens": 8})
    base_only = scores(backend, [request(i) for i in range(4)])
    backend.load_adapters({"a1": adapter_dir})
    adapted = scores(backend, [request(i, "a1") for i in range(4)])
    mixed = scores(backend, [request(i, "a1" if i % 2 else None) for i in range(4)])
    assert not np.allclose(base_only, adapted, atol=1e-3)  # the adapter changes the model
    expected = np.where(np.arange(4)[:, None] % 2, adapted, base_only)
    assert np.allclose(mixed, expected, atol=1e-4)
    generated = backend.decide([request(i, "a1" if i % 2 else None) for i in range(4)], "generate")
    assert len(generated) == 4


def test_micro_batches_do_not_change_scores(organism_path):
    reqs = [request(i) for i in range(6)]
    one_batch = scores(hf(organism_path), reqs)
    many = hf(organism_path, batch_tokens=64)
    assert np.allclose(scores(many, reqs), one_batch, atol=1e-4)


def test_attention_implementations_give_the_same_scores(organism_path):
    reqs = [request(i) for i in range(4)]
    sdpa = scores(hf(organism_path), reqs)
    eager = hf(organism_path, model={"attn_implementation": "eager"})
    assert eager.model.config._attn_implementation == "eager"
    assert np.allclose(scores(eager, reqs), sdpa, atol=1e-4)
    with pytest.raises(InputError, match="backend.model.attn_implementation: .*magic"):
        hf(organism_path, model={"attn_implementation": "magic"})


@pytest.mark.gpu
@pytest.mark.skipif(
    not torch.cuda.is_available() or importlib.util.find_spec("flash_attn") is None,
    reason="needs a CUDA GPU and flash-attn",
)
def test_flash_attention_2_scores_left_padded_prefixes_and_right_padded_tails(organism_path):
    """Scoring pads prefixes on the left and both answers' tails on the right of a shared
    cache; flash-attention-2 must read that mask as sdpa does."""
    reqs = [request(i) for i in range(4)]  # three prompt lengths: padding on both sides
    on_gpu = {"device": "cuda", "dtype": "bfloat16"}
    sdpa = scores(hf(organism_path, model=on_gpu), reqs)
    flash = hf(organism_path, model={**on_gpu, "attn_implementation": "flash_attention_2"})
    assert np.allclose(scores(flash, reqs), sdpa, atol=0.05)


def test_a_batch_that_runs_out_of_memory_is_halved_until_it_fits(organism_path):
    reqs = [request(i) for i in range(6)]
    roomy = hf(organism_path, generate={"max_new_tokens": 8})
    cramped = hf(organism_path, generate={"max_new_tokens": 8})
    with_room_for(cramped.model, rows=4)
    assert len(micro_batches([64] * 6, cramped.batch_tokens)) == 1  # one batch of 6 planned
    with pytest.warns(UserWarning, match="backend.batch_tokens: 16384 ran out of cpu memory"):
        assert np.allclose(scores(cramped, reqs), scores(roomy, reqs), rtol=0, atol=1e-5)
    assert cramped.batch_tokens < 16384  # the next rounds start from what fitted
    texts = [[d.text for d in b.decide(reqs, "generate")] for b in (roomy, cramped)]
    assert texts[0] == texts[1]
    with pytest.raises(InputError, match="one request of .* tokens does not fit in cpu memory"):
        full = hf(organism_path)
        with_room_for(full.model, rows=0)
        full.decide(reqs[:1], "score")


def test_a_round_whose_batches_were_split_says_so_in_the_manifest(organism_path, tmp_path):
    from sim.build import build_run, compose
    from sim.config import checked
    from sim.manifest import Manifest
    from sim.run import play_rounds

    args = [
        "backend=hf",
        f"backend.model.path={organism_path}",
        "run.rounds=2",
    ]
    cfg = compose([*args, "run.progress=false"])
    cramped = hf(organism_path)
    with_room_for(cramped.model, rows=4)
    model = build_run(cfg, tmp_path, backend=cramped)
    manifest = Manifest.start(tmp_path, "r", 0, 2, cfg, args)
    manifest.data["ledger"] = {}
    with pytest.warns(UserWarning, match="ran out of cpu memory"):
        play_rounds(checked(cfg).run, tmp_path, model, manifest)
    assert [w["round"] for w in manifest.data["warnings"]] == [0]  # round 1 fits from the start
    assert "backend.batch_tokens" in manifest.data["warnings"][0]["warning"]
    probed = pl.read_parquet(tmp_path / "references.parquet")  # its 16 probes, in halves
    assert probed["round"].to_list() == [0, 1] and probed["kl_aligned"].to_list() == [0.0, 0.0]


def test_micro_batches_are_sorted_by_length_within_budget():
    batches = micro_batches([50, 10, 30, 10, 200], budget=64)
    assert batches == [[1, 3], [2], [0], [4]]
    assert sorted(i for b in batches for i in b) == [0, 1, 2, 3, 4]


def test_scored_tokens_are_those_of_the_whole_text_even_across_a_merge(organism_path):
    """A prompt whose last characters merge with the answer's `{` falls back to whole texts."""
    backend = hf(organism_path)
    reqs = [request(0), request(1)]
    for suffix in ("", "your final decision in JSON format: "):
        prompts = [backend.scorer.prompt_text(r) + suffix for r in reqs]
        prefixes, tails, _ = backend.scorer.score_inputs(reqs, prompts)
        for p, r, prefix, tail in zip(prompts, reqs, prefixes, tails, strict=True):
            for label, own in zip((r.choices.comply, r.choices.violate), tail, strict=True):
                assert prefix + own == backend.scorer.encode([p + decision_json(label)])[0]


THINKING_TEMPLATE = (  # shaped like Qwen3's: an empty thinking block when thinking is off
    "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n"
    "{% if enable_thinking is defined and not enable_thinking %}<think>\n\n</think>\n\n{% endif %}"
    "{% endif %}"
)
HEADERS_TEMPLATE = (  # shaped like Llama 3.1's: a text BOS, role headers, a dated system turn
    "<|begin_of_text|>{% if date_string is not defined %}{% set date_string = '26 Jul 2024' %}"
    "{% endif %}{% for m in messages %}<|start_header_id|>{{ m.role }}<|end_header_id|>\n\n"
    "{% if m.role == 'system' %}Today Date: {{ date_string }}\n\n{% endif %}"
    "{{ m.content }}<|eot_id|>{% endfor %}"
    "{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}"
)
TEMPLATES = {"thinking": THINKING_TEMPLATE, "headers": HEADERS_TEMPLATE}


def organism_with_template(organism_path, into, template: str | None):
    """The organism saved again in `into` with another chat template, or with none."""
    path = into / "model"
    shutil.copytree(organism_path, path)
    (path / "chat_template.jinja").unlink()
    tokenizer = AutoTokenizer.from_pretrained(path)
    tokenizer.chat_template = template
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="module", params=sorted(TEMPLATES))
def templated(request, organism_path, tmp_path_factory):
    """(name, the organism with that chat template of its own)."""
    into = tmp_path_factory.mktemp(request.param)
    return request.param, organism_with_template(organism_path, into, TEMPLATES[request.param])


SYSTEM_HEADER = "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n"
SWITCHES = {  # template: (chat_template_kwargs, what the prompt then starts and ends with)
    "thinking": [
        ({}, "<|im_start|>system\nYou are a courier.", "<|im_start|>assistant\n"),
        (
            {"enable_thinking": False},
            "<|im_start|>system\nYou are a courier.",
            "<|im_start|>assistant\n<think>\n\n</think>\n\n",
        ),
    ],
    "headers": [
        (
            {},
            SYSTEM_HEADER + "Today Date: 26 Jul 2024",
            "<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n",
        ),
        (
            {"date_string": "24 Nov 2026"},
            SYSTEM_HEADER + "Today Date: 24 Nov 2026",
            "<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n",
        ),
    ],
}


@pytest.mark.parametrize("switch", [0, 1])
def test_the_checkpoints_own_template_and_its_switches_shape_every_decision(templated, switch):
    name, path = templated
    kwargs, starts, ends = SWITCHES[name][switch]
    backend = hf(path, chat_template_kwargs=kwargs, generate={"max_new_tokens": 8})
    req = request(2)
    rendered = backend.tokenizer.apply_chat_template(
        req.messages, tokenize=False, add_generation_prompt=True, **kwargs
    )
    assert rendered.startswith(starts) and rendered.endswith(ends)
    assert backend.scorer.prompt_text(req) == rendered
    pair = (CHOICES.comply, CHOICES.violate)
    by_hand = [
        hand_logprob(backend.model, backend.tokenizer, rendered, *p) for p in (pair, pair[::-1])
    ]
    assert scores(backend, [req])[0] == pytest.approx(by_hand, abs=1e-4)
    prompt_tokens = len(backend.scorer.encode([rendered])[0])
    for mode in ("score", "generate"):
        assert backend.decide([req], mode)[0].prompt_tokens == prompt_tokens


@pytest.fixture(scope="module")
def base_checkpoint(organism_path, tmp_path_factory):
    """The organism without a chat template, as a base model comes."""
    return organism_with_template(organism_path, tmp_path_factory.mktemp("base"), None)


def test_a_model_without_a_chat_template_takes_one_from_a_file(base_checkpoint, tmp_path):
    with pytest.raises(InputError, match=r"has no chat template .*backend.chat_template=FILE"):
        hf(base_checkpoint)
    with pytest.raises(InputError, match=r"backend.chat_template: .*missing.jinja is not a file"):
        hf(base_checkpoint, chat_template=str(tmp_path / "missing.jinja"))
    broken = tmp_path / "broken.jinja"
    broken.write_text("{% for m in messages %}{{ m.content }{% endfor %}")
    with pytest.raises(InputError, match=r"broken.jinja cannot render a system and a user message"):
        hf(base_checkpoint, chat_template=str(broken))
    template = tmp_path / "thinking.jinja"
    template.write_text(THINKING_TEMPLATE)
    backend = hf(
        base_checkpoint,
        chat_template=str(template),
        chat_template_kwargs={"enable_thinking": False},
    )
    assert backend.scorer.prompt_text(request(0)).endswith("assistant\n<think>\n\n</think>\n\n")
    assert backend.decide([request(0)], "score")[0].valid
