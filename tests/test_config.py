"""The typed config (sim/config.py and the agents' settings modules) against conf/: every
key an option's YAML writes is a field its typed section reads, and no field lacks a key,
so the YAML stays the one place values and defaults are written."""

from dataclasses import fields, is_dataclass

import pytest

from agents.alignment.settings import AlignData, recipe_config
from agents.backends.settings import backend_config
from agents.evolution.settings import evolution_config
from agents.guard.settings import guard_config
from sim.build import compose
from sim.config import (
    AgentsConfig,
    DecideConfig,
    DeviantsConfig,
    ReferenceConfig,
    ReportConfig,
    RunConfig,
    checked,
    env_config,
    graph_config,
)
from sim.elasticity import elasticity_config
from tests.helpers import ROOT, align_recipe, small_align_data

READERS = {
    "env": env_config,
    "graph": graph_config,
    "evolution": evolution_config,
    "guard": guard_config,
    "backend": backend_config,
}
OPTIONS = [
    (group, path.stem)
    for group in READERS
    for path in sorted((ROOT / "conf" / group).glob("*.yaml"))
]


def names(view) -> set[str]:
    return {f.name for f in fields(view)}


NEEDED = {  # values with no default
    ("graph", "file"): ["graph.path=g.edgelist"],
    ("backend", "openai"): ["backend.model=served-name"],
}


def keys_match(values, view) -> None:
    """The mapping's keys are the view's fields, in its nested sections too."""
    assert set(values) == names(view), view.FIELD
    for f in fields(view):
        if is_dataclass(getattr(view, f.name)):
            keys_match(values[f.name], getattr(view, f.name))


@pytest.mark.parametrize(("group", "option"), OPTIONS, ids=lambda x: str(x))
def test_every_key_of_an_option_is_a_typed_field(group, option):
    # without the default experiment, whose role-play values would land in env=threshold
    cfg = compose(["~experiment", f"{group}={option}", *NEEDED.get((group, option), [])])
    keys_match(cfg[group], READERS[group](cfg[group]))
    assert checked(cfg) is not None  # the menu's own values pass their checks


def test_the_top_level_sections_and_elasticity_are_typed_key_for_key():
    cfg = compose()
    sections = {
        "run": RunConfig,
        "agents": AgentsConfig,
        "deviants": DeviantsConfig,
        "decide": DecideConfig,
        "report": ReportConfig,
        "reference": ReferenceConfig,
    }
    for key, view in sections.items():
        assert set(cfg[key]) == names(view), key
    assert set(cfg) - {"seed", "resume"} == {*sections, *READERS}
    env = checked(cfg).env
    assert set(cfg["env"]["generator"]) == names(env.generator)
    elasticity = compose(["experiment=elasticity"])
    assert set(elasticity["elasticity"]) == names(elasticity_config(elasticity))


def test_values_are_checked_not_converted():
    """What OmegaConf's structured configs would convert (2 to true, "nan" to a float) is
    refused with the field's name."""
    cfg = compose()
    with pytest.raises(ValueError, match=r"run\.progress: 2 must be true or false"):
        checked({**cfg, "run": {**cfg["run"], "progress": 2}})
    with pytest.raises(ValueError, match=r"env\.invalid_reward: 'nan' must be a number"):
        checked({**cfg, "env": {**cfg["env"], "invalid_reward": "nan"}})
    hf = compose(["backend=hf"])
    with pytest.raises(ValueError, match=r"backend\.score\.argmax: 2 must be true or false"):
        checked({**hf, "backend": {**hf["backend"], "score": {"argmax": 2}}})


@pytest.mark.parametrize("method", ["sft", "dpo", "grpo"])
def test_a_recipe_and_the_alignment_data_are_typed_key_for_key_and_read_as_written(method):
    """Their mappings are hashed into aligned checkpoints' keys: the views read them
    without converting (lora.alpha 16 stays the integer PEFT writes)."""
    recipe = align_recipe(method)
    view = recipe_config(recipe)
    keys_match(recipe, view)
    assert view.lora.alpha == 16 and type(view.lora.alpha) is int
    data = small_align_data()
    keys_match(data, AlignData.of(data))
