"""Helpers for the PC/SC tests: emulators on leased vpcd ports, and reader states.

A module of its own (not conftest.py) so that test modules can import it by a name no other
test directory uses.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from pathlib import Path

from smartcard import scard

from hsm_lifecycle.conformance.transport.pcsc import PcscTransport, empty_vpcd_port
from hsm_lifecycle.emulator import Profile
from hsm_lifecycle.emulator.vpcd import EmulatorProcess, lease_ports, start_emulator, vpcd_readers

# How long a test waits for pcscd to see a card arrive or leave (it polls every ~0.4 s).
CARD_SETTLE_S = 10.0


def reader_state(reader: str) -> int:
    rv, context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
    assert rv == scard.SCARD_S_SUCCESS, scard.SCardGetErrorMessage(rv)
    try:
        rv, states = scard.SCardGetStatusChange(context, 0, [(reader, scard.SCARD_STATE_UNAWARE)])
        assert rv == scard.SCARD_S_SUCCESS, scard.SCardGetErrorMessage(rv)
        return states[0][1]
    finally:
        scard.SCardReleaseContext(context)


def wait_reader_empty(reader: str, timeout: float = CARD_SETTLE_S) -> None:
    deadline = time.monotonic() + timeout
    while reader_state(reader) & scard.SCARD_STATE_PRESENT:
        assert time.monotonic() < deadline, f"pcscd still sees a card in '{reader}' after {timeout} s"
        time.sleep(0.05)


@dataclass
class Served:
    """An emulator serving a token on a vpcd port, and the reader pcscd shows it in."""

    emulator: EmulatorProcess
    port: int
    reader: str
    state: Path

    def transport(self) -> PcscTransport:
        return PcscTransport(self.reader, card_timeout=CARD_SETTLE_S)


class Emulators:
    """Starts emulators on leased vpcd ports; stops them, and waits for pcscd to notice,
    when the test ends, so the next test finds an empty reader."""

    def __init__(self, stack: contextlib.ExitStack, tmp_path: Path) -> None:
        self._stack = stack
        self._tmp_path = tmp_path
        self._count = 0

    def start(self, state: Path | None = None, *, port: int | None = None, ports: list[int] | None = None,
              profile: Profile | None = None) -> Served:
        self._count += 1
        state = state or self._tmp_path / f"token{self._count}.json"
        if port is None:
            port = self._free_port(ports)
        reader = vpcd_readers()[port]
        emulator = start_emulator(port, state, profile=profile,
                                  log_path=self._tmp_path / f"emulator{self._count}.log")
        self._stack.callback(wait_reader_empty, reader)
        self._stack.callback(emulator.stop)
        return Served(emulator, port, reader, state)

    def restart(self, served: Served) -> Served:
        """Stop (SIGTERM) and start again on the same port and state file."""
        assert served.emulator.stop() == 0
        wait_reader_empty(served.reader)
        return self.start(served.state, port=served.port)

    def lease(self) -> tuple[int, str]:
        """A vpcd port (and its reader) with no emulator on it, for the test's own use."""
        port = self._free_port(None)
        return port, vpcd_readers()[port]

    def _free_port(self, ports: list[int] | None) -> int:
        return self.free_ports(1, ports)[0]

    def free_ports(self, count: int, ports: list[int] | None = None) -> list[int]:
        """`count` leased vpcd ports whose readers are empty, held until the test ends."""
        return self._stack.enter_context(lease_ports(count, ports, wait=60, usable=empty_vpcd_port))
