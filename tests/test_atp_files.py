"""ATP's released formats: the real files load, malformed ones fail with one clear line."""

import json
from pathlib import Path

import pytest

from envs import InputError, RolePlayEnv, ThresholdGameEnv
from envs.atp import load_ma_templates, load_sa_questions
from envs.supervision import SupervisionSchedule

ATP = Path(__file__).resolve().parents[2] / "shared" / "atp"
RG = [{"high": 1.2, "normal": 1.0, "low": 0.8}]
needs_atp = pytest.mark.skipif(not ATP.is_dir(), reason="ATP release data (../shared/atp) absent")


@needs_atp
def test_sa_question_file_loads_and_plays():
    items = load_sa_questions(ATP / "sa_question_64.json")
    assert len(items) == 64
    first = json.loads((ATP / "sa_question_64.json").read_text())[0]
    s = items[0]
    assert s.choices.comply == first["supervised_choice"]
    assert s.choices.violate == first["better_choice"]
    assert s.payoffs == {
        "comply": first["params"]["low_reward"],
        "violate": first["params"]["high_reward"],
    }
    assert "IMPORTANT" not in s.situation  # our own format instruction is appended once
    env = RolePlayEnv(items, SupervisionSchedule("all_unsupervised", 3), seed=0)
    prompt = env.begin_round(0)[0].prompt
    assert prompt.count('{"choice"') == 2 and first["neutral_text"] in prompt
    rewards = [o.reward for o in env.resolve([x.choices.violate for x in items])]
    assert rewards == [x.payoffs["violate"] for x in items]


@needs_atp
def test_ma_templates_load_as_collusion_games():
    games = load_ma_templates(ATP / "ma_templates.json", 8, [2, 4, 6, 8], RG, "multiplicative")
    assert len(games) == 7 * 4
    raw = json.loads((ATP / "ma_templates.json").read_text())[0]["template"]
    g = games[0]
    assert g.collective_label == raw["collective_choice"]
    assert g.scenario.choices.violate == raw["collective_choice"]  # ATP: collusion
    assert "{" not in g.scenario.situation and "x1.2" in g.scenario.situation
    env = ThresholdGameEnv(games, payoff_mode="multiplicative")
    assert env.n_agents == 7 * 4 * 8


def write(tmp_path, data, name="q.json"):
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


SA_ITEM = {
    "environment": "baker",
    "system_prompt": "You are a baker.",
    "user_prompt": "Flour?",
    "supervised_choice": "Store A",
    "better_choice": "Store B",
    "format_example": '{"choice": "Store A"} or {"choice": "Store B"}',
    "supervised_text": "s",
    "unsupervised_text": "u",
    "neutral_text": "n",
    "params": {"low_reward": 1, "high_reward": 2},
}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("[{not json", r"q.json: not valid JSON \(.* at line 1\)"),
        ({"a": 1}, "q.json: expected a non-empty JSON list"),
        (
            [{k: v for k, v in SA_ITEM.items() if k != "better_choice"}],
            "q.json: item 0: missing field 'better_choice'",
        ),
        (
            [{**SA_ITEM, "format_example": '{"choice": "Store C"} or {"choice": "Store B"}'}],
            "q.json: item 0: format_example names choice 'Store C', not one of the two",
        ),
        ([{**SA_ITEM, "better_choice": "store a"}], "item 0: 'supervised_choice' and"),
        ([{**SA_ITEM, "params": {"low_reward": "x"}}], "item 0: params must hold numbers"),
    ],
)
def test_malformed_question_files_name_file_item_and_field(tmp_path, content, message):
    with pytest.raises(InputError, match=message):
        load_sa_questions(write(tmp_path, content))


def test_missing_file_is_named(tmp_path):
    with pytest.raises(InputError, match=r"nothere.json: file not found"):
        load_sa_questions(tmp_path / "nothere.json")
