"""The `turbonext` command line: one subcommand per module of :mod:`turbonext.commands`.

Every subcommand is a ``module:function`` taking the remaining argv (a list of strings) and
returning an exit code; its module is imported only when the subcommand runs, so ``turbonext --help``
stays fast and optional extras are needed only where they are used.
"""

from __future__ import annotations

import importlib
import sys


SUBCOMMANDS = {
    "generate": ("turbonext.commands.generate", "cli_main", "render a driving video / pose sequence from a reference image"),
    "bench": ("turbonext.commands.bench", "cli_main", "speed benchmarks (streaming vs baselines, the webcam path)"),
    "prepare-data": ("turbonext.commands.prepare_data", "cli_main", "turn videos into the training dataset layout"),
    "eval": ("turbonext.commands.eval", "cli_main", "evaluate a model on held-out synthetic sequences"),
    "synthetic": ("turbonext.commands.synthetic", "cli_main", "write the synthetic benchmark dataset"),
    "push": ("turbonext.commands.push", "cli_main", "upload a pipeline folder (with its model card) to the Hub"),
    "convert": ("turbonext.commands.convert", "cli_main",
                "convert Moore-AnimateAnyone / MusePose / RAIN weights into a pipeline folder"),
}


def _usage() -> str:
    lines = ["usage: turbonext <command> [options]", "", "commands:"]
    for name, (_, _, text) in SUBCOMMANDS.items():
        lines.append(f"  {name:<14} {text}")
    lines.append("")
    lines.append("Run `turbonext <command> --help` for the options of one command.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in SUBCOMMANDS:
        print(f"turbonext: unknown command {name!r}.\n\n{_usage()}", file=sys.stderr)
        return 2
    module_name, func_name, _ = SUBCOMMANDS[name]
    func = getattr(importlib.import_module(module_name), func_name)
    return int(func(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
