"""From a resolved config to a run: `build_run` wires environment, policy, graph,
recorder, learners and model, the one way every entry point, test and benchmark does.

The settings are checked by sim/config.py's `checked`, which gives their typed view; what
they build (the environment's items, the graph, the deviants) is checked as it is built,
all before anything is written, each failure an InputError naming the config field.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path

import networkx as nx
import numpy as np
from omegaconf import OmegaConf

from agents.backends import Backend, make_backend
from agents.backends.settings import backend_config
from agents.guard import make_guard
from envs import RolePlayEnv, ThresholdGameEnv, generator
from envs.atp import load_ma_games, load_sa_questions
from envs.base import Environment
from envs.catalog import roleplay_items, threshold_games
from envs.errors import feasible
from envs.supervision import SupervisionSchedule
from sim.config import Config, EnvConfig, RolePlayConfig, checked
from sim.corrector import served
from sim.graph import initial_deviants, population_graph
from sim.model import TippingModel
from sim.recorder import Recorder

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
    config = checked(cfg)
    rng = seeds(config.seed)
    env = build_environment(config.env, config.run.rounds, rng["env"])
    graph, deviants = population(config, env, rng)
    backend = backend or make_backend(cfg["backend"], rng["policy"])
    evolution = None
    if config.evolution.evolving:  # the training stack is imported only when weights evolve
        from agents.evolution.evolution import make_evolution

        evolution = make_evolution(config.evolution, backend, env, graph, run_dir, config.seed)
    probes = reference_probes(config, cfg["backend"], backend, evolution)
    learners = [x for x in (evolution, probes) if x is not None]
    return {
        "env": env,
        "backend": backend,
        "graph": graph,
        "recorder": Recorder(
            run_dir, run_id or run_id_of(run_dir), record_prompts=config.run.record_prompts
        ),
        "seed": config.seed,
        "mode": config.decide.mode,
        "memory_window": config.agents.memory_window,
        "peer_view": config.agents.peer_view,
        "aggregate_above": config.agents.aggregate_above,
        "deviants": deviants,
        "deviants_always": config.deviants.always,
        "learners": learners,
        "guard": make_guard(served(config.guard, config.run.progress), rng["guard"]),
    }


def reference_probes(config: Config, backend_cfg: Mapping, backend: Backend, evolution=None):
    """The learner recording the policy's distances to its pre-trained base and aligned
    start (agents/reference.py), for backends with weights here; None for the others or
    with reference.probes=0."""
    scorer = backend.trainable()
    n = config.reference.probes
    if scorer is None or not n:
        return None
    from agents.alignment.data import opening_prompts
    from agents.decision import DecisionRequest
    from agents.reference import ReferenceProbes, base_checkpoint

    env = build_environment(config.env, config.run.rounds, seeds(config.seed)["env"])
    prompts = opening_prompts(env)  # a copy of the run's environment: its state is untouched
    chosen = prompts[:: max(1, len(prompts) // n)][:n]
    requests = [DecisionRequest(i, None, p.messages, p.choices) for i, p in enumerate(chosen)]
    base = base_checkpoint(config.reference.base, backend_cfg)
    return ReferenceProbes(scorer, requests, base, policy_checkpoint(backend_cfg), evolution)


def policy_checkpoint(backend: Mapping) -> Path | None:
    """The checkpoint directory the policy serves (the organism's, or the one backend=hf or
    backend=vllm names)."""
    if backend["name"] == "organism":
        from agents.backends.organism import organism_path

        return organism_path(backend_config(backend))
    from agents.reference import checkpoint_path

    return checkpoint_path(backend)


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


def check_config(cfg: Mapping) -> None:
    """Every check of a composed config: its settings (sim/config.py), then what they
    build: environment, graph, deviants."""
    config = checked(cfg)
    rng = seeds(config.seed)
    env = build_environment(config.env, config.run.rounds, rng["env"])
    population(config, env, rng)


def seeds(seed: int) -> dict[str, np.random.Generator]:
    """Independent RNG streams per component, all derived from the run seed.

    Spawned children depend only on their index, so adding a stream at the end leaves
    the earlier streams (and the records of earlier versions) unchanged.
    """
    streams = np.random.SeedSequence(seed).spawn(5)
    names = ("env", "policy", "graph", "deviants", "guard")
    return {name: np.random.default_rng(s) for name, s in zip(names, streams, strict=True)}


def population(
    config: Config, env: Environment, rng: Mapping[str, np.random.Generator]
) -> tuple[nx.Graph, list[int]]:
    """The population graph over env's agents and the agents planted as deviants."""
    graph = population_graph(config.graph, env.group, rng["graph"])
    return graph, initial_deviants(config.deviants, graph, env.n_agents, rng["deviants"])


def build_environment(cfg: EnvConfig, n_rounds: int, rng: np.random.Generator) -> Environment:
    """The environment cfg describes (its values checked by sim/config.py), drawing its
    scenario set and seed from rng."""
    if cfg.source == "generator":
        drawn = int(rng.integers(2**31))  # a scenario set per run seed
    if isinstance(cfg, RolePlayConfig):
        if cfg.source == "generator":
            items = generator.roleplay_scenarios(
                cfg.generator.scenarios, drawn, cfg.generator.split, cfg.payoffs
            )
        elif cfg.source == "atp":
            items = load_sa_questions(cfg.atp_file)
        else:
            items = roleplay_items(cfg.professions, cfg.payoffs)
        feasible(cfg.replicates * len(items), "env.replicates")
        schedule = SupervisionSchedule(cfg.schedule, n_rounds, cfg.p_supervised, cfg.p_neutral)
        return RolePlayEnv(
            items,
            schedule,
            seed=int(rng.integers(2**63)),
            replicates=cfg.replicates,
            neutral_counts_as=cfg.neutral_counts_as,
            invalid_reward=cfg.invalid_reward,
        )
    feasible(cfg.group_size, "env.group_size")
    if cfg.source == "generator":
        games = generator.threshold_games(
            cfg.generator.scenarios,
            drawn,
            cfg.generator.split,
            cfg.group_size,
            cfg.thresholds,
            cfg.rewards,
            cfg.payoff_mode,
        )
    elif cfg.source == "atp":
        games = load_ma_games(
            cfg.atp_file,
            cfg.group_size,
            cfg.thresholds,
            cfg.rewards,
            cfg.payoff_mode,
            cfg.violation,
        )
    else:
        games = threshold_games(cfg.games, cfg.group_size, cfg.thresholds, cfg.rewards)
    feasible(cfg.group_size * len(games), "env.group_size")
    return ThresholdGameEnv(
        games,
        payoff_mode=cfg.payoff_mode,
        success_pays=cfg.success_pays,
        start_capital=cfg.start_capital,
        scope=cfg.scope,
    )
