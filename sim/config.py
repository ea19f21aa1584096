"""The typed view of a composed config: one frozen dataclass per section (envs/errors.py's
Section), whose fields code reads and whose `__post_init__` checks them with one-line
messages. `checked(cfg)` is the one entry: every config check starts there; the sections
of agents' own settings (evolution, guard, backends) are typed beside the code that reads
them, in agents/.

The values and their defaults are written once, in conf/'s YAML (the experiment menu);
these classes hold none, and a key missing from the mapping is an InputError. They are
not registered with Hydra's ConfigStore: OmegaConf converts a value to its field's
annotated type while Hydra composes (`run.progress=2` becomes true, the string "nan" a
float), which would let through what these checks refuse, and fields typed Any would
only check keys, as Hydra's struct mode already does for every node of conf/.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from agents.backends.base import MODES
from agents.backends.settings import BackendConfig, backend_config
from agents.evolution.settings import EvolutionConfig, evolution_config
from agents.guard.settings import GuardConfig, guard_config
from agents.prompts import PEER_VIEWS
from envs.errors import InputError, Section, boolean, integer, listed, number
from envs.records import DECISIONS, RUN_CONDITIONS


@dataclass(frozen=True)
class RunConfig(Section):
    FIELD = "run"
    rounds: int
    progress: bool
    report: bool
    record_prompts: bool
    checkpoint_every: int

    def __post_init__(self):
        integer(self.rounds, "run.rounds", maximum=2**31 - 1)  # Int32 in the records
        integer(self.checkpoint_every, "run.checkpoint_every", minimum=0)
        for name in ("progress", "report", "record_prompts"):
            boolean(getattr(self, name), f"run.{name}")


@dataclass(frozen=True)
class AgentsConfig(Section):
    FIELD = "agents"
    memory_window: int
    peer_view: str
    aggregate_above: int

    def __post_init__(self):
        integer(self.memory_window, "agents.memory_window", minimum=0, maximum=2**31 - 1)
        integer(self.aggregate_above, "agents.aggregate_above", minimum=0)
        if self.peer_view not in PEER_VIEWS:
            raise InputError(
                f"agents.peer_view: {self.peer_view!r}; expected one of {', '.join(PEER_VIEWS)}"
            )
        if self.peer_view != "none" and self.memory_window == 0:
            raise InputError(
                f"agents.peer_view: {self.peer_view!r} is shown in the remembered rounds, but "
                "agents.memory_window=0 remembers none; set agents.peer_view=none or a window >= 1"
            )


@dataclass(frozen=True)
class DeviantsConfig(Section):
    """The planted violators; how many fit and which community exist depend on the
    population, so sim/graph.py checks those when it places them."""

    FIELD = "deviants"
    PLACEMENTS: ClassVar = ("random", "highest_degree", "lowest_degree", "community")
    count: int
    where: str
    community: int
    always: bool

    def __post_init__(self):
        integer(self.count, "deviants.count", minimum=0)
        self._choice("where", self.PLACEMENTS)
        boolean(self.always, "deviants.always")


@dataclass(frozen=True)
class DecideConfig(Section):
    FIELD = "decide"
    mode: str

    def __post_init__(self):
        self._choice("mode", MODES)


@dataclass(frozen=True)
class ReportConfig(Section):
    FIELD = "report"
    by: list[str]

    def __post_init__(self):
        columns = [*(c for c in DECISIONS if c not in ("text", "prompt")), *RUN_CONDITIONS]
        if not isinstance(self.by, list) or any(c not in columns for c in self.by):
            raise InputError(
                f"report.by: {self.by!r}; expected a list of decision columns, e.g. [threshold] "
                f"(any of {', '.join(columns)})"
            )


@dataclass(frozen=True)
class GeneratorConfig(Section):
    """env.generator; its split is checked by envs/generator.py, which draws from it."""

    FIELD = "env.generator"
    scenarios: int
    split: str

    def __post_init__(self):
        integer(self.scenarios, "env.generator.scenarios")


@dataclass(frozen=True)
class EnvConfig(Section):
    """The environment's source of scenarios; kind's own settings in the subclasses."""

    FIELD = "env"
    SOURCES: ClassVar = ("templates", "atp", "generator")
    kind: str
    source: str
    atp_file: str | None
    generator: GeneratorConfig

    def __post_init__(self):
        self._choice("source", self.SOURCES)
        if self.source == "atp" and not self.atp_file:
            raise InputError(
                "env.atp_file: required when env.source=atp (path to an ATP JSON file)"
            )
        if not isinstance(self.generator, GeneratorConfig):
            self._set("generator", GeneratorConfig.of(self.generator))


@dataclass(frozen=True)
class RolePlayConfig(EnvConfig):
    """env=roleplay; the item names and the schedule are checked where they are read."""

    professions: str | list[str]
    payoffs: list
    replicates: int
    schedule: str
    p_supervised: float
    p_neutral: float
    neutral_counts_as: str
    invalid_reward: float

    def __post_init__(self):
        super().__post_init__()
        if self.source != "atp":
            self._set("payoffs", listed(self.payoffs, "env.payoffs"))
        integer(self.replicates, "env.replicates")
        self._set("invalid_reward", number(self.invalid_reward, "env.invalid_reward", -math.inf))


@dataclass(frozen=True)
class ThresholdConfig(EnvConfig):
    """env=threshold; the game names and each reward set are checked where they are read."""

    violation: str
    games: str | list[str]
    group_size: int
    thresholds: list[int]
    rewards: list
    payoff_mode: str
    success_pays: str
    start_capital: float
    scope: str

    def __post_init__(self):
        super().__post_init__()
        integer(self.group_size, "env.group_size", minimum=2)
        thresholds = listed(self.thresholds, "env.thresholds")
        self._set("thresholds", [integer(k, "env.thresholds") for k in thresholds])
        self._set("rewards", listed(self.rewards, "env.rewards"))
        self._set("start_capital", number(self.start_capital, "env.start_capital", -math.inf))


ENVS: dict[str, type[EnvConfig]] = {"roleplay": RolePlayConfig, "threshold": ThresholdConfig}


def env_config(values: Mapping) -> EnvConfig:
    """The typed env section for its kind."""
    kind = values.get("kind") if isinstance(values, Mapping) else None
    if kind not in ENVS:
        raise InputError(f"env.kind: {kind!r}; expected roleplay or threshold")
    return ENVS[kind].of(values)


@dataclass(frozen=True)
class GraphConfig(Section):
    """graph=complete, and what every kind has; each kind's parameters in the subclasses.
    Whether a size fits the population is checked when the graph is built."""

    FIELD = "graph"
    SCOPES: ClassVar = ("within_groups", "population")
    kind: str
    scope: str
    connected: bool

    def __post_init__(self):
        self._choice("scope", self.SCOPES)
        boolean(self.connected, "graph.connected")


@dataclass(frozen=True)
class RingGraph(GraphConfig):
    k: int

    def __post_init__(self):
        super().__post_init__()
        integer(self.k, "graph.k", minimum=2)
        if self.k % 2:
            raise InputError(
                f"graph.k: {self.k} must be even (k/2 neighbours on each side of the ring)"
            )


@dataclass(frozen=True)
class SmallWorldGraph(RingGraph):
    p: float

    def __post_init__(self):
        super().__post_init__()
        self._set("p", number(self.p, "graph.p", high=1.0))


@dataclass(frozen=True)
class ScaleFreeGraph(GraphConfig):
    m: int

    def __post_init__(self):
        super().__post_init__()
        integer(self.m, "graph.m")


@dataclass(frozen=True)
class ErdosRenyiGraph(GraphConfig):
    mean_degree: float

    def __post_init__(self):
        super().__post_init__()
        self._set("mean_degree", number(self.mean_degree, "graph.mean_degree"))


@dataclass(frozen=True)
class BlockGraph(GraphConfig):
    communities: int
    degree_in: float
    degree_out: float

    def __post_init__(self):
        super().__post_init__()
        integer(self.communities, "graph.communities")
        for name in ("degree_in", "degree_out"):
            self._set(name, number(getattr(self, name), f"graph.{name}"))


@dataclass(frozen=True)
class FileGraph(GraphConfig):
    FORMATS: ClassVar = ("auto", "edgelist", "graphml")
    path: str | None
    format: str

    def __post_init__(self):
        super().__post_init__()
        if not self.path:
            raise InputError("graph.path: required with graph.kind=file (an edge list or GraphML)")
        self._choice("format", self.FORMATS)


GRAPHS: dict[str, type[GraphConfig]] = {
    "complete": GraphConfig,
    "ring": RingGraph,
    "small_world": SmallWorldGraph,
    "scale_free": ScaleFreeGraph,
    "erdos_renyi": ErdosRenyiGraph,
    "stochastic_block": BlockGraph,
    "file": FileGraph,
}


def graph_config(values: Mapping) -> GraphConfig:
    """The typed graph section for its kind."""
    kind = values.get("kind") if isinstance(values, Mapping) else None
    if kind not in GRAPHS:
        raise InputError(
            f"graph.kind: unknown topology {kind!r}; expected one of {', '.join(GRAPHS)}"
        )
    return GRAPHS[kind].of(values)


@dataclass(frozen=True)
class ReferenceConfig(Section):
    """The policy's distances to its base and aligned start (agents/reference.py)."""

    FIELD = "reference"
    probes: int
    base: str | None

    def __post_init__(self):
        integer(self.probes, "reference.probes", minimum=0)
        base = self.base
        if base in (None, "auto"):
            return
        if not (Path(str(base)).expanduser() / "config.json").is_file():
            raise InputError(
                f"reference.base: {base} is not a Hugging Face model directory (no config.json); "
                "expected auto, null or the path of the policy's pre-trained base"
            )


@dataclass(frozen=True)
class Config:
    """The typed view of a whole composed config, as `checked` returns it."""

    seed: int
    run: RunConfig
    agents: AgentsConfig
    deviants: DeviantsConfig
    decide: DecideConfig
    report: ReportConfig
    env: EnvConfig
    graph: GraphConfig
    reference: ReferenceConfig
    evolution: EvolutionConfig
    guard: GuardConfig
    backend: BackendConfig


def checked(cfg: Mapping) -> Config:
    """cfg's typed view, every setting checked (an InputError naming the first field a
    user got wrong), before anything is built or written."""
    # numpy's seed sequences take no negative seeds; the records store it as a 64-bit integer
    config = Config(
        seed=integer(cfg["seed"], "seed", minimum=0, maximum=2**63 - 1),
        run=RunConfig.of(cfg["run"]),
        agents=AgentsConfig.of(cfg["agents"]),
        deviants=DeviantsConfig.of(cfg["deviants"]),
        decide=DecideConfig.of(cfg["decide"]),
        report=ReportConfig.of(cfg["report"]),
        env=env_config(cfg["env"]),
        graph=graph_config(cfg["graph"]),
        reference=ReferenceConfig.of(cfg["reference"]),
        evolution=evolution_config(cfg["evolution"]),
        guard=guard_config(cfg["guard"]),
        backend=backend_config(cfg["backend"]),
    )
    if cfg.get("elasticity"):  # experiment=elasticity's own section
        from sim.elasticity import elasticity_config

        elasticity_config(cfg)
    return config
