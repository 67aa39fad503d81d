"""APDU traces in the JSON Lines format of architecture.md.

One exchange a line: `{"i", "t_ms", "cmd", "rsp", "sw", "step", "state", "rules"}`, hex
upper-case without spaces. `state` is the model's abstract state *before* the step (the state
the command was sent in). Power events are written in vsmartcard's vpcd control vocabulary as a
1-byte `cmd` (a real APDU is at least 4 bytes, so they cannot be confused): "00" power off,
"01" power on and "02" reset, with the ATR in `rsp` and an empty `sw`. A trace therefore
replays against any target (`hsm-lifecycle replay`).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from conformance.transport.base import Response, Transport
from hsm_lifecycle.protocol import VPCD_POWER_OFF, VPCD_POWER_ON, VPCD_RESET

CONTROL_CODES = {VPCD_POWER_OFF: "power-off", VPCD_POWER_ON: "power-on", VPCD_RESET: "reset"}


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

    @property
    def is_control(self) -> bool:
        return len(self.cmd) == 2

    @property
    def torn(self) -> bool:
        """A command that got no answer (the power was cut during it)."""
        return not self.is_control and not self.sw

    def to_json(self) -> str:
        return json.dumps(
            {
                "i": self.i,
                "t_ms": self.t_ms,
                "cmd": self.cmd,
                "rsp": self.rsp,
                "sw": self.sw,
                "step": self.step,
                "state": self.state,
                "rules": list(self.rules),
            }
        )

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
        line = TraceLine(
            i=len(self.lines),
            t_ms=round((time.perf_counter() - self._start) * 1000.0, 2),
            cmd=cmd.hex().upper(),
            rsp=rsp.hex().upper(),
            sw="" if sw is None else f"{sw:04X}",
            step=self.step,
            state=self.state,
            rules=self.rules,
        )
        self.lines.append(line)
        if len(self.lines) - self._written >= 256:
            self.flush()
        return line

    def control(self, code: int, atr: bytes = b"") -> TraceLine:
        return self.exchange(bytes([code]), atr, None)

    def render(self, last: int | None = None) -> str:
        """A readable trace for failure messages: `i  state  step  >> cmd  << rsp sw`."""
        shown = self.lines if last is None else self.lines[-last:]
        out = []
        if last is not None and len(self.lines) > last:
            out.append(f"  ... {len(self.lines) - last} earlier exchanges omitted")
        for line in shown:
            if line.is_control:
                what = CONTROL_CODES.get(int(line.cmd, 16), line.cmd)
                out.append(f"  {line.i:4d} [{line.state}] {line.step}: {what}")
                continue
            out.append(f"  {line.i:4d} [{line.state}] {line.step}: >> {_short(line.cmd)}  << {_short(line.rsp)} {line.sw or '(no answer)'}")
        return "\n".join(out)


def _short(hexdata: str, keep: int = 48) -> str:
    return hexdata if len(hexdata) <= keep else f"{hexdata[:keep]}...({len(hexdata) // 2} bytes)"


def read_trace(path: Path) -> Iterator[TraceLine]:
    for text in path.read_text(encoding="utf-8").splitlines():
        if text.strip():
            yield TraceLine.from_json(text)


class TracingTransport(Transport):
    """Wraps a transport so every exchange (and every power event) lands in a recorder."""

    def __init__(self, inner: Transport, recorder: TraceRecorder) -> None:
        self.inner = inner
        self.recorder = recorder

    def connect(self) -> bytes:
        atr = self.inner.connect()
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

    def close(self) -> None:
        self.inner.close()

    def describe(self) -> dict[str, str]:
        return self.inner.describe()
