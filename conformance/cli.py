"""The `hsm-lifecycle` command line: one subcommand per module in `conformance.commands`.

Each command module exposes `HELP` (one line), `add_arguments(parser)` and `main(args) -> int`.
Modules are imported lazily so `hsm-lifecycle diagram` does not pay for pyscard or AALpy.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from hsm_lifecycle.conformance.errors import UsageError
from hsm_lifecycle import __version__

__all__ = ["COMMANDS", "UsageError", "build_parser", "main"]  # UsageError: re-exported for older imports

# Subcommand name -> module under conformance.commands (architecture.md, "Command line").
COMMANDS = {
    "run": "run",
    "doctor": "doctor",
    "diagram": "diagram",
    "emulate": "emulate",
    "learn": "learn",
    "replay": "replay",
    "restore": "restore",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hsm-lifecycle",
        description="Lifecycle model, emulator and conformance suite for the SmartCard-HSM / Nitrokey HSM 2.",
    )
    parser.add_argument("--version", action="version", version=f"hsm-lifecycle {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, module_name in COMMANDS.items():
        try:
            module = importlib.import_module(f"hsm_lifecycle.conformance.commands.{module_name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"hsm_lifecycle.conformance.commands.{module_name}":
                raise
            continue  # command not built yet
        p = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(p)
        p.set_defaults(_main=module.main)
    return parser


def main(argv: list[str] | None = None) -> int:
    try:  # a Ctrl-C while the command modules load is an interruption too, not a traceback
        parser = build_parser()
    except KeyboardInterrupt:
        print("hsm-lifecycle: interrupted while starting; nothing was sent to any token.", file=sys.stderr)
        return 130
    args = parser.parse_args(argv)
    try:
        return int(args._main(args) or 0)
    except UsageError as exc:
        print(f"hsm-lifecycle {args.command}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"hsm-lifecycle {args.command}: interrupted.", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
