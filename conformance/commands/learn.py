"""`hsm-lifecycle learn`: learn the device's state machine (AALpy) and diff it against the model.

Writes learned.dot/svg, model-projection.dot/svg, diff.json, learn-summary.json and, when the
two differ, the shortest distinguishing sequence (distinguishing.txt) and its replay on the
device as a trace (distinguishing.jsonl). Exit status: 0 equivalent, 1 a difference was found,
2 a usage mistake or a refusal before anything was changed, 3 stopped midway (a real token's
watchdog or interlock).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from hsm_lifecycle.conformance.errors import UsageError
from hsm_lifecycle.conformance.learn.alphabet import ALPHABETS, CORE
from hsm_lifecycle.conformance.learn.campaign import LearnReport, run_learning
from hsm_lifecycle.conformance.learn.learner import ALGORITHMS, LearnSettings
from hsm_lifecycle.conformance.learn.report import TRACE_FILE, write_bundle
from hsm_lifecycle.conformance.learn.sul import LearningAborted, NonDeterminism, Target
from hsm_lifecycle.conformance.learn.token_target import DEFAULT_SO_FLOOR, LearningRefused
from hsm_lifecycle.conformance.options import TARGET_EMULATOR, TARGET_PCSC_PREFIX, TARGET_VPCD, parse_so_pin, parse_user_pin

HELP = "learn the device's state machine (AALpy) and diff it against the model"
DEFAULT_OUT = "learn-out"
DEFAULTS = LearnSettings()
# Every query re-initializes a real token (seconds each, and flash wear): the lean oracle
# settings cut the queries about tenfold on the emulator (docs/learning.md, "Numbers").
TOKEN_DEFAULTS = LearnSettings(walk_steps=500, extra_states=0)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--target", default=TARGET_EMULATOR, metavar="T", help="emulator (default: a fresh in-memory token per query) or pcsc:READER (a real token; see --serial)")
    parser.add_argument("--out", default=DEFAULT_OUT, metavar="DIR", help=f"where the diagrams, diff and summary go (default {DEFAULT_OUT})")
    parser.add_argument(
        "--alphabet",
        default=CORE.name,
        choices=sorted(ALPHABETS),
        help="; ".join(f"{a.name}: {a.summary}" for a in ALPHABETS.values()) + f" (default {CORE.name})",
    )
    parser.add_argument("--fault", action="append", default=[], metavar="NAME", help="emulator only, for the project's own tests: switch on an emulator fault (docs/emulator.md)")
    real = parser.add_argument_group("real token (pcsc:READER): every query re-initializes the token, wiping its keys")
    real.add_argument("--serial", default=None, help="the serial of the token you consent to wipe (as OpenSC shows it); required")
    real.add_argument("--so-pin", default=None, metavar="HEX16", help="the token's SO-PIN, 16 hex digits; required")
    real.add_argument("--pin", default=None, help="the user PIN to set at every reset and to leave on the token; required")
    real.add_argument("--so-floor", type=int, default=DEFAULT_SO_FLOOR, metavar="N", help=f"refuse to start with N or fewer SO tries left (default {DEFAULT_SO_FLOOR})")
    tuning = parser.add_argument_group("learning")
    tuning.add_argument("--algorithm", choices=ALGORITHMS, default=DEFAULTS.algorithm, help=f"AALpy algorithm (default {DEFAULTS.algorithm})")
    tuning.add_argument(
        "--walk-steps",
        type=int,
        default=None,
        metavar="N",
        help=f"random-walk steps per equivalence query (default {DEFAULTS.walk_steps}; {TOKEN_DEFAULTS.walk_steps} on a real token)",
    )
    tuning.add_argument(
        "--extra-states",
        type=int,
        default=None,
        metavar="K",
        help=f"Wp bound = the walk's estimate + K (default {DEFAULTS.extra_states}; {TOKEN_DEFAULTS.extra_states} on a real token)",
    )
    tuning.add_argument("--seed", type=int, default=DEFAULTS.seed, help=f"random seed (default {DEFAULTS.seed})")
    tuning.add_argument("--no-model-guidance", action="store_true", help="do not let the model propose counterexamples (pure black-box learning)")
    tuning.add_argument("--fail-fast", action="store_true", help="stop at the first difference the device confirms (the learned machine is then partial)")
    parser.add_argument("--no-svg", action="store_true", help="write DOT only (no Graphviz run)")


def settings_from(args: argparse.Namespace) -> LearnSettings:
    if args.fail_fast and args.no_model_guidance:
        raise UsageError("--fail-fast needs the model's guidance: drop --no-model-guidance")
    base = DEFAULTS if args.target == TARGET_EMULATOR else TOKEN_DEFAULTS
    try:
        return LearnSettings(
            algorithm=args.algorithm,
            walk_steps=base.walk_steps if args.walk_steps is None else args.walk_steps,
            extra_states=base.extra_states if args.extra_states is None else args.extra_states,
            seed=args.seed,
            guided=not args.no_model_guidance,
            fail_fast=args.fail_fast,
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def target_from(args: argparse.Namespace) -> Target:
    alphabet = ALPHABETS[args.alphabet]
    if args.target == TARGET_EMULATOR:
        from hsm_lifecycle.conformance.learn.emulator_target import EmulatorTarget
        from hsm_lifecycle.emulator import parse_faults

        if args.serial or args.so_pin or args.pin:
            raise UsageError("--serial, --so-pin and --pin are for a real token; the emulator needs none")
        try:
            return EmulatorTarget(faults=parse_faults(args.fault))
        except ValueError as exc:
            raise UsageError(f"unknown --fault: {exc}") from None
    if args.fault:
        raise UsageError("--fault only applies to --target emulator; a real token has no fault switches")
    if args.target == TARGET_VPCD:
        raise UsageError(
            "the emulator behind vpcd is one persistent token: learn it as a real token with --target pcsc:<vpcd reader> "
            "and --serial, or learn the in-process emulator with --target emulator"
        )
    if not args.target.startswith(TARGET_PCSC_PREFIX) or len(args.target) == len(TARGET_PCSC_PREFIX):
        raise UsageError(f"unknown --target {args.target!r}: use emulator or pcsc:READER")
    missing = [flag for flag, value in (("--serial", args.serial), ("--so-pin", args.so_pin), ("--pin", args.pin)) if not value]
    if missing:
        raise UsageError(
            f"learning a real token re-initializes it at every query (every key on it is lost) and needs {', '.join(missing)}: "
            "--serial names the token you consent to wipe, --so-pin is its SO-PIN, --pin the user PIN to leave on it"
        )
    if args.so_floor < 1:
        raise UsageError("--so-floor must be at least 1: at 0 SO tries the SO-PIN is blocked for good")
    try:
        so_pin, pin = parse_so_pin(args.so_pin), parse_user_pin(args.pin)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    from hsm_lifecycle.conformance.learn.token_target import RealTokenTarget
    from hsm_lifecycle.conformance.transport.pcsc import PcscTransport

    return RealTokenTarget(
        transport=PcscTransport(args.target[len(TARGET_PCSC_PREFIX) :]),
        serial=args.serial,
        so_pin=so_pin,
        user_pin=pin,
        alphabet=alphabet,
        so_floor=args.so_floor,
    )


def main(args: argparse.Namespace) -> int:
    from rich.console import Console

    console = Console(stderr=True)
    settings = settings_from(args)
    target = target_from(args)
    alphabet = ALPHABETS[args.alphabet]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    trace = out / TRACE_FILE
    trace.unlink(missing_ok=True)  # a stale trace from an earlier run must not be bundled
    rounds = {"n": 0}
    with console.status(f"learning {args.target} over alphabet {alphabet.name} ({len(alphabet.commands)} inputs)") as status:

        def on_round(phase: str, states: int) -> None:
            rounds["n"] += phase == "model" or (phase == "walk" and not settings.guided)
            what = {"model": "the model's proposal", "walk": "random walk", "wp": "Wp-method"}[phase]
            status.update(f"round {rounds['n']}: hypothesis of {states} states, checking it by {what}")

        try:
            report = run_learning(target, alphabet, settings, on_round=on_round, trace_path=trace)
        except LearningRefused as exc:
            raise UsageError(str(exc)) from None
        except (LearningAborted, NonDeterminism) as exc:
            console.print(f"[bold red]stopped:[/] {exc}")
            return 3
    files = write_bundle(report, out, svg=not args.no_svg)
    _print(console, report, files)
    return 0 if report.equivalent else 1


def _print(console, report: LearnReport, files: list[Path]) -> None:  # noqa: ANN001 - rich Console
    from rich.table import Table

    result, diff = report.result, report.diff
    table = Table(title=f"learning: alphabet {report.alphabet.name}, target {report.target.get('kind')}", show_header=False)
    table.add_row("inputs", str(len(report.alphabet.commands)))
    table.add_row("learned states", f"{result.machine.size}{' (stopped at the first difference)' if result.stopped_early else ''}")
    table.add_row("model states (projected)", f"{report.projection.size} ({report.projection.profile.name})")
    table.add_row("queries (device resets)", str(result.cost["resets"]))
    table.add_row("steps (abstract commands)", str(result.cost["steps"]))
    table.add_row("APDUs", str(result.cost["apdus"]))
    table.add_row("seconds", f"{result.seconds:.2f}")
    console.print(table)
    if diff.divergence is None:
        same = "the same machine up to renaming" if diff.isomorphic else "within the model's admitted outputs"
        console.print(f"[bold green]equivalent[/]: the learned machine is {same}")
    else:
        console.print(f"[bold red]differs[/]: {diff.divergence.explain()}")
        console.print("  distinguishing inputs: " + " ; ".join(str(c) for c in diff.divergence.inputs))
        if report.replay is not None and not report.replay.confirmed:
            console.print("[yellow]  the replay answered differently from the learned machine: learning was incomplete[/]")
    console.print("wrote " + ", ".join(str(p) for p in files))
    sys.stderr.flush()
