"""Fuzz: a table of bad inputs across config groups, data files and damaged run files.

Every case must end with exit code 2 and one `error:` line, no traceback, nothing deleted
and no run marked complete. The simulator runs in this process (sim.run.main) with the
scripted `fixed` backend, so a case costs a composition, not an interpreter.
"""

import contextlib
import io
import json
import math
import shutil
import subprocess
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from envs.errors import InputError, integer, listed, number
from sim import checkpoint
from tests.helpers import sim_main

FAST = ["backend=fixed", "run.progress=false", "run.report=false", "run.rounds=2"]
NOT_NUMBERS = ["nan", "inf", "-inf", "abc", "[1,2]", "true", "{a:1}"]
NOT_COUNTS = ["-1", "1.5", "nan", "abc", "[3]", "true"]
HUGE = "99999999999999999999999"

CONFIG = [
    *[[f"run.rounds={v}"] for v in [*NOT_COUNTS, "0", HUGE]],
    *[[f"run.checkpoint_every={v}"] for v in NOT_COUNTS],
    *[[f"agents.memory_window={v}"] for v in [*NOT_COUNTS, HUGE]],
    *[[f"agents.aggregate_above={v}"] for v in NOT_COUNTS],
    *[[f"seed={v}"] for v in [*NOT_COUNTS, HUGE]],
    *[[f"run.{k}={v}"] for k in ("progress", "report", "record_prompts") for v in ("maybe", "2")],
    ["deviants.always=maybe"],
    *[[f"deviants.count={v}"] for v in ("-1", "nan", "abc", "100000")],
    ["deviants.where=nowhere"],
    ["decide.mode=bogus"],
    ["guard.name=nosuch"],
    *[["guard=calibrated", f"guard.{k}={v}"] for k in ("position", "feedback") for v in ("x", "1")],
    *[
        ["guard=calibrated", f"guard.{k}={v}"]
        for k in ("catch_rate", "false_edit_rate")
        for v in ("nan", "-0.1", "1.5", "abc", "[0.5]")
    ],  # fmt: skip
    ["guard=model", "guard.mode=guess"],
    ["guard=model", "guard.backend=null"],
    *[
        ["guard=corrector", f"guard.corrector.{k}={v}"]
        for k, v in (
            ("data.scenarios", "0"),
            ("data.identity_share", "1"),
            ("train.epochs", "nan"),
            ("train.lr", "0"),
        )
    ],
    ["guard=corrector", "backend@guard.backend=fixed"],
    ["agents.peer_view=everything"],
    ["agents.memory_window=0", "agents.peer_view=full"],
    *[[f"backend.p_violate={v}"] for v in [*NOT_NUMBERS, "0", "1", "-0.5"]],
    *[["backend=reward_following", f"backend.sensitivity={v}"] for v in NOT_NUMBERS],
    *[["backend=reward_following", f"backend.p0={v}"] for v in ("nan", "2", "abc")],
    *[["backend=fermi", f"backend.beta={v}"] for v in ("nan", "-1", "abc", "inf")],
    *[["backend=linear_threshold", f"backend.threshold={v}"] for v in ("nan", "2", "abc")],
    ["backend=linear_threshold", "backend.distribution=weird"],
    ["backend.name=nosuch"],
    *[[f"env.replicates={v}"] for v in [*NOT_COUNTS, "0", "100000000000", HUGE]],
    *[[f"env.payoffs={v}"] for v in ("3", "[3]", "[[1]]", "[[nan,2]]", "[[1,inf]]", "[[2,1]]")],
    *[[f"env.payoffs={v}"] for v in ("[[a,b]]", "[[1,2,3]]", "abc")],
    ["env.schedule=sometimes"],
    ["env.professions=[nobody]"],
    ["env.professions=3"],
    ["env.source=nowhere"],
    ["env.source=atp"],
    ["env.source=atp", "env.atp_file=/no/such/file.json"],
    ["env.kind=other"],
    *[["env=threshold", f"env.thresholds={v}"] for v in ("4", "[0]", "[nan]", "[abc]", "abc")],
    *[["env=threshold", f"env.group_size={v}"] for v in ("1", "nan", "abc", "100000000000000")],
    *[
        ["env=threshold", f"env.rewards={v}"]
        for v in ("3", "[3]", "[{high: nan, normal: 1, low: 1}]")
    ],
    ["env=threshold", "env.rewards=[{high: 1}]"],
    ["env=threshold", "env.start_capital=nan"],
    ["env=threshold", "env.games=[nogame]"],
    *[[f"graph={g}", "graph.connected=maybe"] for g in ("small_world", "ring", "erdos_renyi")],
    *[["graph=small_world", f"graph.k={v}"] for v in ("3", "-2", "abc", "nan")],
    *[["graph=small_world", f"graph.p={v}"] for v in ("1.5", "nan", "abc", "-1")],
    *[["graph=scale_free", f"graph.m={v}"] for v in ("0", "abc", "nan")],
    *[["graph=erdos_renyi", f"graph.mean_degree={v}"] for v in ("-1", "nan", "abc")],
    ["graph=file"],
    ["graph=file", "graph.path=/no/such/graph.txt"],
    ["graph.scope=nowhere"],
    ["graph=nosuch"],
    ["experiment=nope"],
    ["backend=nosuch"],
    ["evolution=nosuch"],
    ["run.roundz=3"],
    ["+run=1"],
    *[[a] for a in ("+foo=1", "+run.roundz=3", "+backend.nosuch=1", "+guard.rate=0.5")],
    *[[a] for a in ("~run.rounds", "~guard", "~backend.p_violate")],
    *[["backend=organism", f"backend.cache_dir={d}"] for d in ("/dev/null", "/dev/null/sub")],
    *[
        ["backend=organism", f"backend.organism.evaluate.{key}={v}"]
        for key, v in (("scenarios", "0"), ("scenarios", "abc"), ("templates", "-1"))
    ],
    *[
        ["backend=organism", f"backend.organism.{key}={v}"]
        for key, v in (
            ("tokenizer.pieces", "bytes"),
            ("corpus.generated.roleplay", "-1"),
            ("corpus.generated.threshold", "abc"),
            ("corpus.relabelled", "1.5"),
            ("corpus.invented", "nan"),
            ("corpus.aggregate_above", "3"),
            ("corpus.aggregate_above", "[]"),
            ("corpus.aggregate_above", "[-1]"),
            ("pretrain.label_mentions", "maybe"),
            ("pretrain.copying", "-1"),
            ("architecture.head_dim", "16"),
            ("pretrain.lr", "-1"),
            ("pretrain.curriculum", "maybe"),
            ("prior.caution", "abc"),
            ("prior.temptation", "[1]"),
            ("prior.coordination", "nan"),
        )
    ],
    *[[f"reference.probes={v}"] for v in ("-1", "abc", "1.5", "[3]")],
    *[[f"reference.base={v}"] for v in ("/no/such/base", "/dev/null")],
    ["experiment=elasticity"],  # backend=fixed: nothing to fine-tune
    *[
        ["experiment=elasticity", "backend=organism", setting]
        for setting in (
            "elasticity.doses=[0]",
            "elasticity.doses=4",
            "elasticity.tip_steps=0",
            "elasticity.seeds=[-1]",
            "elasticity.recipe.method=ppo",
        )
    ],
    ["hydra/launcher=nosuch"],
    ["hydra.run.dirr=x"],
    ["run.rounds=[1,2"],
    ["-m", "run.rounds=2,-1"],
    ["-m", "seed=1,abc"],
    ["-m", "hydra/launcher=nosuch", "seed=1,2"],
]


def check_refused(out, tmp_path: Path, before: dict[str, bytes]) -> None:
    assert out.returncode == 2, out.stdout + out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), out.stderr
    assert "Traceback" not in out.stderr + out.stdout
    after = {str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file()}
    assert set(before) <= after, "a refused run deleted files"
    for manifest in tmp_path.rglob("manifest.json"):
        if str(manifest.relative_to(tmp_path)) not in before:
            assert json.loads(manifest.read_text())["status"] != "complete"


def tree(path: Path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in path.rglob("*") if p.is_file()}


@pytest.mark.parametrize("args", CONFIG, ids=lambda a: " ".join(a))
def test_bad_config_is_refused(tmp_path, args):
    (tmp_path / "keep.txt").write_text("x")
    before = tree(tmp_path)
    out = sim_main(
        *FAST, *args, f"hydra.run.dir={tmp_path / 'run'}", f"hydra.sweep.dir={tmp_path / 's'}"
    )
    check_refused(out, tmp_path, before)
    assert not (tmp_path / "run").exists() and not (tmp_path / "s" / "0" / "manifest.json").exists()


GRAPH_FILES = {
    "graph_garbage.txt": b"\x00\x01\x02 not an edge list",
    "graph_empty.txt": b"",
    "graph_bad.graphml": b"<graphml><graph><node",
}
ATP_FILES = {
    "atp_not_json.json": b"[{",
    "atp_empty.json": b"",
    "atp_object.json": b'{"a": 1}',
    "atp_list_of_numbers.json": b"[1, 2, 3]",
    "atp_empty_list.json": b"[]",
    "atp_binary.json": b"\xff\xfe\x00garbage",
    "atp_missing_fields.json": b'[{"environment": "baker"}]',
}


def data_cases():
    for name in GRAPH_FILES:
        yield name, ["graph=file", "graph.path={path}"]
    for name in ATP_FILES:
        yield name, ["env.source=atp", "env.atp_file={path}"]
        yield name, ["env=threshold", "env.source=atp", "env.atp_file={path}"]


@pytest.mark.parametrize(("name", "args"), list(data_cases()), ids=lambda x: str(x))
def test_bad_data_file_is_refused(tmp_path, name, args):
    path = tmp_path / name
    path.write_bytes({**GRAPH_FILES, **ATP_FILES}[name])
    before = tree(tmp_path)
    out = sim_main(*FAST, *(a.format(path=path) for a in args), f"hydra.run.dir={tmp_path / 'r'}")
    check_refused(out, tmp_path, before)


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("finished") / "run"
    out = sim_main(*FAST, "run.rounds=3", f"hydra.run.dir={run_dir}")
    assert out.returncode == 0, out.stderr
    return run_dir


def flipped(data: bytes, i: int) -> bytes:
    return data[:i] + bytes([data[i] ^ 0xFF]) + data[i + 1 :]


def damaged(run_dir: Path, how: str) -> None:
    """Damage a copy of a finished run, then mark it running (as a killed run is)."""
    manifest = json.loads((run_dir / "manifest.json").read_text())
    (run_dir / "manifest.json").write_text(json.dumps({**manifest, "status": "running"}))
    parts = run_dir / "decisions.parquet"
    part = parts / "part-00001.parquet"
    state = run_dir / checkpoint.FILE
    files = {
        "part_empty": (part, b""),
        "part_garbage": (part, b"PAR1garbagePAR1"),
        "part_truncated": (part, part.read_bytes()[:-20]),
        "part_flipped": (part, flipped(part.read_bytes(), 200)),
        "extra_part": (parts / "part-00099.parquet", part.read_bytes()),
        "extra_name": (parts / "other.parquet", part.read_bytes()),
        "rounds_empty": (run_dir / "rounds.parquet", b""),
        "rounds_text": (run_dir / "rounds.parquet", b"round\n0\n"),
        "updates_garbage": (run_dir / "updates.parquet", b"garbage"),
        "state_empty": (state, b""),
        "state_text": (state, b"hello"),
        "state_pickle": (state, b"\x80\x04\x95\x05\x00\x00\x00\x00\x00\x00\x00K\x01."),
        "state_list": (state, b"[]"),
        "state_null": (state, b"null"),
        "state_wrong_format": (state, b'{"format": "x", "run_id": "y", "state": {}}'),
        "manifest_empty": (run_dir / "manifest.json", b""),
        "manifest_list": (run_dir / "manifest.json", b"[1]"),
        "manifest_no_config": (run_dir / "manifest.json", b'{"status": "running"}'),
        "overrides_garbage": (run_dir / ".hydra" / "overrides.yaml", b"{{{: ["),
        "overrides_mapping": (run_dir / ".hydra" / "overrides.yaml", b"a: 1"),
    }
    if how == "part_deleted":
        part.unlink()
    elif how == "parts_deleted":
        shutil.rmtree(parts)
    elif how == "rounds_deleted":
        (run_dir / "rounds.parquet").unlink()
    elif how == "ledger_deleted":
        data = json.loads((run_dir / "manifest.json").read_text())
        data.pop("ledger")
        (run_dir / "manifest.json").write_text(json.dumps(data))
    elif how == "state_other_run":
        saved = json.loads(state.read_text())
        state.write_text(json.dumps({**saved, "run_id": "elsewhere-00000000"}))
    elif how == "state_round_beyond":
        saved = json.loads(state.read_text())
        saved["state"]["round"] = 99
        state.write_text(json.dumps(saved))
    else:
        path, content = files[how]
        path.write_bytes(content)


RUN_FILES = [
    "part_empty",
    "part_garbage",
    "part_truncated",
    "part_flipped",
    "extra_part",
    "extra_name",
    "rounds_empty",
    "rounds_text",
    "updates_garbage",
    "state_empty",
    "state_text",
    "state_pickle",
    "state_list",
    "state_null",
    "state_wrong_format",
    "manifest_empty",
    "manifest_list",
    "manifest_no_config",
    "overrides_garbage",
    "overrides_mapping",
    "part_deleted",
    "parts_deleted",
    "rounds_deleted",
    "ledger_deleted",
    "state_other_run",
    "state_round_beyond",
]


@pytest.mark.parametrize("how", RUN_FILES)
def test_damaged_run_files_are_refused_on_resume(tmp_path, finished_run, how):
    run_dir = tmp_path / "run"
    shutil.copytree(finished_run, run_dir)
    damaged(run_dir, how)
    before = tree(tmp_path)
    out = sim_main(f"resume={run_dir}")
    check_refused(out, tmp_path, before)
    assert tree(tmp_path) == before  # a refused resume changes nothing


def test_the_table_is_large():
    n = len(CONFIG) + len(list(data_cases())) + len(RUN_FILES) + len(REPORT)
    assert n >= 150, n


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(
    st.one_of(
        st.integers(),
        st.floats(allow_nan=True, allow_infinity=True),
        st.booleans(),
        st.text(max_size=5),
        st.none(),
        st.lists(st.integers(), max_size=2),
    )
)
def test_value_checks_accept_exactly_their_values(value):
    """integer/number/listed either return a value of the promised kind or raise InputError
    naming the field; nothing else escapes."""
    try:
        n = integer(value, "f", minimum=0, maximum=10)
        assert type(n) is int and 0 <= n <= 10
    except InputError as e:
        assert str(e).startswith("f: ")
    try:
        x = number(value, "f", -math.inf)
        assert math.isfinite(x)
    except InputError as e:
        assert str(e).startswith("f: ")
    try:
        assert isinstance(listed(value, "f"), list)
    except InputError as e:
        assert str(e).startswith("f: ")


def test_plus_adds_keys_only_to_mappings_of_the_users_own():
    from sim.overrides import check_overrides
    from sim.run import CONF

    kwargs = "+backend.chat_template_kwargs.enable_thinking=false"
    check_overrides(CONF, "config", ["backend=hf", kwargs, "+backend.adapters.a0=/x"])
    check_overrides(CONF, "config", ["++seed=3"])
    with pytest.raises(InputError, match="backend.model.revision: no such setting"):
        check_overrides(CONF, "config", ["backend=hf", "+backend.model.revision=main"])


def test_an_experiment_in_a_config_dir_is_found(tmp_path):
    (tmp_path / "conf" / "experiment").mkdir(parents=True)
    (tmp_path / "conf" / "experiment" / "mine.yaml").write_text("# @package _global_\nseed: 5\n")
    run_dir = tmp_path / "run"
    out = sim_main(
        "--config-dir", tmp_path / "conf", *FAST, "experiment=mine", f"hydra.run.dir={run_dir}"
    )
    assert out.returncode == 0, out.stderr
    assert json.loads((run_dir / "manifest.json").read_text())["seed"] == 5


def report_input(run_dir: Path, how: str) -> Path:
    """A copy of a finished run damaged for the report; returns the PATH to report on."""
    part = run_dir / "decisions.parquet" / "part-00001.parquet"
    match how:
        case "no_such_dir":
            return run_dir / "nowhere"
        case "a_file":
            return run_dir / "manifest.json"
        case "empty_dir":
            empty = run_dir / "empty"
            empty.mkdir()
            return empty
        case "part_garbage":
            part.write_bytes(b"garbage")
        case "part_empty":
            part.write_bytes(b"")
        case "part_other_schema":
            pl.DataFrame({"x": [1]}).write_parquet(part)
        case "part_truncated":
            part.write_bytes(part.read_bytes()[:-30])
    return run_dir


REPORT = [
    "no_such_dir",
    "a_file",
    "empty_dir",
    "part_garbage",
    "part_empty",
    "part_other_schema",
    "part_truncated",
]


@pytest.mark.parametrize("how", REPORT)
def test_bad_report_input_is_one_line(tmp_path, finished_run, how):
    from analysis.report.cli import main

    run_dir = tmp_path / "run"
    shutil.copytree(finished_run, run_dir)
    path = report_input(run_dir, how)
    before = tree(tmp_path)
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main([str(path), "--n-boot=0"])
    out = subprocess.CompletedProcess([], code, "", err.getvalue())
    check_refused(out, tmp_path, before)
    assert tree(tmp_path) == before


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
SA_FIELDS = ("environment", "system_prompt", "user_prompt", "supervised_choice", "better_choice")


@settings(max_examples=150, suppress_health_check=list(HealthCheck), deadline=None)
@given(
    items=st.lists(
        st.dictionaries(st.sampled_from([*SA_FIELDS, "params", "format_example"]), JSON),
        max_size=3,
    )
    | JSON
)
def test_atp_loaders_either_load_or_name_the_problem(tmp_path_factory, items):
    """Any JSON an ATP file may hold: the loaders return games/scenarios or an InputError
    naming the file, never another exception."""
    from envs.atp import load_ma_games, load_sa_questions

    path = tmp_path_factory.mktemp("atp") / "items.json"
    path.write_text(json.dumps(items))
    rewards = [{"high": 1.2, "normal": 1.0, "low": 0.8}]
    for load in (
        lambda: load_sa_questions(path),
        lambda: load_ma_games(path, 4, [2], rewards, "multiplicative"),
    ):
        try:
            load()
        except InputError as e:
            assert str(path) in str(e) or "items.json" in str(e)
