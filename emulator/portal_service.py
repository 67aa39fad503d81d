"""The simulated firmware-update portal served beside a persistent emulated token.

`hsm-lifecycle emulate --portal SOCKET` serves the token to pcscd through vpcd AND listens on a
local Unix socket where a scripted operator (conformance.operator.SocketPrompter) does what a
person would do at PKI-as-a-Service: log in with a working HSM and update the token, or log in
with the token itself. So the operator steps of a campaign run against a token served through
pcscd, end to end, without a person.

Protocol: one line per request, one line back.
    update            -> update-ok | update-refused-keys | update-refused-limit | update-refused-device
    updates           -> updates-used N (the token's SO-blocked updates so far; changes nothing)
    login HEXPIN      -> login-ok | login-refused:<why>
    ping              -> pong
Anything else answers "error: <one sentence>". The portal talks to the token directly, as the
real portal's client would through its own reader, in a fresh card session; the token is shared
with the vpcd bridge under one lock, so an APDU from pcscd never interleaves with the portal's.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from hsm_lifecycle import cvc
from hsm_lifecycle.emulator.portal import (
    LoginVerdict,
    PluggedDevice,
    Portal,
    PortalFault,
    PortalSession,
    TokenLoader,
    working_hsm,
)
from hsm_lifecycle.emulator.line_server import LineServer
from hsm_lifecycle.emulator.token import VirtualToken

LOG = logging.getLogger("hsm_lifecycle.portal")
ACCOUNT = "operator@portal.invalid"  # the scripted operator's account in the simulation
ACCOUNT_PIN = b"135790"  # user PIN of the operator's own working HSM
MAX_LINE = 4096
UPDATES_USED = "updates-used"


class SharedCard:
    """The token as the vpcd bridge sees it: every call under the lock the portal also takes."""

    def __init__(self, token: VirtualToken, lock: threading.Lock) -> None:
        self._token = token
        self._lock = lock

    def power_on(self) -> bytes:
        with self._lock:
            return self._token.power_on()

    def power_off(self) -> None:
        with self._lock:
            self._token.power_off()

    def reset(self) -> bytes:
        with self._lock:
            return self._token.reset()

    def transmit(self, capdu: bytes) -> bytes:
        with self._lock:
            return self._token.transmit(capdu)


@dataclass
class PortalService:
    """The portal's answers to the scripted operator, for one token."""

    token: VirtualToken
    lock: threading.Lock
    faults: frozenset[PortalFault] = frozenset()
    portal: Portal = field(init=False)
    _session: PortalSession | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.portal = Portal(root=cvc.load_test_root(), faults=self.faults)

    def handle(self, line: str) -> str:
        words = line.split()
        if not words:
            return "error: empty request; use update, updates, login HEXPIN or ping"
        verb, args = words[0].lower(), words[1:]
        if verb == "ping":
            return "pong"
        if verb == "updates" and not args:
            with self.lock:
                return f"{UPDATES_USED} {self.token.status().so_blocked_updates}"
        if verb == "update" and not args:
            with self.lock, self._card_session():
                return self._account().update(self._device()).verdict.value
        if verb == "login" and len(args) == 1:
            try:
                pin = bytes.fromhex(args[0])
            except ValueError:
                return "error: login takes the user PIN as hex digits"
            with self.lock, self._card_session():
                result = self.portal.login(self._device(), pin, email=ACCOUNT)
            if result.verdict is LoginVerdict.OK:
                return result.verdict.value
            return f"{result.verdict.value}:{result.refusal.value if result.refusal else ''}"
        return f"error: unknown request {line.strip()[:40]!r}; use update, updates, login HEXPIN or ping"

    @contextlib.contextmanager
    def _card_session(self) -> Iterator[None]:
        """The portal's reader resets the card first: whatever session was open is gone."""
        if self.token.powered:
            self.token.reset()
        else:
            self.token.power_on()
        yield

    def _device(self) -> PluggedDevice:
        return PluggedDevice(self.token.transmit, TokenLoader(self.token))

    def _account(self) -> PortalSession:
        """The operator's account, logged in once with their own working HSM."""
        if self._session is None:
            hsm = working_hsm(ACCOUNT_PIN)
            result = self.portal.login(PluggedDevice.of(hsm), ACCOUNT_PIN, email=ACCOUNT)
            if result.session is None:
                raise RuntimeError(f"the operator's working HSM could not log into the simulated portal: {result.refusal}")
            self._session = result.session
        return self._session


class PortalServer(LineServer):
    """A Unix-socket server for one `PortalService`, on a daemon thread."""

    def __init__(self, path: Path, service: PortalService) -> None:
        super().__init__(path, service, "portal", LOG, MAX_LINE)

    def start(self) -> PortalServer:
        super().start()
        return self

def ask_portal(path: Path, request: str, timeout_s: float = 60.0) -> str:
    """One request to a portal socket, its one-line answer (OSError if nobody listens)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout_s)
        sock.connect(str(path))
        sock.sendall(request.strip().encode() + b"\n")
        with sock.makefile("rb") as stream:
            return stream.readline().decode("utf-8", "replace").strip()


def parse_updates_used(answer: str) -> int | None:
    """The count in an `updates` answer; None for anything else (an older portal)."""
    words = answer.split()
    if len(words) == 2 and words[0] == UPDATES_USED and words[1].isdigit():
        return int(words[1])
    return None
