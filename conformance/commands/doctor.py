"""`hsm-lifecycle doctor`: a token owner's non-destructive check-up.

Reads the token (never a PIN, never a write), names its lifecycle state and lists what the
owner can still do, what is impossible and what would make it worse, as the model says, with
the command lines to do it. A loss one mistake away is said first. With several readers
(`--reader` repeated, or `--all`) each token is checked in turn; `--json` prints the same
reading as data (`conformance.doctor_report`). The diagnosis itself is `conformance.doctor`;
this module picks the tokens and prints.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from hsm_lifecycle.conformance.errors import UsageError
from hsm_lifecycle.conformance.doctor import (
    OPTION_NAMES,
    ActionVerdict,
    Diagnosis,
    Prediction,
    SoPinAdvice,
    TokenReading,
    check_so_pin_text,
    choose_hsm_reader,
    diagnose,
    holds_smartcard_hsm,
    read_token,
    reader_atrs,
)
from hsm_lifecycle.conformance.danger_words import losses_text, rule_words, ways_out_text
from hsm_lifecycle.conformance.doctor_report import SCHEMA, Checked, exit_code, report
from hsm_lifecycle.conformance.transport.base import Transport, TransportError
from hsm_lifecycle.model.dangers import LOSSES
from hsm_lifecycle.model.profiles import OPEN_MEANINGS, SMARTCARD_HSM
from hsm_lifecycle.protocol import describe_sw

HELP = "non-destructive check-up of a token: its lifecycle state and what you can still do (never sends a PIN)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--reader",
        metavar="R",
        action="append",
        default=[],
        help="PC/SC reader name substring; repeat it to check several tokens (default: the first reader holding a SmartCard-HSM)",
    )
    parser.add_argument("--all", action="store_true", help="check every reader that holds a SmartCard-HSM / Nitrokey HSM 2")
    parser.add_argument("--json", action="store_true", help=f"print the reading as one JSON object (schema {SCHEMA}) instead of text")
    parser.add_argument(
        "--target",
        metavar="T",
        default="pcsc",
        help="pcsc (default), pcsc:READER, emulator (a fresh emulated token, for demos) or emulator:vpcd",
    )
    parser.add_argument("--state", metavar="FILE", type=Path, help="diagnose an emulated token's state file (written by `hsm-lifecycle emulate`)")
    parser.add_argument(
        "--so-pin",
        metavar="X",
        help="check the format of an SO-PIN and explain the ASCII-hex trap; it is NEVER sent to the token",
    )
    parser.epilog = (
        "doctor sends only SELECT, the status queries VERIFY 81/88 without a PIN, ENUMERATE OBJECTS and "
        "READ BINARY of EF.C_DevAut: it costs the token nothing. Exit status: 0 healthy, 1 a token is one "
        "mistake away from a loss, 2 usage, 3 no token."
    )


@dataclass(frozen=True)
class Target:
    """A reader to check: a transport to read through, or why there is no token in it."""

    reader: str | None
    transport: Transport | None = None
    error: str = ""


def main(args: argparse.Namespace) -> int:
    advice = _check_so_pin(args.so_pin)
    checked = [_check(target) for target in open_targets(args)]
    try:
        if args.json:
            print(json.dumps(report(checked, SMARTCARD_HSM.name), indent=2), flush=True)
        else:
            console = _QuietOnClosedPipe(highlight=False)
            for n, c in enumerate(checked):
                if n:
                    console.print()
                    console.rule()
                if c.diagnosis is not None:
                    print_diagnosis(console, c.diagnosis, advice)
            sys.stdout.flush()
    except BrokenPipeError:  # `doctor --json | head`: the reader left; the exit code still tells
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    for c in checked:
        if c.diagnosis is None:
            print(f"hsm-lifecycle doctor: {c.error}", file=sys.stderr)
    return exit_code(checked)


class _QuietOnClosedPipe(Console):
    """rich exits 1 when stdout closes (`doctor | head`); for doctor 1 means a danger, so go
    quiet instead and let the exit code say what it found."""

    def on_broken_pipe(self) -> None:
        self.quiet = True
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def _check(target: Target) -> Checked:
    """Read one token and diagnose it; a token that cannot be read is reported, not raised."""
    if target.transport is None:
        return Checked(target.reader, error=target.error)
    try:
        try:
            reading = read_token(target.transport)
        except TransportError as exc:
            return Checked(target.reader, error=str(exc))
    finally:
        target.transport.close()
    if not reading.applet_present:
        return Checked(
            reading.reader or target.reader,
            error=f"the card in '{reading.reader}' has no SmartCard-HSM applet (SELECT answered {describe_sw(reading.select_sw)}): "
            "is it a Nitrokey HSM 2 / SmartCard-HSM?",
        )
    return Checked(reading.reader, diagnose(reading))


def _check_so_pin(text: str | None) -> SoPinAdvice | None:
    if text is None:
        return None
    advice = check_so_pin_text(text)
    if not advice.ok:
        raise UsageError(advice.message)
    return advice


def open_targets(args: argparse.Namespace) -> list[Target]:
    """The readers doctor reads: PC/SC readers, an emulator state file, or a fresh emulator."""
    from hsm_lifecycle.conformance.transport.inprocess import InProcessTransport

    target: str = args.target
    wanted: list[str] = list(args.reader)
    if args.state is not None:
        if target != "pcsc" or wanted or args.all:
            raise UsageError("--state names an emulated token; leave out --target, --reader and --all with it.")
        from hsm_lifecycle.emulator import StateFileError, VirtualToken

        if not args.state.is_file():
            raise UsageError(f"no emulator state file at {args.state} (hsm-lifecycle emulate --state FILE writes one).")
        try:
            token = VirtualToken.open(args.state)
        except StateFileError as exc:
            raise UsageError(f"{args.state} is not a usable emulator state file: {exc}") from None
        return [Target(str(args.state), InProcessTransport(token, reader=f"emulator state {args.state}"))]
    if target == "emulator":
        if wanted or args.all:
            raise UsageError(f"{'--reader' if wanted else '--all'} applies to a PC/SC token, not to --target emulator.")
        from hsm_lifecycle.emulator import VirtualToken

        return [Target("emulator", InProcessTransport(VirtualToken.manufacture(), reader="a freshly manufactured emulated token (demo)"))]
    if target in ("pcsc", "emulator:vpcd") or target.startswith("pcsc:"):
        named = target.removeprefix("pcsc:") if target.startswith("pcsc:") else None
        if named:
            if wanted and wanted != [named]:
                raise UsageError(f"--target names reader {named!r} but --reader names {', '.join(map(repr, wanted))}; give one.")
            wanted = [named]
        if args.all and wanted:
            raise UsageError("--all checks every reader holding a SmartCard-HSM: leave out --reader with it.")
        return _pcsc_targets(wanted, every=args.all, only_vpcd=target == "emulator:vpcd")
    raise UsageError(f"unknown --target {target!r}: use pcsc, pcsc:READER, emulator or emulator:vpcd.")


def _pcsc_targets(wanted: list[str], *, every: bool, only_vpcd: bool = False) -> list[Target]:
    from hsm_lifecycle.conformance.transport.pcsc import PcscTransport, list_readers, select_reader
    from hsm_lifecycle.emulator.vpcd import vpcd_readers

    try:
        readers = list_readers()
        if only_vpcd:  # never pick a real token when the emulator was asked for
            served = set(vpcd_readers().values())
            readers = [r for r in readers if r in served or r.startswith("Virtual PCD")]
        atrs = reader_atrs(readers)
    except TransportError as exc:  # pcscd itself is missing: a set-up mistake, not a token's absence
        raise UsageError(str(exc)) from None
    if every:
        held = [r for r in readers if holds_smartcard_hsm(atrs.get(r))]
        if not held:
            return [Target(None, error=_none_held(readers))]
        return [Target(r, PcscTransport(r)) for r in held]
    if not wanted:
        try:
            reader = choose_hsm_reader(readers, atrs, None)
        except TransportError as exc:
            return [Target(None, error=str(exc))]
        return [Target(reader, PcscTransport(reader))]
    out = []
    for substring in dict.fromkeys(wanted):
        try:
            reader = select_reader(readers, substring)
        except TransportError as exc:
            out.append(Target(substring, error=str(exc)))
            continue
        if atrs.get(reader) is None:
            out.append(Target(reader, error=f"the reader '{reader}' holds no card: insert the token and retry"))
        else:
            out.append(Target(reader, PcscTransport(reader)))
    return out


def _none_held(readers: list[str]) -> str:
    if not readers:
        return "no smart-card reader is connected: plug in the Nitrokey HSM 2 / SmartCard-HSM and retry"
    listed = ", ".join(f"'{r}'" for r in readers)
    return f"no reader holds a SmartCard-HSM / Nitrokey HSM 2 (the readers are {listed}): insert the token and retry"


# ---------------------------------------------------------------------------------------------
# Printing


def print_diagnosis(console: Console, diag: Diagnosis, advice: SoPinAdvice | None) -> None:
    for line in diag.first_lines:  # a loss one mistake away: said before anything else
        console.print(f"[bold red]{escape(line)}[/]", soft_wrap=True)
    _print_token(console, diag.reading)
    console.print()
    states = " or ".join(diag.states)
    console.print(f"[bold]Lifecycle state:[/] [bold cyan]{escape(states)}[/] — {escape(diag.meaning)}")
    if len(diag.states) > 1:
        console.print("  (the two look the same from outside; what you can do is the same unless noted)")
    console.print()
    console.print("[bold]What you can do now[/] (as the lifecycle model predicts for this state)")
    for verdict in diag.can:
        _print_action(console, verdict)
    console.print()
    console.print("[bold]What is impossible now[/]")
    console.print(f"  [red]✘[/] Factory reset: there is none. {escape(diag.no_factory_reset)}")
    for verdict in diag.cannot:
        _print_refusal(console, verdict)
    _print_dangers(console, diag)
    if diag.so_budget is not None:
        budget = diag.so_budget
        console.print()
        console.print("[bold]SO-PIN budget[/]")
        console.print(
            f"  Each wrong SO-PIN costs one of the {budget.tries_left} tries left "
            f"({escape('; '.join(budget.cost_each))}). At 0 the token becomes {escape(budget.blocked_state)} for good."
        )
        back = budget.ways_back
        if back:
            only = "The only way back" if len(back) == 1 else "Ways back"
            console.print(f"  {only}: {escape('; '.join(f'{v.action.label} (needs {v.action.needs})' for v in back))}.")
        console.print("  At 0, the model says:")
        for verdict in budget.after_block:
            mark = "[green]✔[/]" if verdict.admitted else "[red]✘[/]"
            what = _consequences(verdict.prediction) if verdict.admitted else _refusal_reason(verdict.prediction)
            caveat = f" — {escape(verdict.caveat)}" if verdict.caveat else ""
            console.print(f"    {mark} {escape(verdict.action.label)}: {escape(what)}{caveat}")
        if not any(v.admitted and v.action.key == "portal-login" for v in budget.after_block):
            console.print("    The portal login then needs another, working HSM: a blocked one cannot log in.")
    console.print()
    console.print("[bold]Watch out[/]")
    for warning in diag.warnings:
        console.print(f"  [yellow]![/] {escape(warning)}")
    if advice is not None:
        console.print()
        console.print("[bold]Your SO-PIN (checked here, not sent to the token)[/]")
        console.print(f"  {escape(advice.message)}")
    console.print()
    console.print(
        f"[dim]doctor sent {len(diag.reading.exchanges)} APDUs to the token, all reads and status queries; "
        "no PIN was presented and nothing was spent.[/]"
    )


def _print_token(console: Console, reading: TokenReading) -> None:
    console.print(f"[bold]Token[/] in {escape(reading.reader)}")
    ident = reading.identity
    if ident is None:
        console.print("  Serial        unknown (EF.C_DevAut could not be read)")
    else:
        if ident.verified:
            trust = "genuine: chains to CardContact's root" if ident.genuine else f"chains to the TEST root {ident.root_chr}, not a production token"
        else:
            trust = f"NOT verified: {ident.problem}"
        console.print(f"  Serial        {escape(ident.serial or 'unknown')} (device {escape(ident.device_chr)}, issuer {escape(ident.dica_chr)}; {escape(trust)})")
    console.print(f"  Version       {escape(reading.version or 'unknown')}")
    if reading.options is not None:
        names = [name for bit, name in OPTION_NAMES.items() if reading.options & bit] or ["none"]
        console.print(f"  Options       0x{reading.options:04X}: {escape(', '.join(names))}")
    if not reading.initialized:
        console.print("  SO-PIN        not set: never initialized (or reset by a firmware update)")
    elif reading.so_tries == 0:
        console.print("  SO-PIN        [red]blocked[/] (0 tries left)")
    else:
        console.print(f"  SO-PIN        {reading.so_tries} tries left (of 15)")
    console.print(f"  User PIN      {escape(_user_status(reading))}")
    if reading.key_ids is None:
        console.print("  Keys          unknown (ENUMERATE OBJECTS refused)")
    else:
        ids = f" (ids {', '.join(str(k) for k in reading.key_ids)})" if reading.key_ids else ""
        console.print(f"  Keys          {len(reading.key_ids)}{ids}, besides the device key")


def _user_status(reading: TokenReading) -> str:
    if not reading.initialized:
        return "not set"
    if reading.user_blocked:
        return "blocked (0 tries left)"
    if reading.transport_pin:
        return "transport PIN active: change it before first use"
    if reading.user_tries is not None:
        return f"{reading.user_tries} tries left"
    return f"status {describe_sw(reading.user_sw)}"


def _print_action(console: Console, verdict: ActionVerdict) -> None:
    action, pred = verdict.action, verdict.prediction
    rules = rule_words(pred.rules)
    console.print(f"  [green]✔[/] [bold]{escape(action.label)}[/]")
    console.print(f"      needs {escape(action.needs)}; cost class {escape(pred.cost)}; {escape(rules)}")
    console.print(f"      → {escape(_consequences(pred))}")
    if pred.maybe:
        console.print(
            f"      → perhaps also: {escape('; '.join(pred.maybe))} (open behaviour {escape(pred.depends)}: "
            f"{escape(OPEN_MEANINGS.get(pred.depends, ''))}; not public)"
        )
    if verdict.caveat:
        console.print(f"      note: {escape(verdict.caveat)}")
    console.print(f"      $ {escape(action.tool)}")
    if action.key == "initialize":
        console.print("      (sc-hsm-tool exits 0 even when the token refuses: read what it prints)")


def _print_refusal(console: Console, verdict: ActionVerdict) -> None:
    caveat = f" — {escape(verdict.caveat)}" if verdict.caveat else ""
    console.print(f"  [red]✘[/] {escape(verdict.action.label)}: {escape(_refusal_reason(verdict.prediction))}{caveat}")


def _consequences(pred: Prediction) -> str:
    return "; ".join(pred.changes) or "nothing else changes"


def _refusal_reason(pred: Prediction) -> str:
    spent = f"; and it still costs: {'; '.join(pred.changes)}" if pred.changes else ""
    answer = "refused" if pred.output == "refused" else f"refused ({pred.output})"
    return f"{answer} — {rule_words(pred.rules)}{spent}"


def _print_dangers(console: Console, diag: Diagnosis) -> None:
    console.print()
    console.print("[bold]What would make it worse[/] (the shortest ways to a loss, from the lifecycle model)")
    keys = diag.dangers.state.keys
    if diag.key_backup is not None:
        console.print(f"  Key backup: {escape(diag.key_backup)}")
    for group in diag.danger_groups:
        mark = "[bold red]![/]" if group.imminent else "[yellow]✘[/]"
        console.print(f"  {mark} {escape(group.route.summary)}, {escape(group.how)} → {escape(losses_text(group, keys, 'doing'))}")
        for danger in group.dangers:
            console.print(f"      {escape(danger.loss.title)} — {escape(danger.loss.meaning)}")
        if group.stuck:
            console.print(f"      what is left: {escape(ways_out_text(group, keys))}")
        if group.route.depends:
            console.print(
                f"      (assumes the worse where the device's behaviour is not public: {escape(', '.join(group.route.depends))})"
            )
    if not diag.danger_groups:
        console.print("  nothing the owner can do makes it worse")
    if diag.dangers.suffered:
        console.print(f"  Already lost: {escape(', '.join(LOSSES[x].title for x in diag.dangers.suffered))}")
    for caveat in diag.danger_caveats:
        console.print(f"  note: {escape(caveat)}")
