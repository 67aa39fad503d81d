"""`hsm-lifecycle emulate`: serve a persistent emulated token to pcscd through vpcd.

The work is done by `hsm_lifecycle.emulator.vpcd` (also runnable as `python -m hsm_lifecycle.emulator.vpcd`); this module
only puts it behind the CLI contract of conformance/cli.py.
"""

from __future__ import annotations

import argparse

from hsm_lifecycle.conformance.errors import UsageError
from hsm_lifecycle.emulator import vpcd

HELP = "serve a persistent emulated SmartCard-HSM to pcscd through vsmartcard's vpcd reader"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    vpcd.add_arguments(parser)
    parser.epilog = ("Creates the state file with a freshly manufactured token if it is absent. Runs until "
                     "SIGTERM or Ctrl-C (exit status 0); the current APDU is always finished first.")


def main(args: argparse.Namespace) -> int:
    try:
        return vpcd.run_from_args(args, log_prefix="hsm-lifecycle emulate")
    except vpcd.VpcdError as exc:
        raise UsageError(str(exc)) from None
