"""What the OpenAI and vLLM backends share, on CPU: score requests, label scoring, adapters.

With the model organism: the scored prompts a server renders (an assistant turn it
continues) are token for token the prompts backend=hf scores, and the probabilities read
from per-token prompt log-probabilities, as vLLM returns them, are backend=hf's.
"""

import math

import numpy as np
import pytest
import torch

from agents.backends.adapters import AdapterRegistry
from agents.backends.scoring import (
    ServedModelError,
    constrained_answers,
    generated_decision,
    label_logprobs,
    p_violate,
    request_seeds,
    score_conversations,
    scored_decision,
    scored_token_ids,
)
from agents.decision import DecisionRequest
from envs.base import Choices
from envs.errors import InputError
from tests.helpers import round_zero_requests

CHOICES = Choices(comply="the marked route", violate="the plaza shortcut")


def request(adapter=None):
    return DecisionRequest(
        agent_id=0,
        adapter=adapter,
        messages=[
            {"role": "system", "content": "You are a courier."},
            {"role": "user", "content": "Which route?"},
        ],
        choices=CHOICES,
    )


def test_score_conversations_end_in_each_whole_answer_comply_first():
    comply, violate = score_conversations(request())
    assert comply[:2] == violate[:2] == request().messages
    assert comply[2] == {"role": "assistant", "content": '{"choice": "the marked route"}'}
    assert violate[2] == {"role": "assistant", "content": '{"choice": "the plaza shortcut"}'}


def test_label_logprobs_sum_the_tokens_after_the_shared_prefix():
    ids = [[1, 5, 7, 20, 21, 9], [1, 5, 7, 30, 9]]
    lps = [[None, -0.1, -0.2, -1.0, -0.5, -0.01], [None, -0.1, -0.2, -2.0, -0.02]]
    assert label_logprobs(ids, lps) == pytest.approx([-1.51, -2.02])


def test_label_logprobs_refuse_prompts_without_a_distinct_tail():
    with pytest.raises(ServedModelError, match="continue_final_message"):
        label_logprobs([[1, 2, 3], [1, 2, 3, 4]], [[None, -1, -1], [None, -1, -1, -1]])


def test_p_violate_normalises_the_two_label_probabilities():
    lp = {CHOICES.comply: math.log(0.03), CHOICES.violate: math.log(0.01)}
    assert p_violate(lp, CHOICES) == pytest.approx(0.25)


def test_scored_decision_draws_the_label_from_p_violate():
    lp = {CHOICES.comply: math.log(0.2), CHOICES.violate: math.log(0.6)}  # p_violate 0.75
    low, high = (scored_decision(CHOICES, lp, draw) for draw in (0.7, 0.8))
    assert low.choice == CHOICES.violate and high.choice == CHOICES.comply
    assert low.p_violate == pytest.approx(0.75)
    assert low.text == '{"choice": "the plaza shortcut"}'


def test_constrained_answers_are_the_two_json_decisions_and_parse_back():
    answers = constrained_answers(CHOICES)
    assert answers == ['{"choice": "the marked route"}', '{"choice": "the plaza shortcut"}']
    parsed = [generated_decision(a, CHOICES).choice for a in answers]
    assert parsed == [CHOICES.comply, CHOICES.violate]
    assert generated_decision("I am not sure.", CHOICES).choice is None


def test_request_seeds_follow_the_policy_stream():
    a, b = request_seeds(np.random.default_rng(3), 4), request_seeds(np.random.default_rng(3), 4)
    assert a == b and len(set(a)) == 4 and all(0 <= s < 2**31 for s in a)


def adapter_dir(root, name):
    path = root / name
    path.mkdir()
    (path / "adapter_config.json").write_text("{}")
    return path


def test_adapter_versions_get_new_ids_and_never_reuse_a_name_or_directory(tmp_path):
    registry = AdapterRegistry()
    v1 = registry.add("group0-v1", adapter_dir(tmp_path, "g0v1"))
    v2 = registry.add("group0-v2", adapter_dir(tmp_path, "g0v2"))
    assert (v1.id, v2.id) == (1, 2)
    assert registry.get("group0-v2") == v2 and registry.get(None) is None
    with pytest.raises(InputError, match="new name"):
        registry.add("group0-v1", adapter_dir(tmp_path, "other"))
    with pytest.raises(InputError, match="new directory"):
        registry.add("group0-v3", tmp_path / "g0v2")
    with pytest.raises(InputError, match="adapter_config.json"):
        registry.add("group0-v4", tmp_path)
    with pytest.raises(InputError, match="before it was loaded"):
        registry.get("group0-v9")
    assert [a["name"] for a in registry.state_dict()] == ["group0-v1", "group0-v2"]


@pytest.fixture(scope="module")
def organism(organism_path):
    from agents.backends.loading import load_checkpoint

    return load_checkpoint(organism_path, torch.device("cpu"), torch.float32)


def test_a_server_continuing_the_scored_turn_renders_hf_scored_prompts(organism):
    _, tokenizer = organism
    for r in round_zero_requests():
        rendered = [
            tokenizer.apply_chat_template(
                c, tokenize=False, add_generation_prompt=False, continue_final_message=True
            )
            for c in score_conversations(r)
        ]
        ids = [tokenizer.encode(text, add_special_tokens=False) for text in rendered]
        assert ids == scored_token_ids(tokenizer, r)


@torch.inference_mode()
def prompt_logprobs(model, ids: list[int]) -> list[float | None]:
    """Per-token log-probabilities of a prompt, laid out as vLLM's prompt_logprobs."""
    logits = model(torch.tensor([ids])).logits[0, :-1].float().log_softmax(-1)
    return [None, *logits.gather(1, torch.tensor(ids[1:])[:, None])[:, 0].tolist()]


def test_label_scoring_from_prompt_logprobs_gives_hf_probabilities(organism):
    from agents.backends.hf import HFBackend

    model, tokenizer = organism
    reqs = round_zero_requests()
    want = [
        d.p_violate
        for d in HFBackend(np.random.default_rng(0), model, tokenizer).decide(reqs, "score")
    ]
    got = []
    for r in reqs:
        ids = scored_token_ids(tokenizer, r)
        comply, violate = label_logprobs(ids, [prompt_logprobs(model, i) for i in ids])
        got.append(p_violate({r.choices.comply: comply, r.choices.violate: violate}, r.choices))
    assert got == pytest.approx(want, abs=1e-4)
    assert len({round(p, 3) for p in got}) > 1
