"""The Hydra entry point: `python -m sim.run [overrides]` plays one experiment and records it.

User mistakes (unknown config keys, bad values, bad data files) end with one line on
stderr and exit code 2; a run directory is complete, marked failed or interrupted, or
left as it was found (sim.rundir).
A run directory that already holds a run is continued from its last checkpoint, or
skipped if complete; `resume=PATH` re-runs a run (or a sweep) in its own directory.
"""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path

import hydra
import polars as pl
import yaml
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

from agents.secrets import redact_logs, redacted
from envs.errors import InputError
from sim import checkpoint, ledger, rundir
from sim.build import CONF as CONF_DIR
from sim.build import build_run
from sim.config import RunConfig, checked
from sim.manifest import Manifest, now
from sim.model import TippingModel
from sim.overrides import check_overrides

CONF = str(CONF_DIR)
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


class RunFailed(InputError):
    """A user mistake found after the run started: the run is kept and marked failed."""


class Interrupted(Exception):
    """Ctrl-C during a run: the run is kept, marked interrupted, and can be resumed."""


def run_experiment(cfg: dict, run_dir: Path, overrides: list[str] = ()) -> pl.DataFrame:
    """Play cfg's experiment into run_dir (continuing a run left there); returns the rounds.

    Holds run_dir's lock throughout. An InputError means nothing was written; after the
    run starts, a failure marks it failed (RunFailed for a user mistake) and Ctrl-C
    marks it interrupted (Interrupted).
    """
    rundir.lock(run_dir)
    try:
        return play(cfg, run_dir, overrides)
    finally:
        rundir.release(run_dir)


def play(cfg: dict, run_dir: Path, overrides: list[str]) -> pl.DataFrame:
    config = checked(cfg)
    rounds = config.run.rounds
    previous = previous_run(run_dir, cfg)
    if previous is not None and previous.data["status"] == "complete":
        if "ledger" in previous.data:  # manifests of older versions have none
            ledger.verify(run_dir, previous.data["ledger"], rounds, rounds)
        print(f"already complete, nothing to do: {run_dir}", file=sys.stderr)
        return ledger.readable(run_dir / "rounds.parquet")
    if not config.run.progress:
        quiet_library_bars()
    model = build_run(cfg, run_dir, run_id=previous.data["run_id"] if previous else None)
    try:
        return play_with(cfg, config.run, run_dir, overrides, previous, model)
    finally:
        model.backend.close()
        if model.guard is not None:
            model.guard.close()


def play_with(
    cfg, run: RunConfig, run_dir, overrides, previous, model: TippingModel
) -> pl.DataFrame:
    """Check the run left in run_dir (if any), then play the remaining rounds."""
    rounds, seed = run.rounds, cfg["seed"]
    recorder, run_id, state = model.recorder, model.recorder.run_id, None
    if previous is not None:
        state = checkpoint.load(run_dir, run_id, rounds, model.env.n_agents)
        start = state["round"] if state else 0
        ledger.verify(run_dir, previous.data.get("ledger", {}), start, rounds)
    if state is not None:
        try:
            checkpoint.load_model_state(model, state)
        except (KeyError, TypeError, ValueError, IndexError) as e:
            raise InputError(
                f"{run_dir / checkpoint.FILE}: damaged checkpoint ({type(e).__name__}: {e})"
            ) from None
    # From here on the run directory changes: the run has started.
    start = state["round"] if state else 0
    checkpoint.rewind_records(run_dir, start)
    recorder.rounds = recorder.rounds.filter(pl.col("round") < start)
    recorder.updates = recorder.updates.filter(pl.col("round") < start)
    recorder.references = recorder.references.filter(pl.col("round") < start)
    if previous is None:
        manifest = Manifest.start(run_dir, run_id, seed, rounds, cfg, list(overrides))
    else:
        manifest = previous
        kept = {k: v for k, v in manifest.data.get("ledger", {}).items() if int(k) < start}
        manifest.data.pop("error", None)
        manifest.update(status="running", rounds_completed=start, ledger=kept)
    manifest.data.setdefault("ledger", {})
    try:
        play_rounds(run, run_dir, model, manifest)
        ledger.verify(run_dir, manifest.data["ledger"], rounds, rounds)
    except KeyboardInterrupt:
        with rundir.uninterrupted():
            manifest.update(status="interrupted")
        raise Interrupted(run_dir) from None
    except InputError as e:
        manifest.update(status="failed", error=str(e))
        raise RunFailed(str(e)) from None
    except BaseException as e:
        manifest.update(status="failed", error=f"{type(e).__name__}: {e}")
        raise
    manifest.update(status="complete", finished=now())
    return recorder.rounds


def play_rounds(run: RunConfig, run_dir, model: TippingModel, manifest: Manifest) -> None:
    """Rounds from the model's current one to the last: records, ledger, checkpoint; the
    warnings a round raised (e.g. a backend that ran out of memory and split its batches,
    which moves scores in the last float bits) go into the manifest with their round."""
    rounds, every = run.rounds, run.checkpoint_every
    recorder = model.recorder
    bar = tqdm(
        range(model.steps, rounds),
        desc="rounds",
        unit="round",
        initial=model.steps,
        total=rounds,
        disable=not run.progress,
    )
    for t in bar:
        with warnings.catch_warnings(record=True) as caught:
            model.step()
        for w in caught:  # shown as usual, and kept with the round they came from
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
            manifest.data.setdefault("warnings", []).append({"round": t, "warning": str(w.message)})
        manifest.data["ledger"][str(t)] = ledger.entry(run_dir, t, recorder.updates)
        manifest.update(rounds_completed=t + 1)
        if every and ((t + 1) % every == 0 or t + 1 == rounds):
            checkpoint.save(model, run_dir, manifest.data["run_id"])
        bar.set_postfix(violation=f"{recorder.rounds['violation_rate'][-1] or 0:.2f}")


def print_summary(rounds: pl.DataFrame, run_dir: Path) -> None:
    table = rounds.select(
        "round", "n_agents", "n_valid", "violation_rate", "mean_p_violate", "mean_reward"
    )
    with pl.Config(tbl_rows=-1, tbl_hide_dataframe_shape=True, float_precision=3):
        print(table)
    print(f"records: {run_dir}")


def fail(message: str) -> None:
    """One line on stderr (secrets redacted), exit code 2."""
    print(f"error: {redacted(message)}", file=sys.stderr)
    sys.exit(2)


def resume_hint(path: Path) -> str:
    return f"interrupted: continue with  python -m sim.run resume={path}"


@hydra.main(config_path=CONF, config_name="config", version_base="1.3")
def app(cfg: DictConfig) -> float | None:
    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir)
    redact_logs()
    if "joblib" in str(hydra_cfg.launcher.get("_target_", "")):  # the laptop's workers
        rundir.stop_with_sweep_parent()
    # A run of a sweep keeps quiet: the sweep's progress line and table speak for it.
    alone = hydra_cfg.mode != RunMode.MULTIRUN
    try:
        plain = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
        if not alone:
            plain["run"]["progress"] = False
        if plain.get("elasticity"):
            return play_elasticity(plain, run_dir, alone)
        rounds = run_experiment(plain, run_dir, list(hydra_cfg.overrides.task))
    except RunFailed as e:
        fail(str(e))
    except InputError as e:  # refused before anything was written
        rundir.undo(run_dir)
        fail(str(e))
    except Interrupted:
        if alone:  # a sweep's interruption is reported once, for the sweep, by main()
            print(resume_hint(run_dir), file=sys.stderr)
        sys.exit(130)
    except KeyboardInterrupt:  # before the run started
        rundir.undo(run_dir)
        if alone:
            print(resume_hint(run_dir), file=sys.stderr)
        sys.exit(130)
    if alone:
        print_summary(rounds, run_dir)
    return rounds["violation_rate"][-1]


def play_elasticity(cfg: dict, run_dir: Path, alone: bool) -> None:
    """experiment=elasticity (sim/elasticity.py) in run_dir, which it holds locked."""
    from sim.elasticity import run_elasticity

    rundir.lock(run_dir)
    try:
        steps = run_elasticity(cfg, run_dir)
    finally:
        rundir.release(run_dir)
    if alone:
        print(f"records: {run_dir} ({steps.height} fine-tuning steps)")


def resume_argv(argv: list[str]) -> list[str]:
    """`resume=PATH` becomes the overrides PATH was run with, in PATH again.

    PATH is a run directory (Hydra saved its overrides in .hydra/overrides.yaml) or a
    sweep directory (multirun.yaml, whose launcher is kept); finished runs are skipped,
    the others continue.
    """
    paths = [a.split("=", 1)[1] for a in argv if a.startswith("resume=")]
    if not paths:
        return argv
    path = Path(paths[-1])
    rest = [a for a in argv if not a.startswith("resume=")]
    if (path / "multirun.yaml").is_file():
        saved = saved_yaml(path / "multirun.yaml", ("hydra", "overrides"))
        task, own = saved.get("task"), saved.get("hydra") or []
        if not isinstance(task, list) or not isinstance(own, list):
            raise InputError(f"{path / 'multirun.yaml'}: damaged (no hydra.overrides.task list)")
        launcher = [o for o in own if str(o).startswith("hydra/launcher=")]
        return ["-m", *map(str, task), *launcher, *rest, f"hydra.sweep.dir={path}"]
    if (path / ".hydra" / "overrides.yaml").is_file():
        saved = saved_yaml(path / ".hydra" / "overrides.yaml", ())
        if not isinstance(saved, list):
            raise InputError(f"{path / '.hydra' / 'overrides.yaml'}: damaged (not a list)")
        return [*map(str, saved), *rest, f"hydra.run.dir={path}"]
    raise InputError(
        f"resume: {path} holds no run (.hydra/overrides.yaml) or sweep (multirun.yaml)"
    )


def saved_yaml(path: Path, keys: tuple[str, ...]):
    """The YAML in path, then keys down into it; an InputError naming path if it is damaged."""
    try:
        data = yaml.safe_load(path.read_text())
        for key in keys:
            data = data[key]
    except (OSError, UnicodeDecodeError, yaml.YAMLError, KeyError, TypeError) as e:
        raise InputError(f"{path}: damaged ({type(e).__name__})") from None
    return data


def named_dir(argv: list[str], key: str) -> Path | None:
    """The directory `key=DIR` on the command line names (the last one wins)."""
    values = [a.split("=", 1)[1] for a in argv if a.startswith(f"{key}=")]
    return Path(values[-1]) if values else None


def main() -> None:
    """Check the command line, lock the named run (or sweep) directory, then run Hydra.

    A run refused on a check leaves the directory as it was; a resumed sweep keeps its
    multirun.yaml.
    """
    try:
        sys.argv[1:] = resume_argv(sys.argv[1:])
        check_overrides(CONF, "config", sys.argv[1:])
        sweep = "-m" in sys.argv or "--multirun" in sys.argv
        target = named_dir(sys.argv[1:], "hydra.sweep.dir" if sweep else "hydra.run.dir")
        if target is not None:
            rundir.remember(target)
            rundir.lock(target)
    except InputError as e:
        fail(str(e))
    if sweep:
        rundir.launching_sweep()
    multirun_yaml = target / "multirun.yaml" if sweep and target else None
    kept = multirun_yaml.read_bytes() if multirun_yaml and multirun_yaml.is_file() else None
    try:
        app()
    except KeyboardInterrupt:
        stop_sweep(target or rundir.sweep_dir())
    except SystemExit as e:
        if sweep and e.code == 130:
            stop_sweep(target or rundir.sweep_dir())
        raise
    finally:
        if kept is not None:
            multirun_yaml.write_bytes(kept)
        rundir.release_all()


def stop_sweep(target: Path | None) -> None:
    """Ctrl-C during a sweep: its runs marked interrupted, one line naming how to continue
    it, exit code 130."""
    if target is not None and rundir.local_sweep():
        rundir.mark_abandoned_runs(target)
    where = target if target is not None else "<the sweep directory>"
    print(f"interrupted: continue with  python -m sim.run resume={where}", file=sys.stderr)
    sys.exit(130)


if __name__ == "__main__":
    main()
