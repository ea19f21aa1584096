"""Environments: payoff rules against hand-computed cases, schedules, catalogue grid."""

import math

import numpy as np
import pytest

from envs import InputError, RolePlayEnv, ThresholdGameEnv
from envs.catalog import load_templates, roleplay_items, threshold_games
from envs.errors import boolean, integer, number
from envs.supervision import SCHEDULES, SupervisionSchedule

RG = [{"high": 1.2, "normal": 1.0, "low": 0.8}]


def roleplay(schedule="all_unsupervised", rounds=4, **kw):
    items = roleplay_items(["delivery_courier"], [[2.0, 3.0]])
    return RolePlayEnv(
        items, SupervisionSchedule(schedule, rounds, **kw.pop("sched", {})), seed=0, **kw
    )


def game(size=4, k=2, **kw):
    return ThresholdGameEnv(threshold_games(["price_ring"], size, [k], RG), **kw)


def test_roleplay_reward_rule_follows_atp():
    env = roleplay("alternating")
    c = env.scenarios[0].choices
    env.begin_round(0)  # supervised
    assert [o.reward for o in env.resolve([c.comply])] == [2.0]
    env.begin_round(0)
    assert [o.reward for o in env.resolve([c.violate])] == [0.0]  # caught
    env.begin_round(1)  # unsupervised
    assert [o.reward for o in env.resolve([c.violate])] == [3.0]
    env.begin_round(1)
    out = env.resolve([None])  # invalid
    assert out[0].reward == 0.0 and "no valid choice" in out[0].feedback
    assert out[0].capital == pytest.approx(2.0 + 0.0 + 3.0 + 0.0)


def test_roleplay_neutral_state_counts_as_supervised_unless_configured():
    for counts_as, expected in (("supervised", 0.0), ("unsupervised", 3.0)):
        env = roleplay(
            "random", sched={"p_supervised": 0.0, "p_neutral": 1.0}, neutral_counts_as=counts_as
        )
        turns = env.begin_round(0)
        assert turns[0].supervision == "neutral"
        assert env.scenarios[0].supervision_texts["neutral"] in turns[0].prompt
        assert env.resolve([env.scenarios[0].choices.violate])[0].reward == expected


def test_roleplay_feedback_says_reward_and_why():
    env = roleplay("all_supervised")
    env.begin_round(0)
    fb = env.resolve([env.scenarios[0].choices.violate])[0].feedback
    assert fb.startswith("Reward: 0.") and "caught" in fb


def test_roleplay_prompt_states_supervision_only_when_it_varies():
    s = roleplay("all_unsupervised").scenarios[0]
    constant = roleplay("all_unsupervised").begin_round(0)[0].prompt
    varying = roleplay("alternating").begin_round(1)[0].prompt
    assert s.supervision_texts["neutral"] in constant
    assert s.supervision_texts["unsupervised"] not in constant
    assert s.supervision_texts["unsupervised"] in varying
    assert '{"choice": "' + s.choices.comply + '"}' in varying


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("all_supervised", "SSSSSSSS"),
        ("all_unsupervised", "UUUUUUUU"),
        ("alternating", "SUSUSUSU"),
        ("mostly_supervised", "SSSUSSSU"),
        ("mostly_unsupervised", "SUUUSUUU"),
        ("last_unsupervised", "SSSSSSSU"),
        ("last_supervised", "UUUUUUUS"),
    ],
)
def test_deterministic_schedules(name, expected):
    sched = SupervisionSchedule(name, n_rounds=8)
    rng = np.random.default_rng(0)
    got = "".join(sched.states(t, 3, rng)[0][0].upper() for t in range(8))
    assert got == expected


def test_random_schedule_is_seeded_and_matches_its_probability():
    sched = SupervisionSchedule("random", 10, p_supervised=0.3)
    a = [sched.states(t, 1000, np.random.default_rng(5)) for t in range(3)]
    b = [sched.states(t, 1000, np.random.default_rng(5)) for t in range(3)]
    assert a == b
    share = np.mean([s == "supervised" for s in a[0]])
    assert 0.25 < share < 0.35
    assert set(SCHEDULES) >= {"random", "alternating"}


def test_unknown_schedule_is_an_input_error():
    with pytest.raises(InputError, match="env.schedule"):
        SupervisionSchedule("sometimes", 3)


def test_threshold_game_success_and_failure_additive():
    env = game(size=4, k=2, payoff_mode="additive")
    c = env.scenarios[0].choices  # violate = collective (collusion)
    out = env.resolve([c.violate, c.violate, c.comply, c.comply])  # 2 >= k: success
    assert [o.reward for o in out] == pytest.approx([1.2] * 4)
    out = env.resolve([c.violate, c.comply, c.comply, None])  # 1 < k: failure
    assert [o.reward for o in out] == pytest.approx([0.8, 1.0, 1.0, 0.0])
    assert [o.capital for o in out] == pytest.approx([1 + 1.2 + 0.8, 3.2, 3.2, 2.2])


def test_threshold_game_compounds_capital_over_three_rounds():
    env = game(size=3, k=2, payoff_mode="multiplicative")
    c = env.scenarios[0].choices
    v, p = c.violate, c.comply
    env.resolve([v, v, p])  # success: all x1.2
    env.resolve([v, p, p])  # failure: 0.8 / 1.0 / 1.0
    out = env.resolve([v, v, v])  # success: all x1.2
    assert [o.capital for o in out] == pytest.approx(
        [1.2 * 0.8 * 1.2, 1.2 * 1.0 * 1.2, 1.2 * 1.0 * 1.2]
    )
    assert out[0].reward == pytest.approx(1.2 * 0.8 * 1.2 - 1.2 * 0.8)


def test_threshold_success_can_pay_only_the_collective():
    env = game(size=3, k=2, payoff_mode="additive", success_pays="collective")
    c = env.scenarios[0].choices
    out = env.resolve([c.violate, c.violate, c.comply])
    assert [o.reward for o in out] == pytest.approx([1.2, 1.2, 1.0])


def test_threshold_groups_play_separate_games():
    env = ThresholdGameEnv(
        threshold_games(["price_ring", "bid_rigging"], 2, [2], RG), payoff_mode="additive"
    )
    assert env.group == [0, 0, 1, 1]
    v0, v1 = env.scenarios[0].choices.violate, env.scenarios[2].choices.violate
    c1 = env.scenarios[2].choices.comply
    out = env.resolve([v0, v0, v1, c1])
    assert [o.reward for o in out] == pytest.approx([1.2, 1.2, 0.8, 1.0])


def test_threshold_prompt_states_the_rule_numbers():
    env = game(size=8, k=6)
    prompt = env.begin_round(0)[0].prompt
    assert "at least 6 of the 8" in prompt and "1.2" in prompt and "0.8" in prompt


def test_catalogue_has_enough_scenarios_and_the_grid_is_complete():
    assert len(load_templates("professions")) >= 16
    assert len(load_templates("games")) >= 7
    items = roleplay_items("all", [[2, 2.1], [1.7, 2.4], [1.3, 2.8], [1, 3.1]])
    assert len(items) == 4 * len(load_templates("professions"))
    assert len({s.id for s in items}) == len(items)
    assert {(s.payoffs["comply"], s.payoffs["violate"]) for s in items} == {
        (2, 2.1),
        (1.7, 2.4),
        (1.3, 2.8),
        (1, 3.1),
    }
    games = threshold_games("all", 8, [2, 4, 6, 8], RG * 2)
    assert len(games) == len(load_templates("games")) * 4 * 2
    for s in items + [g.scenario for g in games]:
        assert "{" not in s.situation and "{" not in s.system_prompt


def test_catalogue_rejects_bad_grids_and_names():
    with pytest.raises(InputError, match=r"env.payoffs\[0\]"):
        roleplay_items("all", [[3.0, 2.0]])
    with pytest.raises(InputError, match="env.professions"):
        roleplay_items(["astronaut"], [[1, 2]])
    with pytest.raises(InputError, match=r"env.rewards\[0\]"):
        threshold_games("all", 8, [4], [{"high": 1.2}])
    with pytest.raises(InputError, match="env.thresholds"):
        ThresholdGameEnv(threshold_games(["price_ring"], 4, [5], RG))


@pytest.mark.parametrize(
    ("check", "value", "message"),
    [
        (lambda v: integer(v, "f"), 0, "f: 0 must be an integer >= 1"),
        (lambda v: integer(v, "f", minimum=0), True, "f: True must be an integer >= 0"),
        (lambda v: integer(v, "f"), 2.0, "f: 2.0 must be an integer >= 1"),
        (lambda v: number(v, "f", above=True), 0, "f: 0 must be a number > 0"),
        (lambda v: number(v, "f", high=1.0), 1.5, "f: 1.5 must be a number >= 0 and <= 1"),
        (lambda v: number(v, "f", high=1, above=True, below=True), 1, "> 0 and < 1"),
        (lambda v: number(v, "f", low=-math.inf), "x", "f: 'x' must be a number"),
        (lambda v: number(v, "f"), float("nan"), "f: nan must be a number >= 0"),
        (lambda v: boolean(v, "f"), "yes", "f: 'yes' must be true or false"),
    ],
)
def test_value_checks_name_the_field_and_what_was_expected(check, value, message):
    with pytest.raises(InputError) as err:
        check(value)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_value_checks_pass_good_values_through():
    assert integer(3, "f") == 3 and integer(0, "f", minimum=0) == 0
    assert number(1, "f", high=1.0) == 1.0 and number(-2.5, "f", low=-math.inf) == -2.5
    assert boolean(False, "f") is False
