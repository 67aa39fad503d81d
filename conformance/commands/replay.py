"""`hsm-lifecycle replay TRACE [--target T]`: send a recorded trace again, compare the SWs.

Every command APDU of the trace is sent in order (power events as power cycles and resets); the
first status word that differs from the recorded one is named and the exit status is 1. On a real
token the interlocks apply exactly as in a campaign: without --serial nothing that could wipe the
token is sent, and the replay stops there (exit 2).

The suite's own events (conformance.trace: a fresh token, a firmware install, a power cut) are
redone on the in-process emulator, so any trace it recorded replays from a fresh token to the
end; elsewhere they stop the replay (exit 2) with the reason. PINs masked in a real token's
trace are put back from --pin / --so-pin, or the replay is refused before the first APDU.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from hsm_lifecycle.conformance.errors import UsageError
from hsm_lifecycle.conformance.trace import (
    EVENT_FIRMWARE,
    EVENT_NEW_TOKEN,
    EVENT_POWER_CUT,
    EVENT_RIG_CUT,
    FIRMWARE_COUNTED,
    RIG_MOMENTS,
    FIRMWARE_IDENTITY_KEPT,
    TraceLine,
    read_trace,
    unmask,
)
from hsm_lifecycle.conformance.transport.base import Response, Transport
from hsm_lifecycle.protocol import describe_sw, sw_from_hex

if TYPE_CHECKING:
    from hsm_lifecycle.conformance.interlocks import GuardedTransport
    from hsm_lifecycle.emulator import Fault, VirtualToken

HELP = "replay a recorded APDU trace and report the first status word that differs"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("trace", type=Path, metavar="TRACE", help="a JSON Lines trace (traces/*.jsonl, an evidence bundle's traces/), or the public-record folder traces/public")
    parser.add_argument("--target", default="emulator", metavar="T", help="emulator (default, a fresh token) | emulator:vpcd | pcsc:READER")
    parser.add_argument("--serial", default=None, help="on a real token: its serial, to allow APDUs that could wipe it")
    parser.add_argument("--allow-irreversible", action="store_true", help="on a real token: also allow blocking the SO-PIN")
    parser.add_argument("--so-floor", type=int, default=5, metavar="N", help="on a real token: never let SO tries drop below N")
    parser.add_argument("--pin", default=None, metavar="Y", help="the user PIN to put back where the trace masked it (a real token's trace)")
    parser.add_argument("--so-pin", default=None, metavar="X", help="the SO-PIN (16 hex digits) to put back where the trace masked it")
    parser.add_argument("--emulator-fault", action="append", default=[], metavar="NAME", help=argparse.SUPPRESS)


FRESH_STATES = ("shipped", "")  # where a trace recorded from a fresh token begins


class CannotReplay(Exception):
    """The trace needs something this target cannot do (exit 2, one sentence)."""


@dataclass(frozen=True)
class Divergence:
    line: TraceLine
    got: str
    hint: str = ""

    def describe(self) -> str:
        recorded = f"SW {self.line.sw}" if self.line.sw else "a power cut"
        # The status words by name too, for the person reading it; the trace keeps the hex.
        named = [describe_sw(sw) for sw in dict.fromkeys((self.line.sw, self.got)) if sw_from_hex(sw) is not None]
        meaning = f" ({'; '.join(named)})" if named else ""
        return (
            f"APDU {self.line.i} ({self.line.step or 'no step'}, model state {self.line.state or '?'}): "
            f"recorded {recorded}, got {self.got}{meaning}; command {self.line.cmd}{self.hint}"
        )


class ReplayLink:
    """The target a replay drives: APDUs and power events; the suite's own events only where
    the target can redo them (EmulatorLink)."""

    def __init__(self, transport: Transport, what: str) -> None:
        self.transport = transport
        self.what = what

    def transmit(self, capdu: bytes) -> Response:
        return self.transport.transmit(capdu)

    def reset(self) -> None:
        self.transport.reset()

    def power_cycle(self) -> None:
        self.transport.power_cycle()

    def new_token(self, line: TraceLine) -> None:
        raise CannotReplay(f"at line {line.i} the recording put a fresh emulated token in the reader, which {self.what} cannot do; replay it with --target emulator")

    def firmware_update(self, line: TraceLine, counted: bool, keep_identity: bool) -> None:
        raise CannotReplay(f"at line {line.i} the simulated portal installed firmware, which {self.what} cannot redo; replay it with --target emulator")

    def transmit_cut(self, line: TraceLine, capdu: bytes, at: int | str) -> Response | None:
        raise CannotReplay(f"APDU {line.i} was cut by a power loss, which only the in-process emulator can reproduce; replay it with --target emulator")


class EmulatorLink(ReplayLink):
    """The in-process emulator: a new token, a firmware install and a power cut are redone."""

    def __init__(self, guard: GuardedTransport, faults: frozenset[Fault]) -> None:
        self.guard = guard  # its `inner` is the InProcessTransport of the token in the reader
        self.faults = faults
        super().__init__(guard, "the in-process emulator")

    @property
    def token(self) -> VirtualToken:
        return self.guard.inner.token  # type: ignore[attr-defined]

    def new_token(self, line: TraceLine) -> None:
        from hsm_lifecycle.conformance.transport.inprocess import InProcessTransport
        from hsm_lifecycle.emulator import VirtualToken

        self.guard.inner.close()
        self.guard.inner = InProcessTransport(VirtualToken.manufacture(faults=self.faults))

    def firmware_update(self, line: TraceLine, counted: bool, keep_identity: bool) -> None:
        self.token.firmware_update(counted=counted, keep_identity=keep_identity)

    def transmit_cut(self, line: TraceLine, capdu: bytes, at: int | str) -> Response | None:
        """Send `capdu` with the power cut at its `at`-th power event, or where a power-cut rig
        armed for moment `at` cut it: None if it was cut."""
        from hsm_lifecycle.conformance.power import moment_hook
        from hsm_lifecycle.conformance.power_rig import CutMoment
        from hsm_lifecycle.emulator import PowerCut, PowerLoss

        if at == CutMoment.APDU.value:  # cut as the command arrived: the token never ran it
            self.token.power_off()
            return None
        self.token.set_power_loss_hook(moment_hook(CutMoment(at)) if isinstance(at, str) else PowerCut(at=at))
        try:
            return self.transmit(capdu)
        except PowerLoss:
            return None
        finally:
            self.token.set_power_loss_hook(None)


def replay(
    lines: list[TraceLine], link: ReplayLink | Transport, secrets: dict[str, bytes] | None = None, *, fresh: bool = False
) -> tuple[int, Divergence | None]:
    """Send `lines` through `link`; returns (APDUs sent, first divergence or None). `fresh`:
    the target starts as a fresh token (a divergence then says if the trace began elsewhere).
    Raises CannotReplay when the trace needs what the target cannot do."""
    from hsm_lifecycle.protocol import VPCD_POWER_OFF, VPCD_RESET

    if not isinstance(link, ReplayLink):
        link = ReplayLink(link, "this target")
    sent = 0
    powered_off = False
    cut_at: int | str | None = None  # a power event's number, or a rig's moment
    first = next((line.state for line in lines), "")
    hint = f" (the trace begins in state {first!r}, recorded on a device already in use; a fresh token is shipped)" if fresh and first not in FRESH_STATES else ""
    for line in lines:
        if line.is_control:
            code = line.code
            if code == VPCD_POWER_OFF:
                powered_off = True
            elif code == VPCD_RESET:
                link.reset()
            elif code == EVENT_NEW_TOKEN:
                link.new_token(line)
                powered_off = True  # the next power-on powers the new token
            elif code == EVENT_FIRMWARE:
                flags = line.args[0] if line.args else 0
                link.firmware_update(line, bool(flags & FIRMWARE_COUNTED), bool(flags & FIRMWARE_IDENTITY_KEPT))
            elif code == EVENT_POWER_CUT:
                cut_at = line.args[0] if line.args else 0
            elif code == EVENT_RIG_CUT:
                cut_at = RIG_MOMENTS[line.args[0]] if line.args and line.args[0] < len(RIG_MOMENTS) else RIG_MOMENTS[0]
            elif powered_off:
                link.power_cycle()
                powered_off = False
            continue
        capdu = unmask(line, secrets or {}) if line.masked else bytes.fromhex(line.cmd)
        if line.torn:
            if cut_at is None:
                raise UsageError(f"APDU {line.i} of the trace was cut by a power loss the trace does not locate; a replay cannot reproduce the cut")
            rsp = link.transmit_cut(line, capdu, cut_at)
            sent += 1
            cut_at = None
            if rsp is not None:
                return sent, Divergence(line, f"SW {describe_sw(rsp.sw)} (the power cut never came)", hint)
            continue
        rsp = link.transmit(capdu)
        sent += 1
        if rsp.sw_hex != line.sw:
            return sent, Divergence(line, rsp.sw_hex, hint)
    return sent, None


def replay_secrets(lines: list[TraceLine], pin: str | None, so_pin: str | None) -> dict[str, bytes]:
    """The PINs to put back into masked commands; refuses (UsageError) before any APDU when the
    trace masked one that was not given, or one of another length."""
    from hsm_lifecycle.conformance.options import parse_so_pin, parse_user_pin

    try:
        given = {"pin": parse_user_pin(pin) if pin is not None else None, "so-pin": parse_so_pin(so_pin) if so_pin is not None else None}
    except ValueError as exc:
        raise UsageError(str(exc).replace("--hsm-", "--")) from None
    option = {"pin": "--pin", "so-pin": "--so-pin"}
    label = {"pin": "user PIN", "so-pin": "SO-PIN"}
    for name in sorted({which for line in lines for _, _, which in line.masked}):
        masked = [line for line in lines if any(which == name for _, _, which in line.masked)]
        value = given.get(name)
        if value is None:
            where = ", ".join(str(line.i) for line in masked[:5]) + (" ..." if len(masked) > 5 else "")
            raise UsageError(
                f"the trace was recorded on a real token with its {label[name]} masked (APDUs {where}); "
                f"give it with {option[name]} to replay the trace, or record one with --trace-secrets"
            )
        lengths = {n for line in masked for _, n, which in line.masked if which == name}
        if lengths != {len(value)}:
            raise UsageError(f"{option[name]} has {len(value)} bytes, but the {label[name]} masked in the trace has {' or '.join(map(str, sorted(lengths)))}")
    return {k: v for k, v in given.items() if v is not None}


def main(args: argparse.Namespace) -> int:
    from hsm_lifecycle.conformance.interlocks import Consent, GuardedTransport, InterlockRefused
    from hsm_lifecycle.conformance.options import parse_target
    from hsm_lifecycle.conformance.transport.base import TransportError

    if args.trace.is_dir():
        # The public record (traces/public): every session on a fresh in-process emulator.
        if args.target != "emulator":
            raise UsageError("a corpus folder replays on the in-process emulator only: drop --target")
        from hsm_lifecycle.conformance import corpus

        return corpus.main([str(args.trace)])
    if not args.trace.is_file():
        raise UsageError(f"{args.trace} is not a file")
    try:
        lines = list(read_trace(args.trace))
    except (ValueError, KeyError) as exc:
        raise UsageError(f"{args.trace} is not a JSON Lines trace ({exc})") from None
    secrets = replay_secrets(lines, args.pin, args.so_pin)
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
        if spec.kind == "emulator":
            link: ReplayLink = EmulatorLink(transport, _token_faults(args.emulator_fault))
        else:
            link = ReplayLink(transport, f"--target {args.target}")
        sent, divergence = replay(lines, link, secrets, fresh=spec.kind != "pcsc")
    except InterlockRefused as exc:
        print(f"replay stopped before an APDU this token did not consent to: {exc.reason}")
        return 2
    except CannotReplay as exc:
        print(f"replay stopped: {exc}")
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


def _token_faults(names: list[str]) -> frozenset:
    """The token's fault switches (a portal fault has nothing to do in a replay: the trace
    records what the portal did)."""
    from hsm_lifecycle.emulator.portal import split_faults

    try:
        return split_faults(names)[0]
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def _open(spec: object, faults: list[str]) -> tuple[object, object]:
    from hsm_lifecycle.conformance.transport.inprocess import InProcessTransport

    kind = spec.kind  # type: ignore[attr-defined]
    if kind == "emulator":
        from hsm_lifecycle.emulator import VirtualToken

        transport = InProcessTransport(VirtualToken.manufacture(faults=_token_faults(faults)))
        return transport, transport.close
    if faults:
        raise UsageError("--emulator-fault works with --target emulator only")
    if kind == "emulator:vpcd":
        import contextlib
        import tempfile

        from hsm_lifecycle.conformance.transport.base import TransportError
        from hsm_lifecycle.conformance.transport.pcsc import PcscTransport
        from hsm_lifecycle.emulator.vpcd import VpcdError, lease_port, serve_emulator, vpcd_readers

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
    from hsm_lifecycle.conformance.transport.pcsc import PcscTransport

    transport = PcscTransport(spec.reader)  # type: ignore[attr-defined]
    return transport, transport.close


def _confirm_serial(raw: object, consent: object) -> None:
    from hsm_lifecycle.conformance.interlocks import SerialMismatch
    from hsm_lifecycle.conformance.mapper import Mapper
    from hsm_lifecycle.conformance.session import read_serial

    mapper = Mapper(raw)  # type: ignore[arg-type]
    mapper.select()
    try:
        consent.confirm_serial(read_serial(mapper) or "")  # type: ignore[attr-defined]
    except SerialMismatch as exc:
        raise UsageError(str(exc)) from None
