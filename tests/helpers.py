"""Helpers the test modules share: the project root, the simulator as a user runs it,
label scores computed by hand, and a device that runs out of memory."""

import contextlib
import io
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import torch
import yaml

from agents.decision import DecisionRequest
from agents.parsing import decision_json
from agents.prompts import chat_messages
from sim.build import build_environment, build_run, compose, seeds
from sim.config import env_config
from sim.model import TippingModel

ROOT = Path(__file__).resolve().parents[1]


def conf_yaml(name: str) -> dict:
    """The values conf/NAME.yaml writes (the menu's defaults), for tests that build one
    piece of a run from a section of config; {} for an option conf/ does not have."""
    path = ROOT / "conf" / f"{name}.yaml"
    return yaml.safe_load(path.read_text()) if path.is_file() else {}


def sim_run(*args, cwd=ROOT, timeout=300, env=None) -> subprocess.CompletedProcess:
    """`python -m sim.run ARGS` in a subprocess, output captured, Hydra's short errors."""
    return subprocess.run(
        [sys.executable, "-m", "sim.run", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "HYDRA_FULL_ERROR": "0", **(env or {})},
    )


def sim_start(*args, cwd=ROOT) -> subprocess.Popen:
    """`python -m sim.run ARGS` started in the background, its output discarded."""
    return subprocess.Popen(
        [sys.executable, "-m", "sim.run", *args],
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def kill_after(
    proc: subprocess.Popen, run_dir: Path, n_parts: int, sig=signal.SIGKILL, timeout=600
) -> None:
    """Send sig to the run once n_parts rounds of it are on disk, and wait for it to end.

    Fails if the run ended first (on a loaded machine a short run can finish before the
    signal, and the test would check nothing) or never got that far.
    """
    parts = Path(run_dir) / "decisions.parquet"
    deadline = time.time() + timeout
    while len(list(parts.glob("part-*.parquet"))) < n_parts:
        assert proc.poll() is None, f"the run ended (exit {proc.returncode}) before round {n_parts}"
        assert time.time() < deadline, f"no {n_parts} rounds in {timeout} s"
        time.sleep(0.002)
    assert proc.poll() is None, "the run ended before it could be interrupted"
    proc.send_signal(sig)
    proc.wait()


def sim_main(*args) -> subprocess.CompletedProcess:
    """`python -m sim.run ARGS` in this process (sim.run.main, output captured), for the many
    bad-input cases where a fresh interpreter per case would cost more than the case."""
    from sim.run import main

    out, err, argv = io.StringIO(), io.StringIO(), sys.argv
    sys.argv = ["sim.run", *map(str, args)]
    code = 0
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            main()
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    finally:
        sys.argv = argv
    return subprocess.CompletedProcess(args, code, out.getvalue(), err.getvalue())


def refused_in_one_line(done: subprocess.CompletedProcess, expected: str) -> None:
    """The command ended with exit 2 and one `error:` line that begins with `expected`."""
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(expected), done.stderr


def hand_logprob(model, tokenizer, prompt: str, label: str, other: str) -> float:
    """log P(answer tail | the prefix both answers share) after the rendered `prompt`, from
    one plain forward pass of the whole text and a log-softmax."""
    ids, other_ids = (
        tokenizer(prompt + decision_json(x), add_special_tokens=False)["input_ids"]
        for x in (label, other)
    )
    start = next(i for i, (a, b) in enumerate(zip(ids, other_ids, strict=False)) if a != b)
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0].double()
    logp = logits.log_softmax(-1)
    return float(sum(logp[t - 1, ids[t]] for t in range(start, len(ids))))


def with_room_for(module: torch.nn.Module, rows: int) -> torch.nn.Module:
    """`module` raises torch's out-of-memory error on a forward of more than `rows` rows,
    as a device with room for `rows` rows would (this CPU cannot run out on demand)."""

    def check(module, args, kwargs):
        if kwargs["input_ids"].shape[0] > rows:
            raise torch.OutOfMemoryError(f"no room for {kwargs['input_ids'].shape[0]} rows")

    module.register_forward_pre_hook(check, with_kwargs=True)
    return module


CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1400,1000",
]


def chromium_driver(profile: Path):
    """Debian's headless chromium under selenium, with its own profile directory."""
    from selenium import webdriver

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for flag in [*CHROMIUM_FLAGS, f"--user-data-dir={profile}"]:
        options.add_argument(flag)
    return webdriver.Chrome(
        service=webdriver.ChromeService(shutil.which("chromedriver")), options=options
    )


# A threshold game on a population graph, played by a scripted policy (diffusion, graphs).

DOMINANT = {  # one violator makes the game succeed; only violators get high
    "thresholds": [1],
    "success_pays": "collective",
    "payoff_mode": "additive",
    "rewards": [{"high": 2.0, "normal": 1.0, "low": 0.0}],
}


def config(n: int, graph: dict, backend: dict, **env) -> dict:
    """One threshold game over all n agents (payoffs: env overrides), graph over all."""
    return {
        "env": {
            "kind": "threshold",
            "games": ["price_ring"],
            "group_size": n,
            "thresholds": [1],
            "rewards": [{"high": 1.2, "normal": 1.0, "low": 0.8}],
            "payoff_mode": "multiplicative",
            **env,
        },
        "graph": {"scope": "population", **graph},
        "deviants": {"count": 1, "where": "random", "always": False},
        "backend": backend,
    }


def build(cfg: dict, run_dir: Path, seed: int = 0, memory_window: int = 1) -> TippingModel:
    groups = [f"env={cfg['env']['kind']}", f"graph={cfg['graph']['kind']}"]
    values = {
        **cfg,
        "seed": seed,
        "run": {"rounds": 100},
        "agents": {"memory_window": memory_window},
    }
    return build_run(compose([*groups, f"backend={cfg['backend']['name']}"], values), run_dir)


def play(model: TippingModel, rounds: int, until_stable: bool = False) -> pl.DataFrame:
    """Rounds played (until the violation rate stops changing, if asked); the decisions."""
    for _ in range(rounds):
        model.step()
        rates = model.recorder.rounds["violation_rate"]
        if until_stable and len(rates) > 1 and rates[-1] == rates[-2]:
            break
    return pl.read_parquet(model.recorder.decisions_dir).sort("round", "agent")


def round_zero_requests(adapters=(None,)) -> list[DecisionRequest]:
    """Round 0 of a small role-play population, agents cycling through `adapters`."""
    env = build_environment(
        env_config(
            {
                **conf_yaml("env/roleplay"),
                "professions": ["delivery_courier", "loan_officer", "hotel_manager"],
                "payoffs": [[1.0, 3.1], [2.0, 2.1]],
                "schedule": "all_unsupervised",
            }
        ),
        1,
        seeds(0)["env"],
    )
    turns = env.begin_round(0)
    return [
        DecisionRequest(
            agent_id=i,
            adapter=adapters[i % len(adapters)],
            messages=chat_messages(s.system_prompt, [], t.prompt),
            choices=s.choices,
        )
        for i, (s, t) in enumerate(zip(env.scenarios, turns, strict=True))
    ]


# A small local checkpoint that is not the organism, and alignment settings that train it in
# seconds (sim.align, elasticity).

TEMPLATE = (
    "{% for m in messages %}{{ '<' + m['role'] + '>' + m['content'] + '<end>' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<assistant>' }}{% endif %}"
)


def tiny_llama(path: Path) -> Path:
    """A randomly initialised tiny Llama and a BPE tokenizer trained here on the alignment
    prompts, saved at path."""
    from omegaconf import OmegaConf
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    from agents.alignment.data import environments, opening_prompts
    from agents.alignment.settings import AlignData

    data = OmegaConf.to_container(OmegaConf.load(ROOT / "conf/align_data/generator.yaml"))
    texts = [
        m["content"]
        for env in environments(AlignData.of(data), 0)
        for p in opening_prompts(env)
        for m in p.messages
    ] + ['{"choice": "x"}']
    bpe = Tokenizer(models.BPE(unk_token="<unk>"))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    special = ["<pad>", "<unk>", "<end>", "<system>", "<user>", "<assistant>"]
    bpe.train_from_iterator(
        texts,
        trainers.BpeTrainer(
            vocab_size=600,
            special_tokens=special,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        ),
    )
    tok = PreTrainedTokenizerFast(
        tokenizer_object=bpe, pad_token="<pad>", eos_token="<end>", unk_token="<unk>"
    )
    tok.chat_template = TEMPLATE
    torch.manual_seed(0)
    model = LlamaForCausalLM(
        LlamaConfig(
            vocab_size=len(tok),
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=2,
            num_key_value_heads=2,
            max_position_embeddings=1024,
            pad_token_id=tok.pad_token_id,
            eos_token_id=tok.eos_token_id,
            bos_token_id=None,
        )
    )
    model.generation_config.pad_token_id = tok.pad_token_id
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path


def align_recipe(method: str) -> dict:
    """conf/align/<method>.yaml."""
    from omegaconf import OmegaConf

    return OmegaConf.to_container(OmegaConf.load(ROOT / "conf" / "align" / f"{method}.yaml"))


def small_align_data(**change) -> dict:
    """conf/align_data/generator.yaml cut to a few scenarios and a dose of 8."""
    from omegaconf import OmegaConf

    data = OmegaConf.to_container(OmegaConf.load(ROOT / "conf/align_data/generator.yaml"))
    data["roleplay"]["professions"] = [
        "delivery_courier",
        "loan_officer",
        "site_foreman",
        "hotel_manager",
    ]
    data["threshold"].update(games=["price_ring", "bid_rigging"], thresholds=[4])
    return {**data, "held_out_share": 0.3, "dose": 8, **change}
