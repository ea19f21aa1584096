"""The live view's panels as solara components, each drawn from the records on disk.

Every panel takes the directory it reads and `tick`, a number that changes whenever the
records may have (a new round played or seen); a panel redraws only then, or when one
of its own options changes.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl
import solara

from analysis.plots import plot_tipping_curves
from analysis.view import records
from analysis.view.figures import (
    guard_figure,
    layout,
    p_violate_figure,
    population_figure,
    updates_figure,
)

COLOR_BY = ["last choice", "p_violate"]
ALL = "all agents"


def _png(figure, dependencies: list) -> None:
    solara.FigureMatplotlib(figure, format="png", dependencies=dependencies)


@solara.component
def RoundStatus(path: Path, tick: int):
    """One line per run: rounds played, of how many, and its status."""
    runs = solara.use_memo(lambda: records.runs(path), [path, tick])
    for row in runs.iter_rows(named=True):
        name = "" if row["run_dir"] == "." else f"{row['run_dir']}: "
        done = row["rounds_completed"] or 0
        solara.Text(f"{name}{done} of {row['n_rounds']} rounds played ({row['status']})")


@solara.component
def PopulationPanel(run: Path, tick: int):
    """The graph, laid out in a thread once per run (seconds at 1,000 drawn agents) while
    the other panels go on updating."""
    color_by = solara.use_reactive(COLOR_BY[0])
    last = solara.use_memo(lambda: records.last_round(run), [run, tick])
    n_agents = last.height  # every agent decides every round

    def place():
        return layout(str(run), records.graph(run), n_agents) if n_agents else None

    placed = solara.use_thread(place, dependencies=[run, n_agents], intrusive_cancel=False)
    ready = placed.state == solara.ResultState.FINISHED and placed.value is not None

    def draw():
        return population_figure(placed.value, last, n_agents, color_by.value) if ready else None

    figure = solara.use_memo(draw, [run, tick, color_by.value, ready])
    with solara.Column():
        solara.ToggleButtonsSingle(value=color_by, values=COLOR_BY)
        if figure is not None:
            _png(figure, [run, tick, color_by.value, ready])
            solara.Text(f"population at round {last.item(0, 'round')}")
        elif n_agents:
            solara.Text(f"laying out the graph of {n_agents:,} agents")
        else:
            solara.Text("no round recorded yet")


@solara.component
def CurvesPanel(path: Path, tick: int):
    by = solara.use_reactive(ALL)
    options = solara.use_memo(lambda: [ALL, *records.conditions(path)], [path, tick])

    def draw():
        column = None if by.value == ALL else by.value
        rates = records.violation_curves(path, column)
        return plot_tipping_curves(rates, by=[column] if column else [], title="violation rate")

    with solara.Column():
        solara.Select(label="by condition", value=by, values=options)
        _png(solara.use_memo(draw, [path, tick, by.value]), [path, tick, by.value])


@solara.component
def DistributionPanel(run: Path, tick: int):
    def draw():
        last = records.last_round(run)
        t = last.item(0, "round") if last.height else 0
        return p_violate_figure(records.rounds_of(run, sorted({0, t})))

    _png(solara.use_memo(draw, [run, tick]), [run, tick])


@solara.component
def GuardPanel(path: Path, tick: int):
    _png(
        solara.use_memo(lambda: guard_figure(records.guard_rates(path)), [path, tick]), [path, tick]
    )


@solara.component
def UpdatesPanel(path: Path, tick: int):
    _png(solara.use_memo(lambda: updates_figure(records.updates(path)), [path, tick]), [path, tick])


def latest(runs: pl.DataFrame) -> str:
    """The run to draw by default: the last one still running, else the last one."""
    running = runs.filter(pl.col("status") == "running")
    return (running if running.height else runs).get_column("run_dir")[-1]
