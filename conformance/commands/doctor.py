"""`hsm-lifecycle doctor`: a token owner's non-destructive check-up.

Reads the token (never a PIN, never a write), names its lifecycle state and lists what the
owner can still do and what is impossible, as the model says, with the command lines to do it.
The diagnosis itself is `conformance.doctor`; this module picks the token and prints.
"""

from __future__ import annotations

import argparse
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
    read_token,
    reader_atrs,
)
from hsm_lifecycle.conformance.transport.base import Transport, TransportError
from hsm_lifecycle.model.catalog import RULES
from hsm_lifecycle.model.profiles import OPEN_MEANINGS
from hsm_lifecycle.protocol import describe_sw

HELP = "non-destructive check-up of a token: its lifecycle state and what you can still do (never sends a PIN)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--reader", metavar="R", help="PC/SC reader name substring (default: the first reader holding a SmartCard-HSM)")
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
        "READ BINARY of EF.C_DevAut: it costs the token nothing."
    )


def main(args: argparse.Namespace) -> int:
    console = Console(highlight=False)
    advice = _check_so_pin(args.so_pin)
    transport = open_transport(args)
    try:
        try:
            reading = read_token(transport)
        except TransportError as exc:
            raise UsageError(str(exc)) from None
    finally:
        transport.close()
    if not reading.applet_present:
        raise UsageError(
            f"the card in '{reading.reader}' has no SmartCard-HSM applet (SELECT answered {describe_sw(reading.select_sw)}): "
            "is it a Nitrokey HSM 2 / SmartCard-HSM?"
        )
    print_diagnosis(console, diagnose(reading), advice)
    return 0


def _check_so_pin(text: str | None) -> SoPinAdvice | None:
    if text is None:
        return None
    advice = check_so_pin_text(text)
    if not advice.ok:
        raise UsageError(advice.message)
    return advice


def open_transport(args: argparse.Namespace) -> Transport:
    """The transport doctor reads through: a PC/SC reader, an emulator state file, or a fresh emulator."""
    from hsm_lifecycle.conformance.transport.inprocess import InProcessTransport

    target: str = args.target
    if args.state is not None:
        if target != "pcsc" or args.reader:
            raise UsageError("--state names an emulated token; leave out --target and --reader with it.")
        from hsm_lifecycle.emulator import StateFileError, VirtualToken

        if not args.state.is_file():
            raise UsageError(f"no emulator state file at {args.state} (hsm-lifecycle emulate --state FILE writes one).")
        try:
            token = VirtualToken.open(args.state)
        except StateFileError as exc:
            raise UsageError(f"{args.state} is not a usable emulator state file: {exc}") from None
        return InProcessTransport(token, reader=f"emulator state {args.state}")
    if target == "emulator":
        if args.reader:
            raise UsageError("--reader applies to a PC/SC token, not to --target emulator.")
        from hsm_lifecycle.emulator import VirtualToken

        return InProcessTransport(VirtualToken.manufacture(), reader="a freshly manufactured emulated token (demo)")
    if target in ("pcsc", "emulator:vpcd") or target.startswith("pcsc:"):
        named = target.removeprefix("pcsc:") if target.startswith("pcsc:") else None
        if named and args.reader and named != args.reader:
            raise UsageError(f"--target names reader {named!r} but --reader names {args.reader!r}; give one.")
        return _pcsc_transport(named or args.reader, only_vpcd=target == "emulator:vpcd")
    raise UsageError(f"unknown --target {target!r}: use pcsc, pcsc:READER, emulator or emulator:vpcd.")


def _pcsc_transport(wanted: str | None, *, only_vpcd: bool = False) -> Transport:
    from hsm_lifecycle.conformance.transport.pcsc import PcscTransport, list_readers
    from hsm_lifecycle.emulator.vpcd import vpcd_readers

    try:
        readers = list_readers()
        if only_vpcd:  # never pick a real token when the emulator was asked for
            served = set(vpcd_readers().values())
            readers = [r for r in readers if r in served or r.startswith("Virtual PCD")]
        reader = choose_hsm_reader(readers, reader_atrs(readers), wanted)
    except TransportError as exc:
        raise UsageError(str(exc)) from None
    # The exact reader name: a substring that matches this reader only.
    return PcscTransport(reader)


# ---------------------------------------------------------------------------------------------
# Printing


def print_diagnosis(console: Console, diag: Diagnosis, advice: SoPinAdvice | None) -> None:
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
    rules = _rules(pred.rules)
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
    return f"{answer} — {_rules(pred.rules)}{spent}"


def _rules(ids: tuple[str, ...]) -> str:
    return ", ".join(f"{r} {RULES[r].title}" if r in RULES else r for r in ids)
