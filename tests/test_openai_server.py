"""backend=openai against a real OpenAI-compatible server: `transformers serve` on loopback.

The server is a real process serving the model organism's checkpoint directory offline
(HF_HUB_OFFLINE=1). `transformers serve` renders the organism's chat template, generates
and reports token usage, but returns no log-probabilities: runs here are in generate
mode, and score mode must be refused in one line. A server that dies or stops mid-run,
or answers 5xx, must end the run with one line while the completed rounds stay readable.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import yaml

from agents.backends import make_backend
from agents.backends.scoring import ServedModelError
from envs.errors import InputError
from tests.helpers import round_zero_requests, sim_run

ROOT = Path(__file__).resolve().parents[1]
TRANSFORMERS = Path(sys.executable).parent / "transformers"
SA = [
    "experiment=atp_sa",
    "env.professions=[delivery_courier,loan_officer]",
    "env.payoffs=[[1,2]]",
    "run.rounds=2",
]
MA = ["experiment=atp_ma", "env.games=[price_ring]", "env.thresholds=[4]", "run.rounds=2"]
QUIET = ["run.progress=false", "run.report=false"]
SECRET = "sk-tiplab-test-0123456789"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=1) as r:
            return r.status == 200
    except OSError:
        return False


@contextmanager
def serving(command: list, port: int, log: Path, env: dict, timeout: float = 120):
    """A server process on loopback, killed on exit; yields (base URL, process) once healthy."""
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [str(c) for c in command],
            env={**os.environ, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    root = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + timeout
        while not healthy(root):
            assert proc.poll() is None and time.time() < deadline, log.read_text()[-2000:]
            time.sleep(0.1)
        yield f"{root}/v1", proc
    finally:
        proc.kill()
        proc.wait()


def transformers_serve(model_dir: Path, log: Path):
    """`transformers serve` of a local checkpoint directory, offline, on a free port."""
    port = free_port()
    command = [TRANSFORMERS, "serve", model_dir, "--host", "127.0.0.1", "--port", port]
    command += ["--device", "cpu", "--log-level", "info"]
    return serving(command, port, log, {"HF_HUB_OFFLINE": "1", "HF_HUB_DISABLE_UPDATE_CHECK": "1"})


def openai_args(url: str, model_dir: Path, *extra: str) -> list[str]:
    return [
        "backend=openai",
        f"backend.base_url={url}",
        f"backend.model={model_dir}",
        "decide.mode=generate",
        "backend.generate.max_new_tokens=32",
        "backend.concurrency=4",
        *extra,
    ]


@pytest.fixture(scope="module")
def server(organism_path, tmp_path_factory):
    log = tmp_path_factory.mktemp("server") / "serve.log"
    with transformers_serve(organism_path, log) as (url, proc):
        yield url, proc


def test_atp_sa_and_atp_ma_run_through_the_server(server, organism_path, tmp_path):
    url, _ = server
    key = {"TIPLAB_TEST_KEY": SECRET}
    for name, experiment, n_agents in (("sa", SA, 2), ("ma", MA, 8)):
        run = tmp_path / name
        args = openai_args(url, organism_path, "backend.api_key_env=TIPLAB_TEST_KEY")
        out = sim_run(*experiment, *args, *QUIET, f"hydra.run.dir={run}", env=key)
        assert out.returncode == 0, out.stderr
        d = pl.read_parquet(run / "decisions.parquet")
        assert d.height == 2 * n_agents
        assert d["valid"].mean() >= 0.5  # the organism answers in ATP's JSON
        assert (d["prompt_tokens"] > 0).all() and (d["completion_tokens"] > 0).all()
        assert (d["latency_s"] > 0).all() and d["p_violate"].is_null().all()
        manifest = json.loads((run / "manifest.json").read_text())
        assert manifest["status"] == "complete"
        assert manifest["config"]["backend"]["api_key_env"] == "TIPLAB_TEST_KEY"
        leaked = [p for p in run.rglob("*") if p.is_file() and SECRET.encode() in p.read_bytes()]
        assert leaked == []


def test_score_mode_is_refused_in_one_line(server, organism_path, tmp_path):
    url, _ = server
    args = openai_args(url, organism_path, "decide.mode=score")
    out = sim_run(*SA, *args, *QUIET, f"hydra.run.dir={tmp_path / 'run'}")
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [
        f"error: decide.mode=score: {url} gives no prompt log-probabilities (`vllm serve` "
        "does); only decide.mode=generate is available with this server"
    ]
    assert not list((tmp_path / "run").glob("decisions.parquet/part-*"))


def backend_config(url: str, model_dir: Path, **settings) -> dict:
    """conf/backend/openai.yaml pointed at the test server, with `settings` changed."""
    cfg = yaml.safe_load((ROOT / "conf" / "backend" / "openai.yaml").read_text())
    cfg["generate"]["max_new_tokens"] = 32
    return {**cfg, "base_url": url, "model": str(model_dir), **settings}


def test_adapters_need_a_server_that_loads_them(server, organism_path, tmp_path):
    url, _ = server
    cfg = backend_config(url, organism_path, max_retries=0)
    backend = make_backend(cfg, np.random.default_rng(0))
    adapter = tmp_path / "agent0-v1"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text("{}")
    with pytest.raises(InputError, match="cannot load LoRA adapters at runtime"):
        backend.load_adapters({"agent0-v1": adapter})
    backend.close()
    with pytest.raises(InputError, match="TIPLAB_UNSET_KEY is not set"):
        make_backend({**cfg, "api_key_env": "TIPLAB_UNSET_KEY"}, np.random.default_rng(0))


def run_until_first_round(args: list[str], run: Path) -> subprocess.Popen:
    """A run started in the background and paused (SIGSTOP) once its round 0 is on disk."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "sim.run", *args, *QUIET, f"hydra.run.dir={run}"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    first = run / "decisions.parquet" / "part-00000.parquet"
    deadline = time.time() + 120
    while not first.exists():
        assert proc.poll() is None and time.time() < deadline, proc.communicate()
        time.sleep(0.005)
    proc.send_signal(signal.SIGSTOP)
    return proc


def assert_failed_with_rounds_on_disk(proc: subprocess.Popen, run: Path, message: str) -> None:
    proc.send_signal(signal.SIGCONT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 2
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("error: backend.openai: http://127.0.0.1:") and message in last
    rounds = pl.read_parquet(run / "rounds.parquet")["round"].to_list()
    assert rounds and rounds == list(range(len(rounds))) and len(rounds) < 6
    d = pl.read_parquet(run / "decisions.parquet")
    assert sorted(d["round"].unique().to_list()) == rounds
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["status"] == "failed" and message in manifest["error"]


def test_a_server_killed_mid_run_ends_the_run_with_one_line(organism_path, tmp_path):
    with transformers_serve(organism_path, tmp_path / "serve.log") as (url, server):
        args = [*MA, "run.rounds=6", *openai_args(url, organism_path)]
        proc = run_until_first_round([*args, "backend.max_retries=1"], tmp_path / "run")
        server.kill()
        server.wait()
        assert_failed_with_rounds_on_disk(proc, tmp_path / "run", "cannot be reached after 1 retry")


def test_a_server_that_stops_answering_times_out(server, organism_path, tmp_path):
    url, server_proc = server
    args = [*MA, "run.rounds=6", *openai_args(url, organism_path)]
    args += ["backend.max_retries=1", "backend.timeout_s=3", "backend.concurrency=1"]
    proc = run_until_first_round(args, tmp_path / "run")
    server_proc.send_signal(signal.SIGSTOP)
    try:
        assert_failed_with_rounds_on_disk(proc, tmp_path / "run", "did not answer within 3 s")
    finally:
        server_proc.send_signal(signal.SIGCONT)


def test_a_server_failing_every_request_is_retried_then_reported(organism_path, tmp_path):
    """A chat template that always raises: the server answers 500 (or, racing, drops the
    connection after logging the 500); either way the client retries once, then one line."""
    broken = tmp_path / "broken"
    shutil.copytree(organism_path, broken)
    config = json.loads((broken / "tokenizer_config.json").read_text())
    config["chat_template"] = "{{ raise_exception('this template always fails') }}"
    (broken / "tokenizer_config.json").write_text(json.dumps(config))
    (broken / "chat_template.jinja").unlink(missing_ok=True)
    log = tmp_path / "serve.log"
    with transformers_serve(broken, log) as (url, _):
        backend = make_backend(
            backend_config(url, broken, concurrency=1, max_retries=1), np.random.default_rng(0)
        )
        with pytest.raises(ServedModelError) as failed:
            backend.decide(round_zero_requests()[:1], "generate")
        backend.close()
    message = str(failed.value)
    assert message.startswith(f"backend.openai: {url} ") and "\n" not in message
    assert any(
        m in message for m in ("answered 500 after 1 retry", "cannot be reached after 1 retry")
    )
    assert log.read_text().count('"POST /v1/chat/completions HTTP/1.1" 500') == 2
