"""The Hydra entry point: `python -m sim.run [overrides]` plays one experiment and records it.

User mistakes (unknown config keys, bad values, bad data files) end with one line on
stderr and exit code 2; a run directory is either complete, marked failed, or removed.
A run directory that already holds a run is continued from its last checkpoint, or
skipped if complete; `resume=PATH` re-runs a run (or a sweep) in its own directory.
"""

from __future__ import annotations

import os
import shutil
import sys
import uuid
from pathlib import Path

import hydra
import polars as pl
import yaml
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

from agents.backends import make_backend
from envs.errors import InputError
from sim import checkpoint
from sim.build import build_environment, check_run, population, seeds
from sim.manifest import Manifest, now
from sim.model import TippingModel
from sim.overrides import check_overrides
from sim.recorder import Recorder

CONF = str(Path(__file__).resolve().parent.parent / "conf")
# Settings that change how a run is shown, not what it records.
PRESENTATION = ("progress", "report")


def outcome_config(cfg: dict) -> dict:
    run = {k: v for k, v in cfg["run"].items() if k not in PRESENTATION}
    return {**{k: v for k, v in cfg.items() if k not in ("resume", "report")}, "run": run}


def previous_run(run_dir: Path, cfg: dict) -> Manifest | None:
    """The manifest of a run already in run_dir, if it is the same experiment."""
    if not (run_dir / "manifest.json").exists():
        return None
    manifest = Manifest.read(run_dir)
    if outcome_config(manifest.data["config"]) != outcome_config(cfg):
        raise InputError(
            f"{run_dir}: holds a run with a different config; choose another hydra.run.dir"
        )
    return manifest


def quiet_library_bars() -> None:
    """run.progress=false: no progress bars from the Hugging Face libraries, nor from the
    organism's build, which follows their switch."""
    os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"  # transformers reads it on import
    if "transformers" in sys.modules:
        sys.modules["transformers"].utils.logging.disable_progress_bar()


def run_experiment(cfg: dict, run_dir: Path, overrides: list[str] = ()) -> pl.DataFrame:
    """Play cfg's experiment into run_dir (continuing a run left there); returns the rounds."""
    check_run(cfg)
    rounds, seed = cfg["run"]["rounds"], cfg["seed"]
    previous = previous_run(run_dir, cfg)
    if previous is not None and previous.data["status"] == "complete":
        print(f"already complete, nothing to do: {run_dir}", file=sys.stderr)
        return pl.read_parquet(run_dir / "rounds.parquet")
    if not cfg["run"]["progress"]:
        quiet_library_bars()
    rng = seeds(seed)
    env = build_environment(cfg["env"], rounds, rng["env"])
    graph, deviants = population(cfg, env, rng)
    backend = make_backend(cfg["backend"], rng["policy"])
    run_dir.mkdir(parents=True, exist_ok=True)
    state = checkpoint.load(run_dir) if previous is not None else None
    checkpoint.rewind_records(run_dir, state["round"] if state else 0)
    run_id = f"{run_dir.name}-{uuid.uuid5(uuid.NAMESPACE_URL, str(run_dir.resolve())).hex[:8]}"
    if state is None:
        manifest = Manifest.start(run_dir, run_id, seed, rounds, cfg, list(overrides))
    else:
        manifest = previous
        manifest.update(status="running", rounds_completed=state["round"])
    recorder = Recorder(run_dir, run_id, record_prompts=cfg["run"]["record_prompts"])
    model = TippingModel(
        env,
        backend,
        graph,
        recorder,
        seed=seed,
        mode=cfg["decide"]["mode"],
        memory_window=cfg["agents"]["memory_window"],
        peer_view=cfg["agents"]["peer_view"],
        aggregate_above=cfg["agents"]["aggregate_above"],
        deviants=deviants,
        deviants_always=cfg["deviants"]["always"],
    )
    evolution = None
    if cfg["evolution"].get("every"):  # training stack imported only when weights evolve
        from agents.evolution import make_evolution

        evolution = make_evolution(cfg["evolution"], backend, env.group, graph, run_dir, seed)
    if state is not None:
        checkpoint.load_model_state(model, state)
        if evolution is not None:
            evolution.load_state_dict(state["evolution"])
    try:
        bar = tqdm(
            range(model.round, rounds),
            desc="rounds",
            unit="round",
            initial=model.round,
            total=rounds,
            disable=not cfg["run"]["progress"],
        )
        for t in bar:
            model.step()
            if evolution is not None:
                evolve(evolution, model, recorder, t)
            every = cfg["run"]["checkpoint_every"]
            if every and ((t + 1) % every == 0 or t + 1 == rounds):
                checkpoint.save(model, run_dir, evolution)
            manifest.update(rounds_completed=t + 1)
            bar.set_postfix(violation=f"{recorder.rounds['violation_rate'][-1] or 0:.2f}")
    except BaseException:
        manifest.update(status="failed")
        raise
    finally:
        backend.close()
    manifest.update(status="complete", finished=now())
    return recorder.rounds


def evolve(evolution, model: TippingModel, recorder: Recorder, t: int) -> None:
    """Feed the round to evolution; on its schedule, train and hand out new adapters.

    Planted deviants' forced violations are not experience: they are left out.
    """
    requests, decisions, outcomes = model.last_round
    own = [i for i, r in enumerate(requests) if not model.planted(r.agent_id, t)]
    evolution.observe(
        t,
        [requests[i] for i in own],
        [decisions[i] for i in own],
        [outcomes[i] for i in own],
        [s.id for s in model.env.scenarios],
    )
    if not evolution.due(t):
        return
    assigned, rows = evolution.update(t)
    for agent in model.population:
        agent.adapter = assigned.get(evolution.owner_of[agent.index], agent.adapter)
    if rows:
        recorder.write_updates(rows)


def print_summary(rounds: pl.DataFrame, run_dir: Path) -> None:
    table = rounds.select(
        "round", "n_agents", "n_valid", "violation_rate", "mean_p_violate", "mean_reward"
    )
    with pl.Config(tbl_rows=-1, tbl_hide_dataframe_shape=True, float_precision=3):
        print(table)
    print(f"records: {run_dir}")


def fail(message: str, run_dir: Path | None) -> None:
    """One line, exit 2; a run directory with no recorded round is removed."""
    if run_dir is not None and not any((run_dir / "decisions.parquet").glob("part-*.parquet")):
        shutil.rmtree(run_dir, ignore_errors=True)
    elif run_dir is not None and (run_dir / "manifest.json").exists():
        Manifest.read(run_dir).update(status="failed", error=message)
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


@hydra.main(config_path=CONF, config_name="config", version_base="1.3")
def app(cfg: DictConfig) -> float | None:
    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir)
    # A run of a sweep keeps quiet: the sweep's progress line and table speak for it.
    alone = hydra_cfg.mode != RunMode.MULTIRUN
    try:
        plain = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
        if not alone:
            plain["run"]["progress"] = False
        rounds = run_experiment(plain, run_dir, list(hydra_cfg.overrides.task))
    except InputError as e:
        fail(str(e), run_dir)
    if alone:
        print_summary(rounds, run_dir)
    return rounds["violation_rate"][-1]


def resume_argv(argv: list[str]) -> list[str]:
    """`resume=PATH` becomes the overrides PATH was run with, in PATH again.

    PATH is a run directory (Hydra saved its overrides in .hydra/overrides.yaml) or a
    sweep directory (multirun.yaml); finished runs are skipped, the others continue.
    """
    paths = [a.split("=", 1)[1] for a in argv if a.startswith("resume=")]
    if not paths:
        return argv
    path = Path(paths[-1])
    rest = [a for a in argv if not a.startswith("resume=")]
    if (path / "multirun.yaml").is_file():
        saved = yaml.safe_load((path / "multirun.yaml").read_text())["hydra"]["overrides"]["task"]
        return ["-m", *saved, *rest, f"hydra.sweep.dir={path}"]
    if (path / ".hydra" / "overrides.yaml").is_file():
        saved = yaml.safe_load((path / ".hydra" / "overrides.yaml").read_text())
        return [*saved, *rest, f"hydra.run.dir={path}"]
    raise InputError(
        f"resume: {path} holds no run (.hydra/overrides.yaml) or sweep (multirun.yaml)"
    )


def main() -> None:
    try:
        sys.argv[1:] = resume_argv(sys.argv[1:])
        check_overrides(CONF, "config", sys.argv[1:])
    except InputError as e:
        fail(str(e), None)
    app()


if __name__ == "__main__":
    main()
