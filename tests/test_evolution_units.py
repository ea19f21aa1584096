"""Evolution's data, objectives and lineage against hand computations (no model needed)."""

import math

import pytest
import torch

from agents.decision import DecisionRequest
from agents.evolution.buffer import ExperienceBuffer, Sample
from agents.evolution.data import dpo_examples, group_advantages, pg_examples, sft_examples
from agents.evolution.lineage import Lineage
from agents.evolution.objectives import bernoulli_kl, dpo_loss, pg_loss, sft_loss
from envs.base import Choices

CH = Choices(comply="keep", violate="take")


def sample(violated, reward, scenario="s", t=0, owner="agent-0"):
    request = DecisionRequest(agent_id=0, adapter=None, messages=[], choices=CH)
    return Sample(owner, request, violated, reward, None, t, scenario)


def test_group_advantages_are_standardised_and_zero_when_all_equal():
    adv = group_advantages([2.0, 3.0, 2.0, 3.0])
    assert adv == pytest.approx([-1, 1, -1, 1], abs=1e-5)
    assert group_advantages([2.0, 2.0]).tolist() == [0.0, 0.0]


def test_pg_examples_weight_actions_by_advantage_and_skip_zero():
    ex = pg_examples([sample(False, 2.0), sample(True, 3.0), sample(False, 2.0), sample(True, 3.0)])
    assert [(e.label, round(e.weight, 4)) for e in ex] == [(0, -1), (1, 1), (0, -1), (1, 1)]
    assert pg_examples([sample(False, 2.0), sample(False, 2.0)]) == []


def test_dpo_prefers_the_label_that_earned_more_on_each_scenario():
    s = [
        sample(False, 2.0, "a"),
        sample(True, 3.0, "a"),
        sample(True, 0.0, "b"),
        sample(False, 2.0, "b"),
        sample(False, 2.0, "c"),
    ]  # c: one label only, no pair
    assert [(e.sample.scenario, e.label) for e in dpo_examples(s)] == [
        ("a", 1),
        ("a", 1),
        ("b", 0),
        ("b", 0),
    ]


def test_sft_keeps_the_top_quantile_by_reward():
    s = [sample(False, r) for r in (1.0, 2.0, 3.0, 4.0)]
    assert [e.sample.reward for e in sft_examples(s, top_q=0.5)] == [3.0, 4.0]


def test_bernoulli_kl_is_exact_over_the_two_choices():
    logp = torch.log(torch.tensor([[0.8, 0.1]]))  # normalised: 8/9, 1/9
    ref = torch.log(torch.tensor([[0.5, 0.5]]))
    p = 8 / 9
    expected = p * math.log(p / 0.5) + (1 - p) * math.log((1 - p) / 0.5)
    assert bernoulli_kl(logp, ref).item() == pytest.approx(expected, rel=1e-5)
    assert bernoulli_kl(ref, ref).item() == pytest.approx(0.0, abs=1e-7)


def test_pg_loss_pushes_probability_toward_positive_advantage():
    logp = torch.tensor([[math.log(0.85), math.log(0.15)]], requires_grad=True)
    labels, adv = torch.tensor([1]), torch.tensor([1.0])
    loss, kl = pg_loss(logp, logp.detach(), labels, adv, beta=0.0)
    assert loss.item() == pytest.approx(-math.log(0.15), rel=1e-5)
    assert kl.item() == pytest.approx(0.0, abs=1e-7)
    loss.sum().backward()
    assert logp.grad[0, 1] < 0 < logp.grad[0, 0]  # descent raises log P(violate)


def test_pg_kl_penalty_is_added_with_its_coefficient():
    logp = torch.log(torch.tensor([[0.5, 0.5]]))
    ref = torch.log(torch.tensor([[0.9, 0.1]]))
    no_kl, kl = pg_loss(logp, ref, torch.tensor([0]), torch.tensor([1.0]), beta=0.0)
    with_kl, _ = pg_loss(logp, ref, torch.tensor([0]), torch.tensor([1.0]), beta=2.0)
    assert (with_kl - no_kl).item() == pytest.approx(2.0 * kl.item(), rel=1e-6)


def test_dpo_loss_matches_the_formula():
    logp = torch.log(torch.tensor([[0.3, 0.6]]))
    ref = torch.log(torch.tensor([[0.5, 0.5]]))
    loss, _ = dpo_loss(logp, ref, torch.tensor([1]), torch.tensor([1.0]), beta=0.1)
    margin = (math.log(0.6) - math.log(0.5)) - (math.log(0.3) - math.log(0.5))
    assert loss.item() == pytest.approx(-math.log(1 / (1 + math.exp(-0.1 * margin))), rel=1e-6)


def test_sft_loss_is_the_two_choice_nll():
    logp = torch.log(torch.tensor([[0.2, 0.2]]))
    loss, _ = sft_loss(logp, logp, torch.tensor([1]), torch.tensor([1.0]), beta=0.0)
    assert loss.item() == pytest.approx(math.log(2), rel=1e-6)


def test_buffer_keeps_the_last_window_rounds():
    buf = ExperienceBuffer(window=2)
    for t in range(4):
        buf.add(sample(False, 1.0, t=t))
    assert [s.round for s in buf.recent("agent-0", now=3)] == [2, 3]


def test_lineage_names_versions_keeps_the_last_n_and_rewinds(tmp_path):
    lineage = Lineage(tmp_path / "adapters", keep=2)
    names = []
    for _ in range(3):
        v = lineage.successor("agent-0")
        written = tmp_path / f"w{v.version}"
        written.mkdir()
        (written / "adapter_config.json").write_text("{}")
        lineage.commit(v, written)
        names.append((v.name, v.parent))
    assert names == [
        ("agent-0-v1", None),
        ("agent-0-v2", "agent-0-v1"),
        ("agent-0-v3", "agent-0-v2"),
    ]
    assert sorted(p.name for p in (tmp_path / "adapters" / "agent-0").iterdir()) == ["v2", "v3"]
    state = lineage.state_dict()
    v4 = lineage.successor("agent-0")
    (tmp_path / "w4").mkdir()
    lineage.commit(v4, tmp_path / "w4")
    lineage.load_state_dict(state)  # a crash after v4 was written, before its checkpoint
    lineage.rewind()
    # v4 is gone, the current v3 stays (v2 was pruned when v4 came: only current versions
    # are used again, and replaying the update prunes to the same set as an unbroken run)
    assert sorted(p.name for p in (tmp_path / "adapters" / "agent-0").iterdir()) == ["v3"]
    assert lineage.successor("agent-0").version == 4
