"""The page `tiplab view` serves (`solara run analysis.view.app`), set up by TIPLAB_VIEW:

- {"path": DIR}: follow the run or sweep in DIR as its records are written;
- {"model": "package.module:Class", "params": {...}}: drive a model in Mesa's
  SolaraViz. The class is named, not imported here (analysis never imports sim): the
  entry point that starts the server names it, as conf/config.yaml names analysis's
  callbacks. Its instances record into `run_dir`, which the panels read; `params` are
  Mesa's model_params (fixed values and slider/select/checkbox inputs).
"""

from __future__ import annotations

import importlib
import json
import os
import threading
from pathlib import Path

import solara

from analysis.view import records
from analysis.view.panels import (
    CurvesPanel,
    DistributionPanel,
    GuardPanel,
    PopulationPanel,
    RoundStatus,
    UpdatesPanel,
    latest,
)

POLL_S = 0.5  # how often a followed directory is checked for new records


@solara.component
def FollowPage(path: Path):
    tick = solara.use_reactive(0)
    chosen = solara.use_reactive(None)

    def watch(cancel: threading.Event) -> None:
        seen = None
        while not cancel.wait(POLL_S):
            now = records.signature(path)
            if now != seen:
                seen = now
                tick.value += 1

    solara.use_thread(watch, dependencies=[path], intrusive_cancel=False)
    runs = solara.use_memo(lambda: records.runs(path), [path, tick.value])
    names = runs.get_column("run_dir").to_list()
    with solara.AppBar():
        solara.AppBarTitle(f"tiplab · {path}")
    if not names:
        solara.Info(f"waiting for a run to start recording in {path}")
        return
    run = chosen.value if chosen.value in names else latest(runs)
    with solara.Sidebar(), solara.Card("Records"):
        RoundStatus(path, tick.value)
        if len(names) > 1:
            solara.Select(label="graph of run", value=run, values=names, on_value=chosen.set)
    with solara.ColumnsResponsive(12, large=6):
        PopulationPanel(path / run, tick.value)
        CurvesPanel(path, tick.value)
        DistributionPanel(path / run, tick.value)
        UpdatesPanel(path, tick.value)
        GuardPanel(path, tick.value)


def live_components() -> list:
    """The panels of a model's own records, as Mesa components (redrawn every step; Mesa's
    sidebar shows the step, which is the rounds played)."""
    panels = (PopulationPanel, CurvesPanel, DistributionPanel, UpdatesPanel, GuardPanel)
    return [
        (lambda model, panel=panel: panel(Path(model.run_dir), model.steps), 0) for panel in panels
    ]


@solara.component
def LivePage(model_name: str, params: dict):
    from mesa.visualization import SolaraViz

    module, _, name = model_name.partition(":")
    model_class = getattr(importlib.import_module(module), name)
    start = {k: v["value"] if isinstance(v, dict) and "type" in v else v for k, v in params.items()}
    model = solara.use_memo(lambda: model_class(**start), [])
    SolaraViz(model, components=live_components(), model_params=params, name="tiplab")


@solara.component
def Page():
    setup = json.loads(os.environ.get("TIPLAB_VIEW", "{}"))
    if "path" in setup:
        FollowPage(Path(setup["path"]))
    elif "model" in setup:
        LivePage(setup["model"], setup["params"])
    else:
        solara.Error("TIPLAB_VIEW is not set: start the view with `tiplab view`")
