"""APDU traces in the JSON Lines format of architecture.md.

One exchange a line: `{"i", "t_ms", "cmd", "rsp", "sw", "step", "state", "rules"}`, hex
upper-case without spaces. `state` is the model's abstract state *before* the step (the state
the command was sent in). Power events are written in vsmartcard's vpcd control vocabulary as a
1-byte `cmd` (a real APDU is at least 4 bytes, so they cannot be confused): "00" power off,
"01" power on and "02" reset, with the ATR in `rsp` (empty: the power-on failed) and an empty
`sw`. The suite adds events
of its own in the same way (a `cmd` shorter than 4 bytes, code first): "10" a fresh token was
put in the reader (the emulator renewed it), "11FF" the portal installed firmware (flags
below), "12NN" the next command's power is cut at the emulator's NN-th power event. With them a
trace recorded on the in-process emulator replays from a fresh token to its end
(`hsm-lifecycle replay`).

On a real token the owner's PINs are secrets: a recorder given `secrets` stores every
occurrence in a command as 2A bytes (same length, still hex) and lists where in the line's
`masked` (`[[offset, length, "pin" | "so-pin"], ...]`), so a replay can put them back.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from hsm_lifecycle.conformance.transport.base import Response, Transport, TransportWrapper
from hsm_lifecycle.protocol import VPCD_POWER_OFF, VPCD_POWER_ON, VPCD_RESET, CutMoment, describe_sw

# Events of the suite's own: codes vpcd does not use (it has 00..04).
EVENT_NEW_TOKEN = 0x10
EVENT_FIRMWARE = 0x11  # one flags byte follows
EVENT_POWER_CUT = 0x12  # one byte follows: the power event (0-based, within the next command) cut
EVENT_RIG_CUT = 0x13  # one byte follows: the moment a power-cut rig was armed for (RIG_MOMENTS)
RIG_MOMENTS = tuple(m.value for m in CutMoment)  # the byte after EVENT_RIG_CUT indexes these
FIRMWARE_COUNTED = 0x01  # admitted only because the SO-PIN is blocked (R13)
FIRMWARE_IDENTITY_KEPT = 0x02  # a faulty loader kept CC00 and 2F02 (R14)
CONTROL_CODES = {
    VPCD_POWER_OFF: "power-off",
    VPCD_POWER_ON: "power-on",
    VPCD_RESET: "reset",
    EVENT_NEW_TOKEN: "new token",
    EVENT_FIRMWARE: "firmware installed",
    EVENT_POWER_CUT: "power cut armed",
    EVENT_RIG_CUT: "power-cut rig armed",
}
APDU_MIN_HEX = 8  # an APDU is at least 4 bytes; anything shorter is an event
MASK_BYTE = 0x2A
MaskSpan = tuple[int, int, str]  # offset in cmd (bytes), length, which secret ("pin" / "so-pin")


@dataclass(frozen=True)
class TraceLine:
    i: int
    t_ms: float
    cmd: str
    rsp: str
    sw: str
    step: str
    state: str
    rules: tuple[str, ...]
    masked: tuple[MaskSpan, ...] = ()

    @property
    def is_control(self) -> bool:
        """A power event or an event of the suite's own, not an APDU."""
        return len(self.cmd) < APDU_MIN_HEX

    @property
    def code(self) -> int:
        return int(self.cmd[:2], 16)

    @property
    def args(self) -> bytes:
        return bytes.fromhex(self.cmd[2:])

    @property
    def torn(self) -> bool:
        """A command that got no answer (the power was cut during it)."""
        return not self.is_control and not self.sw

    def to_json(self) -> str:
        out: dict[str, object] = {
            "i": self.i,
            "t_ms": self.t_ms,
            "cmd": self.cmd,
            "rsp": self.rsp,
            "sw": self.sw,
            "step": self.step,
            "state": self.state,
            "rules": list(self.rules),
        }
        if self.masked:  # only then: unmasked lines keep exactly the architecture.md keys
            out["masked"] = [list(span) for span in self.masked]
        return json.dumps(out)

    @classmethod
    def from_json(cls, text: str) -> "TraceLine":
        raw = json.loads(text)
        return cls(
            i=int(raw["i"]),
            t_ms=float(raw.get("t_ms", 0.0)),
            cmd=str(raw["cmd"]).upper(),
            rsp=str(raw.get("rsp", "")).upper(),
            sw=str(raw.get("sw", "")).upper(),
            step=str(raw.get("step", "")),
            state=str(raw.get("state", "")),
            rules=tuple(raw.get("rules", ())),
            masked=tuple((int(at), int(n), str(which)) for at, n, which in raw.get("masked", ())),
        )


@dataclass
class TraceRecorder:
    """Collects every exchange of one test in memory (so a failure message can show it) and
    writes them to `path`, when given, on `flush` (every 256 lines and when the test ends: one
    write instead of one per APDU keeps 200 hypothesis examples fast). Counts APDUs (power
    events are not APDUs)."""

    path: Path | None = None
    lines: list[TraceLine] = field(default_factory=list)
    _start: float = field(default_factory=time.perf_counter)
    # The context the driver sets before each abstract step.
    step: str = ""
    state: str = ""
    rules: tuple[str, ...] = ()
    # (name, value) of the PINs to mask in stored commands ("pin", "so-pin"); empty: none.
    secrets: tuple[tuple[str, bytes], ...] = ()

    _written: int = 0

    def __post_init__(self) -> None:
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text("", encoding="utf-8")

    def rewrite(self) -> None:
        """Write the whole trace again (this recorder's file may have been truncated by a later
        recorder of the same test, e.g. a later hypothesis example)."""
        if self.path is not None:
            self.path.write_text("".join(line.to_json() + "\n" for line in self.lines), encoding="utf-8")
            self._written = len(self.lines)

    def flush(self) -> None:
        if self.path is None or self._written == len(self.lines):
            return
        with self.path.open("a", encoding="utf-8") as fh:
            fh.writelines(line.to_json() + "\n" for line in self.lines[self._written :])
        self._written = len(self.lines)

    @property
    def apdus(self) -> int:
        return sum(1 for line in self.lines if not line.is_control)

    def context(self, step: str, state: str, rules: tuple[str, ...] = ()) -> None:
        self.step, self.state, self.rules = step, state, tuple(rules)

    def exchange(self, cmd: bytes, rsp: bytes, sw: int | None) -> TraceLine:
        masked: tuple[MaskSpan, ...] = ()
        if self.secrets and len(cmd) >= APDU_MIN_HEX // 2:
            cmd, masked = mask_secrets(cmd, self.secrets)
        line = TraceLine(
            i=len(self.lines),
            t_ms=round((time.perf_counter() - self._start) * 1000.0, 2),
            cmd=cmd.hex().upper(),
            rsp=rsp.hex().upper(),
            sw="" if sw is None else f"{sw:04X}",
            step=self.step,
            state=self.state,
            rules=self.rules,
            masked=masked,
        )
        self.lines.append(line)
        if len(self.lines) - self._written >= 256:
            self.flush()
        return line

    def control(self, code: int, atr: bytes = b"") -> TraceLine:
        return self.exchange(bytes([code]), atr, None)

    def event(self, code: int, args: bytes = b"") -> TraceLine:
        """One of the suite's own events (EVENT_*): what a replay must redo that is no APDU."""
        return self.exchange(bytes([code]) + args, b"", None)

    def render(self, last: int | None = None) -> str:
        """A readable trace for failure messages: `i  state  step  >> cmd  << rsp sw`."""
        shown = self.lines if last is None else self.lines[-last:]
        out = []
        if last is not None and len(self.lines) > last:
            out.append(f"  ... {len(self.lines) - last} earlier exchanges omitted")
        for line in shown:
            if line.is_control:
                what = CONTROL_CODES.get(line.code, line.cmd) + (f" {line.cmd[2:]}" if len(line.cmd) > 2 else "")
                out.append(f"  {line.i:4d} [{line.state}] {line.step}: {what}")
                continue
            out.append(f"  {line.i:4d} [{line.state}] {line.step}: >> {_short(line.cmd)}  << {_short(line.rsp)} {describe_sw(line.sw) if line.sw else '(no answer)'}")
        return "\n".join(out)


def _short(hexdata: str, keep: int = 48) -> str:
    return hexdata if len(hexdata) <= keep else f"{hexdata[:keep]}...({len(hexdata) // 2} bytes)"


def mask_secrets(cmd: bytes, secrets: tuple[tuple[str, bytes], ...]) -> tuple[bytes, tuple[MaskSpan, ...]]:
    """`cmd` with every occurrence of a secret after the header replaced by MASK_BYTE, and where.

    Searching the whole body (not parsing each command's PIN fields) masks a PIN wherever a
    command carries it: VERIFY, CHANGE (old||new), RESET RETRY COUNTER, INITIALIZE's TLVs."""
    out = bytearray(cmd)
    spans: list[MaskSpan] = []
    for name, value in sorted(secrets, key=lambda s: -len(s[1])):  # a longer secret first
        if not value:
            continue
        start = cmd.find(value, 4)
        while start >= 0:
            # Overlapping secrets agree on their common bytes, so both spans can stay.
            if not any(at <= start and start + len(value) <= at + n for at, n, _ in spans):
                out[start : start + len(value)] = bytes([MASK_BYTE]) * len(value)
                spans.append((start, len(value), name))
            start = cmd.find(value, start + len(value))
    return bytes(out), tuple(sorted(spans))


def unmask(line: TraceLine, secrets: dict[str, bytes]) -> bytes:
    """The command as sent, the masked PINs put back from `secrets` (KeyError: one is missing;
    ValueError: a given PIN has another length than the masked one)."""
    cmd = bytearray(bytes.fromhex(line.cmd))
    for at, n, name in line.masked:
        value = secrets[name]
        if len(value) != n:
            raise ValueError(f"APDU {line.i} masks a {name} of {n} bytes; the one given has {len(value)}")
        cmd[at : at + n] = value
    return bytes(cmd)


def read_trace(path: Path) -> Iterator[TraceLine]:
    for text in path.read_text(encoding="utf-8").splitlines():
        if text.strip():
            yield TraceLine.from_json(text)


class TracingTransport(TransportWrapper):
    """Wraps a transport so every exchange (and every power event) lands in a recorder."""

    def __init__(self, inner: Transport, recorder: TraceRecorder) -> None:
        super().__init__(inner)
        self.recorder = recorder

    def connect(self) -> bytes:
        try:
            atr = self.inner.connect()
        except BaseException:
            # The attempt is kept as a power-on without ATR, so the test's trace is not empty.
            self.recorder.control(VPCD_POWER_ON)
            raise
        self.recorder.control(VPCD_POWER_ON, atr)
        return atr

    def transmit(self, capdu: bytes) -> Response:
        try:
            rsp = self.inner.transmit(capdu)
        except BaseException:
            # No answer (power cut, card pulled): the command is kept with an empty SW, then
            # the power-off it amounts to.
            self.recorder.exchange(capdu, b"", None)
            self.recorder.control(VPCD_POWER_OFF)
            raise
        self.recorder.exchange(capdu, rsp.data, rsp.sw)
        return rsp

    def reset(self) -> bytes:
        atr = self.inner.reset()
        self.recorder.control(VPCD_RESET, atr)
        return atr

    def power_cycle(self) -> bytes:
        self.recorder.control(VPCD_POWER_OFF)
        atr = self.inner.power_cycle()
        self.recorder.control(VPCD_POWER_ON, atr)
        return atr

    def reinsert(self, timeout: float) -> bytes:
        atr = self.inner.reinsert(timeout)  # the power-off was recorded with the unanswered command
        self.recorder.control(VPCD_POWER_ON, atr)
        return atr
