"""`tiplab view`: the live view in the browser, following records or driving a model.

    tiplab view PATH            follow the run or sweep in PATH as it is written
    tiplab view [OVERRIDES...]  drive a model from the config (Mesa's SolaraViz): step,
                                play, reset, with sliders for the main parameters

The page is `analysis.view.app`, served by solara; this module holds what needs `sim`:
LiveModel, the model the page drives, which it knows by name only.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
from datetime import datetime
from pathlib import Path

from envs.errors import InputError
from envs.supervision import SCHEDULES
from sim.build import CONF, check_config, compose, model_arguments
from sim.manifest import Manifest
from sim.model import TippingModel
from sim.overrides import check_overrides

EVOLVING_BACKENDS = ("organism", "hf")  # evolution trains the backend's own weights
_COMPOSE = threading.Lock()  # Hydra's compose state is global; the page may build two at once


def composed(overrides: list[str]) -> dict:
    """The resolved config of conf/ with the overrides, as `python -m sim.run` composes it."""
    with _COMPOSE:
        return compose(overrides)


def with_inputs(cfg: dict, temptation: float, threshold: int | None, schedule: str | None) -> dict:
    """cfg with the view's inputs applied: temptation scales the gap between the violating
    and the compliant payoff (1 = as configured), threshold is the threshold game's k."""
    env = dict(cfg["env"])
    if env["kind"] == "roleplay" and env["source"] == "templates":
        env["payoffs"] = [[c, round(c + temptation * (v - c), 4)] for c, v in env["payoffs"]]
    if env["kind"] == "threshold" and env["source"] == "templates":
        env["rewards"] = [
            {**r, "high": round(r["normal"] + temptation * (r["high"] - r["normal"]), 4)}
            for r in env["rewards"]
        ]
    if threshold is not None:
        env["thresholds"] = [threshold]
    if schedule is not None:
        env["schedule"] = schedule
    return {**cfg, "env": env}


def evolution_overrides(cfg: dict, evolution: bool | None) -> list[str]:
    """The evolution group the checkbox asks for: the configured one, pg, or none."""
    configured = bool(cfg["evolution"]["every"])
    if evolution is None or evolution == configured:
        return []
    return ["evolution=pg"] if evolution else ["evolution=none"]


class LiveModel(TippingModel):
    """A run driven from the browser: the composed config with the view's inputs applied,
    recorded into a new directory under `out` like any run (so `tiplab report` reads it).

    Stops (running = False) after run.rounds rounds, the horizon of the supervision
    schedule; LoRA updates follow evolution's schedule as in `sim.run`.
    """

    def __init__(
        self,
        overrides: tuple[str, ...] = (),
        out: str = "outputs/view",
        temptation: float = 1.0,
        threshold: int | None = None,
        schedule: str | None = None,
        evolution: bool | None = None,
    ):
        base = composed(list(overrides))
        cfg = composed([*overrides, *evolution_overrides(base, evolution)])
        cfg = with_inputs(cfg, temptation, threshold, schedule)
        check_config(cfg)
        self.run_dir = Path(out) / datetime.now().strftime("%Y-%m-%d_%H-%M-%S-%f")
        self.n_rounds = cfg["run"]["rounds"]
        super().__init__(**model_arguments(cfg, self.run_dir))
        self.run_dir.mkdir(parents=True)
        self.manifest = Manifest.start(
            self.run_dir, self.recorder.run_id, cfg["seed"], self.n_rounds, cfg, list(overrides)
        )

    def step(self) -> None:
        if self.round >= self.n_rounds:
            self.running = False
            return
        super().step()
        self.manifest.update(rounds_completed=self.round)
        if self.round >= self.n_rounds:
            self.running = False
            self.manifest.update(status="complete")


def inputs(cfg: dict, overrides: list[str], out: str) -> dict:
    """Mesa's model_params for LiveModel: fixed values, and the inputs this config has
    (temptation: x the configured gap between violating and compliant payoffs)."""
    env = cfg["env"]
    params: dict = {"overrides": list(overrides), "out": out}
    if env["source"] == "templates":
        params["temptation"] = {
            "type": "SliderFloat",
            "label": "temptation",
            "value": 1.0,
            "min": 0.0,
            "max": 3.0,
            "step": 0.1,
        }
    if env["kind"] == "threshold":
        params["threshold"] = {
            "type": "SliderInt",
            "label": "threshold k",
            "value": env["thresholds"][0],
            "min": 1,
            "max": env["group_size"],
            "step": 1,
        }
    if env["kind"] == "roleplay":
        params["schedule"] = {
            "type": "Select",
            "label": "supervision schedule",
            "value": env["schedule"],
            "values": list(SCHEDULES),
        }
    if cfg["backend"]["name"] in EVOLVING_BACKENDS:
        params["evolution"] = {
            "type": "Checkbox",
            "label": "weight updates (evolution)",
            "value": bool(cfg["evolution"]["every"]),
        }
    return params


def setup(args: argparse.Namespace) -> dict:
    """What the page shows (TIPLAB_VIEW), every argument checked before the server starts."""
    if len(args.args) == 1 and "=" not in args.args[0]:
        path = Path(args.args[0])
        if not path.is_dir():
            raise InputError(f"view: {path}: no such directory (expected a run or sweep)")
        return {"path": str(path.resolve())}
    overrides = list(args.args)
    if bad := [a for a in overrides if "=" not in a]:
        raise InputError(f"view: {bad[0]!r}: expected one PATH, or key=value overrides")
    check_overrides(str(CONF), "config", overrides)
    cfg = composed(overrides)
    check_config(cfg)
    out = str(Path(args.out).resolve())
    return {"model": "sim.view:LiveModel", "params": inputs(cfg, overrides, out)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="tiplab view",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("args", nargs="*", help="PATH, or Hydra overrides (key=value)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--out", default="outputs/view", help="where driven runs are recorded")
    args = parser.parse_args(argv)
    try:
        shown = setup(args)
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    server = [sys.executable, "-m", "solara", "run", "analysis.view.app", "--production"]
    server += ["--host", args.host, "--port", str(args.port), "--no-open"]
    print(f"view: http://{args.host}:{args.port}/ (Ctrl-C stops it)", flush=True)
    try:
        env = {**os.environ, "TIPLAB_VIEW": json.dumps(shown)}
        return subprocess.run(server, env=env).returncode
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
