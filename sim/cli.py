"""The `tiplab` command: one word for each entry point, `tiplab COMMAND ARGS...`.

Each command runs its module as `python -m MODULE` does, with the same arguments (Hydra
overrides for `run`, `align` and `view`), so `tiplab run seed=1` and
`python -m sim.run seed=1` are one thing. A new entry point joins by one line in COMMANDS.
"""

from __future__ import annotations

import runpy
import sys

# command -> (module it runs as __main__, what it does)
COMMANDS = {
    "run": ("sim.run", "play an experiment (Hydra overrides, -m for a sweep)"),
    "report": ("analysis.report", "write PATH/report/ for a run or a sweep"),
    "align": ("sim.align", "align a checkpoint by SFT, DPO or GRPO (Hydra overrides)"),
    "view": ("sim.view", "watch PATH live in the browser, or drive a model (overrides)"),
}


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = [f"  {name:<{width}}  {text}" for name, (_, text) in COMMANDS.items()]
    return "usage: tiplab COMMAND [ARGS...]\n\ncommands:\n" + "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0
    command, *rest = argv
    if command not in COMMANDS:
        print(
            f"error: tiplab: unknown command {command!r}; expected one of {', '.join(COMMANDS)}",
            file=sys.stderr,
        )
        return 2
    sys.argv = [f"tiplab {command}", *rest]  # the modules read their arguments from here
    runpy.run_module(COMMANDS[command][0], run_name="__main__", alter_sys=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
