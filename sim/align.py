"""The Hydra entry point `python -m sim.align [overrides]`: align a base model by one recipe.

    python -m sim.align align=grpo                      # the organism's base, by GRPO
    python -m sim.align base=PATH align=sft data.dose=64 out=aligned/sft64
    python -m sim.align data.source=atp data.atp_file=../shared/atp/sa_question_160.json

User mistakes (unknown method, a base that is not a model, a data file in the wrong
format, a dose of 0) end with one `error:` line and exit code 2, before the model loads;
the checkpoint appears only once complete (agents/alignment/aligned.py).
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from envs.errors import InputError
from sim.overrides import check_overrides

CONF = Path(__file__).resolve().parent.parent / "conf"


def organism_settings() -> dict:
    """conf/backend/organism.yaml, resolved: which organism base=organism names, and its cache."""
    return OmegaConf.to_container(OmegaConf.load(CONF / "backend" / "organism.yaml"), resolve=True)


def check(cfg: Mapping) -> None:
    """The checks that need no model, on a composed config (every sweep value)."""
    from agents.alignment.aligned import check_base
    from agents.alignment.data import check_target, split
    from agents.alignment.settings import AlignData, recipe_config
    from envs.errors import integer

    recipe_config(cfg["align"])
    integer(cfg["seed"], "seed", minimum=0)
    data = AlignData.of(cfg["data"])
    check_target(cfg["data"].get("target", "comply"))
    if cfg["base"] != "organism":
        check_base(cfg["base"])
    split(data, cfg["seed"])


def base_path(cfg: Mapping) -> Path:
    if cfg["base"] != "organism":
        return Path(cfg["base"])
    from agents.alignment.organism import organism_base
    from agents.backends.organism import cache_root

    organism = organism_settings()
    return organism_base(organism["organism"], cache_root(organism["cache_dir"]))


@hydra.main(config_path=str(CONF), config_name="alignment", version_base="1.3")
def app(cfg: DictConfig) -> None:
    try:
        plain = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
        check(plain)
        from agents.alignment import align

        align(
            plain["align"],
            plain["data"],
            base_path(plain),
            plain["out"],
            seed=plain["seed"],
            device=plain["device"],
            progress=plain["progress"],
        )
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)


def main() -> None:
    try:
        check_overrides(str(CONF), "alignment", sys.argv[1:], check=check)
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    app()


if __name__ == "__main__":
    main()
