"""Check command-line overrides before Hydra runs, so a typo is one line and exit code 2.

Hydra reports an unknown key or config option with several lines and exit code 1;
here every override (every value of a sweep) is composed and checked once, before any
job starts, and the first problem becomes an InputError.
"""

from __future__ import annotations

from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException
from omegaconf import OmegaConf, open_dict
from omegaconf.errors import OmegaConfBaseException

from envs.errors import InputError
from sim.build import check_config

FLAGS_WITH_VALUE = {
    "--config-path",
    "-cp",
    "--config-name",
    "-cn",
    "--config-dir",
    "-cd",
    "--experimental-rerun",
    "--info",
    "-i",
}


def user_overrides(argv: list[str]) -> list[str]:
    """The `key=value` arguments, without Hydra's flags and `hydra.*` settings."""
    return [a for a in arguments(argv) if not a.lstrip("+~").startswith("hydra")]


def hydra_overrides(argv: list[str]) -> list[str]:
    """Hydra's own settings (`hydra.run.dir=...`, `hydra/launcher=...`), and the search path
    a `--config-dir DIR` adds, as overrides the composition checks too."""
    own = [a for a in arguments(argv) if a.lstrip("+~").startswith("hydra")]
    dirs = [argv[i + 1] for i, a in enumerate(argv[:-1]) if a in ("--config-dir", "-cd")]
    if dirs:
        own.append(f"hydra.searchpath=[{','.join(f'file://{Path(d).resolve()}' for d in dirs)}]")
    return own


def arguments(argv: list[str]) -> list[str]:
    """The `key=value` (and `~key`) arguments, without Hydra's flags and their values."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg in FLAGS_WITH_VALUE:
            skip = True
        elif not arg.startswith("-") and ("=" in arg or arg.startswith("~")):
            out.append(arg)
    return out


def variants(overrides: list[str]) -> list[list[str]]:
    """One override list per sweep value, each with the first value of every other sweep."""
    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except HydraException as e:
        raise InputError(one_line(e)) from None
    base, sweeps = [], []
    for o in parsed:
        key = o.input_line.split("=", 1)[0]
        if o.is_sweep_override():
            sweeps.append([f"{key}={v}" for v in o.sweep_string_iterator()])
        else:
            base.append(o.input_line)
    first = [values[0] for values in sweeps]
    if not sweeps:
        return [base]
    return [
        base + first[:i] + [v] + first[i + 1 :] for i, values in enumerate(sweeps) for v in values
    ]


def one_line(e: Exception) -> str:
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    return " ".join(lines[:3])


def check_overrides(config_dir: str, config_name: str, argv: list[str], check=check_config) -> None:
    """Compose every variant the command line asks for (Hydra's own settings included, so
    `hydra/launcher=nosuch` is one line too) and check it with `check` (a composed config
    -> None or InputError); the simulator's checks by default."""
    overrides, own = user_overrides(argv), hydra_overrides(argv)
    if not overrides and not own:
        return
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=config_dir, version_base="1.3"):
            for variant in variants(overrides):
                check_keys(variant, config_name, own)
                check(composed(config_name, [*variant, *own]))
    finally:
        GlobalHydra.instance().clear()


# Mappings whose keys are the user's own (adapter names, a chat template's arguments):
# `+key=value` may add to them, `~key` remove from them.
FREE_FORM = ("adapters", "chat_template_kwargs")


def check_keys(variant: list[str], config_name: str, own: list[str]) -> None:
    """`+key=value` and `~key` only where they mean something: a key `+` adds to a
    settings group would be read by nothing (a typo run as if it were a setting), and a
    setting `~` removes would be missed by the code that reads it."""
    parsed = OverridesParser.create().parse_overrides(variant)
    changes = [o for o in parsed if o.is_add() or o.is_delete()]
    if not changes:
        return
    kept = [o.input_line for o in parsed if not (o.is_add() or o.is_delete())]
    base = composed(config_name, [*kept, *own])
    for o in changes:
        *parents, name = o.key_or_group.split(".")
        node = base
        for part in parents:
            node = node.get(part) if isinstance(node, dict) else None
        if parents and parents[-1] in FREE_FORM and isinstance(node, dict):
            continue
        if o.is_delete():
            raise InputError(
                f"{o.key_or_group}: a setting cannot be removed (~); set its value instead"
            )
        if isinstance(node, dict) and name not in node:
            raise InputError(
                f"{o.key_or_group}: no such setting (+ adds a key nothing reads); "
                f"expected one of {', '.join(sorted(node))}"
            )


def composed(config_name: str, overrides: list[str]) -> dict:
    """The resolved config (without Hydra's node) these overrides compose to."""
    try:
        cfg = compose(config_name, overrides=overrides, return_hydra_config=True)
        with open_dict(cfg):
            del cfg["hydra"]
        return OmegaConf.to_container(cfg, resolve=True)
    except (HydraException, OmegaConfBaseException) as e:
        raise InputError(f"config: {one_line(e)}") from None
