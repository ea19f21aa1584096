"""ATP's released formats: the real files load, malformed ones fail with one clear line."""

import json
import re
from pathlib import Path

import pytest

from envs import InputError, RolePlayEnv, ThresholdGameEnv
from envs.atp import load_ma_games, load_ma_templates, load_sa_questions
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
        ("[{not json", "q.json: not valid JSON ("),
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
        (
            [{**SA_ITEM, "params": {"low_reward": "x"}}],
            "q.json: item 0: params.low_reward: expected a number, got the string 'x'",
        ),
        (
            [{**SA_ITEM, "user_prompt": ["Flour?"]}],
            "q.json: item 0: user_prompt: expected a string, got a list",
        ),
        (
            [{**SA_ITEM, "user_prompt": 3}],
            "q.json: item 0: user_prompt: expected a string, got the number 3",
        ),
        (
            [{**SA_ITEM, "supervised_choice": None}],
            "q.json: item 0: supervised_choice: expected a string, got null",
        ),
        (
            [{**SA_ITEM, "system_prompt": None}],
            "q.json: item 0: system_prompt: expected a string, got null",
        ),
        (
            [{**SA_ITEM, "supervised_text": ["s"]}],
            "q.json: item 0: supervised_text: expected a string, got a list",
        ),
        (
            [{**SA_ITEM, "params": {"low_reward": 1, "high_reward": "nan"}}],
            "q.json: item 0: params.high_reward: expected a number, got the string 'nan'",
        ),
        (
            '[{"environment": "b", "system_prompt": "s", "user_prompt": "u", '
            '"supervised_choice": "A", "better_choice": "B", '
            '"params": {"low_reward": NaN, "high_reward": 2}}]',
            "q.json: item 0: params.low_reward: expected a finite number, got nan",
        ),
        (
            [{**SA_ITEM, "params": {"low_reward": 2, "high_reward": 1.5}}],
            "q.json: item 0: params.high_reward: the violating (better_choice) payoff 1.5 must "
            "exceed low_reward",
        ),
    ],
)
def test_malformed_question_files_name_file_item_and_field(tmp_path, content, message):
    with pytest.raises(InputError, match=re.escape(message)):
        load_sa_questions(write(tmp_path, content))


def test_missing_file_is_named(tmp_path):
    with pytest.raises(InputError, match=r"nothere.json: file not found"):
        load_sa_questions(tmp_path / "nothere.json")


@needs_atp
def test_sa_training_file_loads_without_supervision_texts():
    items = load_sa_questions(ATP / "sa_question_160.json")
    assert len(items) == 160 and all(s.supervision_texts == {} for s in items)
    env = RolePlayEnv(items, SupervisionSchedule("all_supervised", 2), seed=0)
    prompt = env.begin_round(0)[0].prompt
    assert prompt.startswith(items[0].situation) and prompt.count('{"choice"') == 2


@needs_atp
def test_ma_questions_play_one_game_per_item_with_its_own_size_and_threshold():
    raw = json.loads((ATP / "ma_question_350.json").read_text())
    games = load_ma_games(ATP / "ma_question_350.json", 8, [4], RG, "multiplicative")
    assert len(games) == 350
    assert [(g.size, g.threshold) for g in games] == [
        (x["params"]["n"], x["params"]["cooperation_threshold"]) for x in raw
    ]
    assert games[0].scenario.choices.violate == raw[0]["cooperative_choice"]
    assert games[0].scenario.payoffs["high"] == raw[0]["params"]["high_reward"]
    env = ThresholdGameEnv(games, payoff_mode="multiplicative")
    assert env.n_agents == sum(x["params"]["n"] for x in raw)
    first = games[0]
    collective = [first.collective_label] * first.threshold
    rest = [s.choices.comply for s in env.scenarios[first.threshold :]]
    rewards = [o.reward for o in env.resolve(collective + rest)]
    assert rewards[0] == pytest.approx(raw[0]["params"]["high_reward"] - 1)  # game 0 succeeded


MA_ITEM = {
    "environment": "PublicFund",
    "system_prompt": "You are one of 4.",
    "user_prompt": "Invest or keep? IMPORTANT: answer in JSON",
    "cooperative_choice": "invest",
    "independent_choice": "keep",
    "format_example": '{"choice": invest} or {"choice": keep}',
    "params": {
        "n": 4,
        "cooperation_threshold": 2,
        "high_reward": 1.5,
        "normal_reward": 1.0,
        "low_reward": 0.5,
    },
}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"cooperative_choice": None}, "item 0: cooperative_choice: expected a string, got null"),
        ({"params": {**MA_ITEM["params"], "n": 1}}, "item 0: params.n: expected an integer >= 2"),
        (
            {"params": {**MA_ITEM["params"], "cooperation_threshold": 5}},
            "item 0: params.cooperation_threshold: 5 exceeds n (4)",
        ),
        (
            {"params": {**MA_ITEM["params"], "high_reward": 0.9}},
            "item 0: params.high_reward: the collective success payoff 0.9 must exceed",
        ),
    ],
)
def test_malformed_ma_questions_name_file_item_and_field(tmp_path, change, message):
    path = write(tmp_path, [{**MA_ITEM, **change}])
    with pytest.raises(InputError, match=f"q.json: {re.escape(message)}"):
        load_ma_games(path, 8, [4], RG, "multiplicative")


@needs_atp
def test_threshold_env_plays_an_ma_question_file(tmp_path):
    import polars as pl

    from tests.helpers import sim_run

    raw = json.loads((ATP / "ma_question_350.json").read_text())[:20]
    path = write(tmp_path, raw, "ma20.json")
    quiet = ["backend=reward_following", "run.progress=false", "run.report=false", "run.rounds=2"]
    out = sim_run(
        "env=threshold",
        "env.source=atp",
        f"env.atp_file={path}",
        *quiet,
        f"hydra.run.dir={tmp_path / 'run'}",
    )
    assert out.returncode == 0, out.stderr
    rows = pl.read_parquet(tmp_path / "run" / "decisions.parquet")
    assert rows.filter(pl.col("round") == 0).height == sum(x["params"]["n"] for x in raw)
    bad = write(tmp_path, [{**raw[0], "user_prompt": None}], "bad.json")
    out = sim_run(
        "env=threshold",
        "env.source=atp",
        f"env.atp_file={bad}",
        *quiet,
        f"hydra.run.dir={tmp_path / 'bad'}",
    )
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [
        f"error: {bad}: item 0: user_prompt: expected a string, got null"
    ]
    assert not (tmp_path / "bad").exists()
