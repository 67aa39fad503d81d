"""`hsm-lifecycle diagram [--out FILE]`: draw the lifecycle model (SVG, PNG or DOT by suffix).

The drawing itself is `model.diagram.render`; this module only puts it behind the CLI contract
of conformance/cli.py.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from hsm_lifecycle.conformance.errors import UsageError
from hsm_lifecycle.model import diagram

HELP = "draw the lifecycle state diagram (SVG, PNG or DOT, chosen by the file suffix)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("lifecycle.svg"),
        metavar="FILE",
        help="output file; .svg, .png or .dot (default: lifecycle.svg)",
    )


def main(args: argparse.Namespace) -> int:
    out: Path = args.out
    if out.suffix.lower() not in diagram.FORMATS:
        raise UsageError(f"cannot draw {out.name!r}: use a file name ending in .svg, .png or .dot.")
    if out.is_dir():
        raise UsageError(f"{out} is a directory: name the file to write, e.g. {out / 'lifecycle.svg'}.")
    try:
        written = diagram.render(out)
    except OSError as exc:
        raise UsageError(f"cannot write {out}: {exc.strerror or exc}.") from None
    print(f"wrote {written}")
    return 0
