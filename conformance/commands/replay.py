"""`hsm-lifecycle replay TRACE [--target T]`: send a recorded trace again, compare the SWs.

Every command APDU of the trace is sent in order (power events as power cycles and resets); the
first status word that differs from the recorded one is named and the exit status is 1. On a real
token the interlocks apply exactly as in a campaign: without --serial nothing that could wipe the
token is sent, and the replay stops there (exit 2).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from conformance.cli import UsageError
from conformance.trace import TraceLine, read_trace

HELP = "replay a recorded APDU trace and report the first status word that differs"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("trace", type=Path, metavar="TRACE", help="a JSON Lines trace (traces/*.jsonl, an evidence bundle's traces/)")
    parser.add_argument("--target", default="emulator", metavar="T", help="emulator (default, a fresh token) | emulator:vpcd | pcsc:READER")
    parser.add_argument("--serial", default=None, help="on a real token: its serial, to allow APDUs that could wipe it")
    parser.add_argument("--allow-irreversible", action="store_true", help="on a real token: also allow blocking the SO-PIN")
    parser.add_argument("--so-floor", type=int, default=5, metavar="N", help="on a real token: never let SO tries drop below N")
    parser.add_argument("--emulator-fault", action="append", default=[], metavar="NAME", help=argparse.SUPPRESS)


@dataclass(frozen=True)
class Divergence:
    line: TraceLine
    got: str

    def describe(self) -> str:
        return (
            f"APDU {self.line.i} ({self.line.step or 'no step'}, model state {self.line.state or '?'}): "
            f"recorded SW {self.line.sw}, got {self.got}; command {self.line.cmd}"
        )


def replay(lines: list[TraceLine], transport: object) -> tuple[int, Divergence | None]:
    """Send `lines` through `transport`; returns (APDUs sent, first divergence or None)."""
    from hsm_lifecycle.protocol import VPCD_POWER_OFF, VPCD_RESET

    sent = 0
    powered_off = False
    for line in lines:
        if line.is_control:
            code = int(line.cmd, 16)
            if code == VPCD_POWER_OFF:
                powered_off = True
            elif code == VPCD_RESET:
                transport.reset()  # type: ignore[attr-defined]
            elif powered_off:
                transport.power_cycle()  # type: ignore[attr-defined]
                powered_off = False
            continue
        if line.torn:
            raise UsageError(f"APDU {line.i} of the trace was cut by a power loss; a replay cannot reproduce the cut")
        rsp = transport.transmit(bytes.fromhex(line.cmd))  # type: ignore[attr-defined]
        sent += 1
        if rsp.sw_hex != line.sw:
            return sent, Divergence(line, rsp.sw_hex)
    return sent, None


def main(args: argparse.Namespace) -> int:
    from conformance.interlocks import Consent, GuardedTransport, InterlockRefused
    from conformance.options import parse_target
    from conformance.transport.base import TransportError

    if not args.trace.is_file():
        raise UsageError(f"{args.trace} is not a file")
    try:
        lines = list(read_trace(args.trace))
    except (ValueError, KeyError) as exc:
        raise UsageError(f"{args.trace} is not a JSON Lines trace ({exc})") from None
    try:
        spec = parse_target(args.target, None, False)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    consent = Consent(
        guarded=spec.guarded,
        serial=args.serial,
        allow_irreversible=args.allow_irreversible,
        allow_operator=False,
        so_floor=args.so_floor,
        interactive=False,
    )
    try:
        raw, close = _open(spec, args.emulator_fault)
    except TransportError as exc:
        raise UsageError(str(exc)) from None
    try:
        raw.connect()
        transport = GuardedTransport(raw, consent)
        if spec.guarded and args.serial is not None:
            _confirm_serial(raw, consent)
        sent, divergence = replay(lines, transport)
    except InterlockRefused as exc:
        print(f"replay stopped before an APDU this token did not consent to: {exc.reason}")
        return 2
    except TransportError as exc:
        raise UsageError(str(exc)) from None
    finally:
        close()
    if divergence is not None:
        print(f"replayed {sent} APDUs; first divergence at {divergence.describe()}")
        return 1
    print(f"replayed {sent} APDUs, all SWs match")
    return 0


def _open(spec: object, faults: list[str]) -> tuple[object, object]:
    from conformance.transport.inprocess import InProcessTransport

    kind = spec.kind  # type: ignore[attr-defined]
    if kind == "emulator":
        from emulator import VirtualToken

        transport = InProcessTransport(VirtualToken.manufacture(faults=frozenset(faults)))
        return transport, transport.close
    if faults:
        raise UsageError("--emulator-fault works with --target emulator only")
    if kind == "emulator:vpcd":
        import contextlib
        import tempfile

        from conformance.transport.base import TransportError
        from conformance.transport.pcsc import PcscTransport
        from emulator.vpcd import VpcdError, lease_port, serve_emulator, vpcd_readers

        stack = contextlib.ExitStack()
        try:
            directory = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="hsm-replay-")))
            port = stack.enter_context(lease_port(wait=30.0))
            stack.enter_context(serve_emulator(port, directory / "token.json"))
        except VpcdError as exc:
            stack.close()
            raise TransportError(str(exc)) from None
        transport = PcscTransport(vpcd_readers()[port], card_timeout=10.0)
        stack.callback(transport.close)
        return transport, stack.close
    from conformance.transport.pcsc import PcscTransport

    transport = PcscTransport(spec.reader)  # type: ignore[attr-defined]
    return transport, transport.close


def _confirm_serial(raw: object, consent: object) -> None:
    from conformance.interlocks import SerialMismatch
    from conformance.mapper import Mapper
    from conformance.targets import read_serial

    mapper = Mapper(raw)  # type: ignore[arg-type]
    mapper.select()
    try:
        consent.confirm_serial(read_serial(mapper) or "")  # type: ignore[attr-defined]
    except SerialMismatch as exc:
        raise UsageError(str(exc)) from None
