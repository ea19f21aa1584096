"""From a resolved config to a run: `build_run` wires environment, policy, graph,
recorder, learners and model, the one way every entry point, test and benchmark does.

Every check of a user-supplied value happens here, before anything is written, and
fails with an InputError naming the config field.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path

import networkx as nx
import numpy as np
from omegaconf import OmegaConf

from agents.backends import Backend, make_backend
from agents.backends.base import MODES
from agents.guard import check_guard, make_guard
from agents.prompts import PEER_VIEWS
from envs import InputError, RolePlayEnv, ThresholdGameEnv, generator
from envs.atp import load_ma_games, load_sa_questions
from envs.base import Environment
from envs.catalog import roleplay_items, threshold_games
from envs.errors import boolean, feasible, integer, listed, number
from envs.records import DECISIONS, RUN_CONDITIONS
from envs.supervision import SupervisionSchedule
from sim.corrector import served
from sim.graph import initial_deviants, population_graph
from sim.model import TippingModel
from sim.recorder import Recorder

SOURCES = ("templates", "atp", "generator")
CONF = Path(__file__).resolve().parent.parent / "conf"


def build_run(
    cfg: Mapping, run_dir: Path, backend: Backend | None = None, run_id: str | None = None
) -> TippingModel:
    """The run cfg describes, recording into run_dir, as a model ready to step (a resolved
    config, as sim.run and `compose` give it); `backend`: a policy of your own instead of
    cfg.backend's; `run_id`: a resumed run's own. Building writes nothing to disk."""
    return TippingModel(**model_arguments(cfg, run_dir, backend, run_id))


def model_arguments(
    cfg: Mapping, run_dir: Path, backend: Backend | None = None, run_id: str | None = None
) -> dict:
    """TippingModel's arguments for cfg: what `build_run` builds a model from (and a
    subclass of the model, such as the live view's, its own)."""
    check_run(cfg)
    rng = seeds(cfg["seed"])
    env = build_environment(cfg["env"], cfg["run"]["rounds"], rng["env"])
    graph, deviants = population(cfg, env, rng)
    if evolving(cfg):  # the training stack is imported only when weights evolve
        from agents.evolution import check_settings, make_evolution

        check_settings(cfg["evolution"])  # named before the model loads
    backend = backend or make_backend(cfg["backend"], rng["policy"])
    evolution = (
        make_evolution(cfg["evolution"], backend, env, graph, run_dir, cfg["seed"])
        if evolving(cfg)
        else None
    )
    probes = reference_probes(cfg, backend, evolution)
    learners = [x for x in (evolution, probes) if x is not None]
    return {
        "env": env,
        "backend": backend,
        "graph": graph,
        "recorder": Recorder(
            run_dir, run_id or run_id_of(run_dir), record_prompts=cfg["run"]["record_prompts"]
        ),
        "seed": cfg["seed"],
        "mode": cfg["decide"]["mode"],
        "memory_window": cfg["agents"]["memory_window"],
        "peer_view": cfg["agents"]["peer_view"],
        "aggregate_above": cfg["agents"]["aggregate_above"],
        "deviants": deviants,
        "deviants_always": cfg["deviants"]["always"],
        "learners": learners,
        "guard": make_guard(served(cfg.get("guard"), cfg["run"]["progress"]), rng["guard"]),
    }


def reference_probes(cfg: Mapping, backend: Backend, evolution=None):
    """The learner recording the policy's distances to its pre-trained base and aligned
    start (agents/reference.py), for backends with weights here; None for the others or
    with reference.probes=0."""
    reference = cfg.get("reference") or {}
    scorer = backend.trainable()
    if scorer is None or not reference.get("probes", 16):
        return None
    from agents.alignment.data import opening_prompts
    from agents.decision import DecisionRequest
    from agents.reference import ReferenceProbes, base_checkpoint

    env = build_environment(cfg["env"], cfg["run"]["rounds"], seeds(cfg["seed"])["env"])
    prompts = opening_prompts(env)  # a copy of the run's environment: its state is untouched
    n = reference.get("probes", 16)
    chosen = prompts[:: max(1, len(prompts) // n)][:n]
    requests = [DecisionRequest(i, None, p.messages, p.choices) for i, p in enumerate(chosen)]
    base = base_checkpoint(reference, cfg["backend"])
    return ReferenceProbes(scorer, requests, base, policy_checkpoint(cfg["backend"]), evolution)


def policy_checkpoint(backend: Mapping) -> Path | None:
    """The checkpoint directory the policy serves (the organism's, or the one backend=hf or
    backend=vllm names)."""
    if backend["name"] == "organism":
        from agents.backends.organism import organism_path

        return organism_path(backend)
    from agents.reference import checkpoint_path

    return checkpoint_path(backend)


def check_reference(cfg: Mapping) -> None:
    """reference.probes and reference.base, checked before any model loads."""
    integer(cfg.get("probes", 16), "reference.probes", minimum=0)
    base = cfg.get("base", "auto")
    if base not in (None, "auto") and not (Path(str(base)).expanduser() / "config.json").is_file():
        raise InputError(
            f"reference.base: {base} is not a Hugging Face model directory (no config.json); "
            "expected auto, null or the path of the policy's pre-trained base"
        )


def evolving(cfg: Mapping) -> bool:
    """Whether weights evolve (LoRA updates): an objective and an update interval."""
    return bool(cfg["evolution"].get("every")) and cfg["evolution"].get("name", "none") != "none"


def compose(overrides: Sequence[str] = (), values: Mapping | None = None) -> dict:
    """The resolved config `python -m sim.run OVERRIDES` would play, with `values` merged
    over it: how code (tests, benchmarks, notebooks) describes a run for `build_run`.
    Inside a running Hydra app (sim.run playing the corrector's data rounds) the app's
    Hydra state is set aside for the composition and put back after it."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.initialize import get_gh_backup, restore_gh_from_backup

    running = get_gh_backup()
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
            cfg = hydra_compose("config", overrides=list(overrides))
    finally:
        restore_gh_from_backup(running)
    OmegaConf.set_struct(cfg, False)
    return OmegaConf.to_container(OmegaConf.merge(cfg, values or {}), resolve=True)


def run_id_of(run_dir: Path) -> str:
    """The directory's name and a short hash of its absolute path (unique across sweeps)."""
    path = str(Path(run_dir).resolve())
    return f"{Path(run_dir).name}-{uuid.uuid5(uuid.NAMESPACE_URL, path).hex[:8]}"


def check_run(cfg: Mapping) -> None:
    """The run-level settings a user can get wrong."""
    integer(cfg["run"]["rounds"], "run.rounds", maximum=2**31 - 1)  # Int32 in the records
    integer(cfg["agents"]["memory_window"], "agents.memory_window", minimum=0, maximum=2**31 - 1)
    integer(cfg["agents"]["aggregate_above"], "agents.aggregate_above", minimum=0)
    view = cfg["agents"]["peer_view"]
    if view not in PEER_VIEWS:
        raise InputError(f"agents.peer_view: {view!r}; expected one of {', '.join(PEER_VIEWS)}")
    # numpy's seed sequences take no negative seeds; the records store it as a 64-bit integer
    integer(cfg["seed"], "seed", minimum=0, maximum=2**63 - 1)
    if view != "none" and cfg["agents"]["memory_window"] == 0:
        raise InputError(
            f"agents.peer_view: {view!r} is shown in the remembered rounds, but "
            "agents.memory_window=0 remembers none; set agents.peer_view=none or a window >= 1"
        )
    integer(cfg["run"]["checkpoint_every"], "run.checkpoint_every", minimum=0)
    if cfg["decide"]["mode"] not in MODES:
        raise InputError(
            f"decide.mode: {cfg['decide']['mode']!r}; expected one of {', '.join(MODES)}"
        )
    for key in ("progress", "report", "record_prompts"):
        boolean(cfg["run"][key], f"run.{key}")
    boolean(cfg["deviants"]["always"], "deviants.always")
    by = cfg["report"]["by"]
    columns = [*(c for c in DECISIONS if c not in ("text", "prompt")), *RUN_CONDITIONS]
    if not isinstance(by, list) or any(c not in columns for c in by):
        raise InputError(
            f"report.by: {by!r}; expected a list of decision columns, e.g. [threshold] "
            f"(any of {', '.join(columns)})"
        )
    check_guard(cfg.get("guard"))
    check_reference(cfg.get("reference") or {})
    if cfg.get("elasticity"):
        from sim.elasticity import check_settings

        check_settings(cfg)


def check_config(cfg: Mapping) -> None:
    """Every check of a composed config: run settings, environment, graph, deviants,
    evolution's settings."""
    check_run(cfg)
    rng = seeds(cfg["seed"])
    env = build_environment(cfg["env"], cfg["run"]["rounds"], rng["env"])
    population(cfg, env, rng)
    if evolving(cfg):
        from agents.evolution import check_settings

        check_settings(cfg["evolution"])


def seeds(seed: int) -> dict[str, np.random.Generator]:
    """Independent RNG streams per component, all derived from the run seed.

    Spawned children depend only on their index, so adding a stream at the end leaves
    the earlier streams (and the records of earlier versions) unchanged.
    """
    streams = np.random.SeedSequence(seed).spawn(5)
    names = ("env", "policy", "graph", "deviants", "guard")
    return {name: np.random.default_rng(s) for name, s in zip(names, streams, strict=True)}


def population(
    cfg: Mapping, env: Environment, rng: Mapping[str, np.random.Generator]
) -> tuple[nx.Graph, list[int]]:
    """The population graph over env's agents and the agents planted as deviants."""
    graph = population_graph(cfg["graph"], env.group, rng["graph"])
    return graph, initial_deviants(cfg["deviants"], graph, env.n_agents, rng["deviants"])


def build_environment(cfg: Mapping, n_rounds: int, rng: np.random.Generator) -> Environment:
    kind, source = cfg.get("kind"), cfg.get("source", "templates")
    if source not in SOURCES:
        raise InputError(f"env.source: {source!r}; expected one of {', '.join(SOURCES)}")
    if source == "atp" and not cfg.get("atp_file"):
        raise InputError("env.atp_file: required when env.source=atp (path to an ATP JSON file)")
    if source == "generator":
        generated = cfg.get("generator") or {}
        count = integer(generated.get("scenarios", 16), "env.generator.scenarios")
        split = generated.get("split", "all")
        drawn = int(rng.integers(2**31))  # a scenario set per run seed
    if kind == "roleplay":
        if source == "generator":
            payoffs = listed(cfg["payoffs"], "env.payoffs")
            items = generator.roleplay_scenarios(count, drawn, split, payoffs)
        elif source == "atp":
            items = load_sa_questions(cfg["atp_file"])
        else:
            items = roleplay_items(cfg["professions"], listed(cfg["payoffs"], "env.payoffs"))
        replicates = integer(cfg.get("replicates", 1), "env.replicates")
        feasible(replicates * len(items), "env.replicates")
        schedule = SupervisionSchedule(
            cfg["schedule"], n_rounds, cfg.get("p_supervised", 0.5), cfg.get("p_neutral", 0.0)
        )
        return RolePlayEnv(
            items,
            schedule,
            seed=int(rng.integers(2**63)),
            replicates=replicates,
            neutral_counts_as=cfg.get("neutral_counts_as", "supervised"),
            invalid_reward=number(cfg.get("invalid_reward", 0.0), "env.invalid_reward", -math.inf),
        )
    if kind == "threshold":
        size = integer(cfg["group_size"], "env.group_size", minimum=2)
        feasible(size, "env.group_size")
        thresholds = [
            integer(k, "env.thresholds") for k in listed(cfg["thresholds"], "env.thresholds")
        ]
        reward_sets = listed(cfg["rewards"], "env.rewards")
        if source == "generator":
            games = generator.threshold_games(
                count, drawn, split, size, thresholds, reward_sets, cfg["payoff_mode"]
            )
        elif source == "atp":
            games = load_ma_games(
                cfg["atp_file"],
                size,
                thresholds,
                reward_sets,
                cfg["payoff_mode"],
                cfg.get("violation", "collective"),
            )
        else:
            games = threshold_games(cfg["games"], size, thresholds, reward_sets)
        feasible(size * len(games), "env.group_size")
        return ThresholdGameEnv(
            games,
            payoff_mode=cfg["payoff_mode"],
            success_pays=cfg.get("success_pays", "everyone"),
            start_capital=number(cfg.get("start_capital", 1.0), "env.start_capital", -math.inf),
            scope=cfg.get("scope", "global"),
        )
    raise InputError(f"env.kind: {kind!r}; expected roleplay or threshold")
