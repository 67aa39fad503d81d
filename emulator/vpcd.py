"""The vpcd bridge: serves a virtual card to pcscd through vsmartcard's vpcd driver.

vpcd (a pcscd reader driver) listens on TCP; the virtual card connects to it as a client.
Every message either way is a 2-byte big-endian length and a payload. A 1-byte payload from
vpcd is a control message (00 power off, 01 power on, 02 reset: no answer; 04 get ATR: answer
the ATR); anything else is a command APDU, answered with the R-APDU (shared protocol digest §9).

Speed: vpcd writes the length and the APDU separately with Nagle on, so a delayed ACK from us
stalls each APDU by up to 40 ms. We ACK at once (TCP_QUICKACK, re-armed after every recv
because Linux clears it) and send each reply in one write with TCP_NODELAY.

Besides the bridge this module holds what a client of the bridge needs: the vpcd ports and
reader names pcscd offers (scripts/pcscd.sh exports them), a cross-process port lease, and
`serve_emulator`, which runs `python -m hsm_lifecycle.emulator.vpcd` on a port as a child process.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import fcntl
import logging
import os
import random
import select
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO, Protocol, TypeVar

from hsm_lifecycle.emulator.models import MODELS
from hsm_lifecycle.emulator.profile import Fault, Profile, parse_faults
from hsm_lifecycle.emulator.state import StateFileError
from hsm_lifecycle.emulator.store import PowerLoss
from hsm_lifecycle.emulator.token import VirtualToken
from hsm_lifecycle.protocol import (
    ATR,
    FIRMWARE_UPDATES_WHILE_SO_BLOCKED,
    VPCD_GET_ATR,
    VPCD_PORT,
    VPCD_POWER_OFF,
    VPCD_POWER_ON,
    VPCD_RESET,
)

LOG = logging.getLogger("hsm_lifecycle.vpcd")
_T = TypeVar("_T")

# The R-APDU sent when the card itself fails: "no precise diagnosis" keeps the link alive.
_SW_NO_PRECISE_DIAGNOSIS = bytes.fromhex("6F00")
_RECV_BYTES = 1 << 17  # larger than any vpcd message (2 + 65535)
_CONNECT_TIMEOUT_S = 2.0
# pcscd polls the card's presence (GET ATR) about every 0.4 s; silence for this long after a
# connect means pcscd is not talking to us (usually: another card already holds this port).
_FIRST_MESSAGE_WARN_S = 5.0
_BACKOFF_FIRST_S = 0.05
_BACKOFF_MAX_S = 1.0
_PR_SET_PDEATHSIG = 1  # linux/prctl.h


class _LogLimiter:
    """Warnings about a flapping link: the first few, then one a minute with a count of the
    ones held back, so a pcscd that is down for a day does not fill the disk."""

    def __init__(self, burst: int = 3, every_s: float = 60.0) -> None:
        self._burst = burst
        self._every_s = every_s
        self._sent = 0
        self._held = 0
        self._last = 0.0

    def warning(self, msg: str, *args: object) -> None:
        now = time.monotonic()
        if self._sent < self._burst or now - self._last >= self._every_s:
            if self._held:
                msg += f" ({self._held} similar messages held back)"
            LOG.warning(msg, *args)
            self._sent += 1
            self._held = 0
            self._last = now
        else:
            self._held += 1


class Card(Protocol):
    """What the bridge needs from a card (`emulator.VirtualToken` is one)."""

    def power_on(self) -> bytes: ...

    def power_off(self) -> None: ...

    def reset(self) -> bytes: ...

    def transmit(self, capdu: bytes) -> bytes: ...


class VpcdError(Exception):
    """A vpcd set-up problem the user must fix; the message is one sentence saying what to do."""


@dataclass(frozen=True)
class VpcdAddress:
    host: str
    port: int

    @classmethod
    def parse(cls, text: str) -> "VpcdAddress":
        """'HOST:PORT', ':PORT' or 'HOST' (port 35963)."""
        host, sep, port_text = text.rpartition(":")
        if not sep:
            host, port_text = text, str(VPCD_PORT)
        host = host.strip("[]") or "127.0.0.1"
        try:
            port = int(port_text)
        except ValueError:
            port = -1
        if not 0 < port < 65536:
            raise VpcdError(f"'{text}' is not a vpcd address: write HOST:PORT, e.g. 127.0.0.1:{VPCD_PORT}")
        return cls(host, port)

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


class VpcdBridge:
    """Connects one card to one vpcd port and answers vpcd until `stop()`.

    Reconnects (with back-off) whenever the link drops, e.g. when pcscd restarts; the card is
    powered off while no reader holds it, as a real card pulled from a reader would be.
    `stop()` may be called from another thread or from a signal handler: an APDU being
    processed is finished and answered first, so the card's state never sees half a command.
    """

    def __init__(self, card: Card, address: VpcdAddress, *, atr: bytes = ATR, off_after_cut: float = 1.0) -> None:
        self._card = card
        self._address = address
        self._atr = atr
        # A power cut (PowerLoss out of the card) drops the link like a pulled token; the card
        # stays unpowered this long, so pcscd's presence poll sees it gone before it returns.
        self._off_after_cut = off_after_cut
        self._cut = False
        self.power_cuts = 0
        self._stopping = False
        self._sock: socket.socket | None = None
        # A socket pair wakes the back-off wait: a send is safe inside a signal handler, unlike
        # threading.Event.set (its lock may be held by the very code the signal interrupted),
        # and a closed socket object refuses sends instead of writing to a reused descriptor.
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_w.setblocking(False)
        self._noise = _LogLimiter()
        self.apdus = 0
        self.connections = 0
        self.connect_failures = 0
        self._card_failures = 0
        self._handled = 0
        self._ending = ""

    @property
    def address(self) -> VpcdAddress:
        return self._address

    def stop(self) -> None:
        """Ask `serve()` to return after the current APDU; idempotent."""
        self._stopping = True
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")
        sock = self._sock
        if sock is not None:
            # SHUT_RD wakes a recv blocked on this socket but still lets a reply go out.
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RD)

    def serve(self) -> None:
        """Serve vpcd until `stop()`. Connection failures are retried, never raised."""
        delay = _BACKOFF_FIRST_S
        try:
            while not self._stopping:
                try:
                    sock = socket.create_connection(
                        (self._address.host, self._address.port), timeout=_CONNECT_TIMEOUT_S
                    )
                except OSError as exc:
                    self.connect_failures += 1
                    self._noise.warning("vpcd at %s is not reachable (%s): is pcscd running with the vpcd "
                                        "driver? retrying", self._address, exc.strerror or exc)
                    self._wait(delay)
                    delay = min(delay * 2, _BACKOFF_MAX_S)
                    continue
                self._sock = sock
                handled = 0
                try:
                    if not self._stopping:  # stop() may have run before _sock was visible
                        self.connections += 1
                        LOG.info("connected to vpcd at %s", self._address)
                        handled = self._serve_connection(sock)
                        if not self._stopping and not self._cut:
                            self._noise.warning("vpcd at %s %s (pcscd stopped?); reconnecting",
                                                self._address, self._ending)
                finally:
                    self._sock = None
                    sock.close()
                    # Off the reader, the card loses power and its session.
                    self._call_card(self._card.power_off)
                if self._cut:
                    self._cut = False
                    LOG.info("power cut: the token is off vpcd at %s for %.1f s", self._address, self._off_after_cut)
                    self._wait(self._off_after_cut)
                    delay = _BACKOFF_FIRST_S
                    continue
                # A link that carried traffic was healthy: retry at once. One that closed
                # straight away would otherwise make us spin.
                if handled:
                    delay = _BACKOFF_FIRST_S
                else:
                    self._wait(delay)
                    delay = min(delay * 2, _BACKOFF_MAX_S)
        finally:
            self._wake_r.close()
            self._wake_w.close()

    def _wait(self, seconds: float) -> None:
        if self._stopping:
            return
        readable, _, _ = select.select([self._wake_r], [], [], seconds)
        if readable:
            with contextlib.suppress(OSError):
                self._wake_r.recv(64)

    def _serve_connection(self, sock: socket.socket) -> int:
        """Answer vpcd on one connection until it closes or we stop; returns messages handled."""
        self._handled = 0
        self._ending = "closed the connection"
        try:
            self._answer(sock)
        except OSError as exc:  # a reset or broken link: pcscd went away mid-exchange
            self._ending = f"broke the connection ({exc.strerror or exc})"
        except PowerLoss:  # the command in flight gets no answer: the link drops with the power
            self._cut = True
            self.power_cuts += 1
            self._ending = "lost power (power cut)"
        return self._handled

    def _answer(self, sock: socket.socket) -> None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        quickack = getattr(socket, "TCP_QUICKACK", None)  # Linux only
        setsockopt = sock.setsockopt
        recv = sock.recv
        sendall = sock.sendall
        handle = self._handle
        sock.settimeout(_FIRST_MESSAGE_WARN_S)
        try:
            buf = recv(_RECV_BYTES)
        except TimeoutError:
            LOG.warning("vpcd at %s accepted the connection but sent nothing for %.0f s: another card may "
                        "hold this port; use a free port", self._address, _FIRST_MESSAGE_WARN_S)
            sock.settimeout(None)
            buf = recv(_RECV_BYTES)
        sock.settimeout(None)
        while buf:
            if quickack is not None:
                setsockopt(socket.IPPROTO_TCP, quickack, 1)
            # Answer every complete message in the buffer, then read more.
            while len(buf) >= 2:
                end = ((buf[0] << 8) | buf[1]) + 2
                if len(buf) < end:
                    break
                reply = handle(buf[2:end])
                buf = buf[end:]
                self._handled += 1
                if reply is not None:
                    sendall(len(reply).to_bytes(2, "big") + reply)
                if self._stopping:
                    return
            chunk = recv(_RECV_BYTES)
            if not chunk:
                return
            buf = buf + chunk if buf else chunk

    def _handle(self, message: bytes) -> bytes | None:
        """One vpcd message in, the reply payload out (None: vpcd expects no reply)."""
        if len(message) == 1:
            control = message[0]
            if control == VPCD_GET_ATR:
                return self._atr
            if control == VPCD_POWER_ON:
                self._atr = self._call_card(self._card.power_on) or self._atr
                return None
            if control == VPCD_POWER_OFF:
                self._call_card(self._card.power_off)
                return None
            if control == VPCD_RESET:
                self._atr = self._call_card(self._card.reset) or self._atr
                return None
        self.apdus += 1
        reply = self._call_card(self._card.transmit, message)
        if reply is None or len(reply) < 2 or len(reply) > 0xFFFF:
            if reply is not None:
                LOG.error("the card answered %d bytes, which vpcd cannot carry; sent 6F00", len(reply))
            return _SW_NO_PRECISE_DIAGNOSIS
        return reply

    def _call_card(self, method: Callable[..., _T], *args: bytes) -> _T | None:
        # The card's contract is to never raise; if it does anyway, keep serving and say so
        # (with the traceback the first few times only, so a broken card cannot flood the log).
        try:
            return method(*args)
        except PowerLoss:
            raise
        except Exception:
            self._card_failures += 1
            LOG.error("the card raised on %s (failure %d)", getattr(method, "__name__", method),
                      self._card_failures, exc_info=self._card_failures <= 3)
            return None


def stop_on_signals(bridge: VpcdBridge) -> None:
    """SIGTERM and SIGINT stop the bridge after the current APDU (main thread only)."""
    def handler(signum: int, frame: object) -> None:
        bridge.stop()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


# ---------------------------------------------------------------------------------------
# Running a token: the body of `hsm-lifecycle emulate` and `python -m hsm_lifecycle.emulator.vpcd`.


@contextlib.contextmanager
def _state_lock(state_path: Path) -> Iterator[None]:
    """Two emulators on one state file would silently fork the token: refuse the second."""
    lock_path = state_path.with_name(state_path.name + ".lock")
    try:
        fd = os.open(lock_path, os.O_CREAT | os.O_RDWR, 0o600)
    except OSError as exc:
        raise VpcdError(f"cannot use state file {state_path} ({exc.strerror}): choose a writable place") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise VpcdError(f"state file {state_path} is in use by another emulator: stop it or use "
                            "another state file") from None
        yield
    finally:
        os.close(fd)


def parse_profile(settings: Sequence[str]) -> Profile | None:
    """A Profile from "name=value" settings (names as in docs/design.md or as Profile fields:
    `last-wrong-try-sw=6983`, `auth-after-init=true`, `version=4.1`); None if there are none."""
    if not settings:
        return None
    defaults = Profile().to_json()
    values: dict[str, object] = {}
    for setting in settings:
        name, sep, text = setting.partition("=")
        key = name.strip().replace("-", "_")
        if not sep or key not in defaults:
            names = ", ".join(k.replace("_", "-") for k in defaults)
            raise VpcdError(f"'{setting}' is not a profile setting: write NAME=VALUE with NAME one of {names}")
        default, text = defaults[key], text.strip()
        try:
            if isinstance(default, bool):
                if text.lower() not in ("true", "false"):
                    raise ValueError(f"{key} takes true or false")
                values[key] = text.lower() == "true"
            elif isinstance(default, list):  # version "M.m"
                values[key] = [int(part) for part in text.split(".", 1)]
            elif isinstance(default, int):
                values[key] = int(text)
            elif key == "model":  # a name, not a status word
                values[key] = text.lower()
            else:
                values[key] = text.upper().replace("63CX", "63Cx")
        except ValueError as exc:
            raise VpcdError(f"profile setting '{setting}' has a bad value ({exc}): fix it") from None
    try:
        return Profile.from_json({**defaults, **values})
    except (ValueError, TypeError) as exc:
        raise VpcdError(f"the profile settings are not valid ({exc}): fix them") from None


def profile_settings(profile: Profile) -> list[str]:
    """The "name=value" settings that `parse_profile` turns back into `profile`."""
    settings = []
    for key, value in profile.to_json().items():
        if isinstance(value, bool):
            text = str(value).lower()
        elif isinstance(value, list):
            text = ".".join(map(str, value))
        else:
            text = str(value)
        settings.append(f"{key.replace('_', '-')}={text}")
    return settings


def _parse_faults(names: Sequence[str]) -> frozenset[Fault]:
    try:
        return parse_faults(list(names))
    except ValueError:
        known = ", ".join(f.value for f in Fault)
        raise VpcdError(f"unknown fault in {', '.join(names)}: use one of {known}") from None


def open_or_manufacture(state_path: Path, profile: Profile | None = None,
                        faults: frozenset[Fault] = frozenset(), updates_used: int | None = None) -> tuple[VirtualToken, bool]:
    """The token persisted in `state_path`, or a freshly manufactured one saved there (with
    `updates_used` SO-blocked firmware updates behind it). Returns (token, created)."""
    if state_path.exists():
        try:
            token = VirtualToken.open(state_path, faults=faults)
        except (StateFileError, OSError) as exc:
            raise VpcdError(f"cannot load the token in {state_path} ({exc}): restore the file or use a new "
                            "state file") from None
        if profile is not None and token.profile != profile:
            raise VpcdError(f"{state_path} holds a token with another profile: drop --profile or use a new "
                            "state file")
        if updates_used is not None and token.status().so_blocked_updates != updates_used:
            raise VpcdError(f"{state_path} holds a token with {token.status().so_blocked_updates} SO-blocked updates behind it, "
                            f"not {updates_used}: drop --updates-used or use a new state file")
        return token, False
    if not state_path.parent.is_dir():
        raise VpcdError(f"directory {state_path.parent} does not exist: create it or choose another state file")
    return VirtualToken.manufacture(state_path=state_path, profile=profile or Profile(), faults=faults,
                                    updates_used=updates_used or 0), True


def run(address: VpcdAddress, state_path: Path, *, profile: Profile | None = None,
        faults: frozenset[Fault] = frozenset(), out: IO[str] | None = None,
        portal: Path | None = None, portal_faults: frozenset = frozenset(), updates_used: int | None = None,
        power_rig: Path | None = None) -> int:
    """Serve the token in `state_path` (created if absent) on vpcd until SIGTERM/SIGINT;
    with `portal`, the simulated firmware-update portal on that Unix socket too; with
    `power_rig`, a scripted power-cut rig on that Unix socket (emulator.power_rig)."""
    out = out or sys.stdout
    try:
        socket.getaddrinfo(address.host, address.port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise VpcdError(f"cannot resolve vpcd host '{address.host}' ({exc.strerror}): give an IP address or a "
                        "known host name") from None
    with _state_lock(state_path):
        token, created = open_or_manufacture(state_path, profile, faults, updates_used)
        server = rig_server = None
        card: Card = token
        import threading

        lock = threading.Lock()  # the bridge, the portal and the rig reach the token one at a time
        if portal is not None:
            from hsm_lifecycle.emulator.portal_service import PortalServer, PortalService, SharedCard

            card = SharedCard(token, lock)
            try:
                server = PortalServer(portal, PortalService(token, lock, portal_faults)).start()
            except OSError as exc:
                raise VpcdError(f"cannot serve the portal on {portal} ({exc.strerror or exc}): choose another socket path") from None
        off_after_cut = 1.0
        if power_rig is not None:
            from hsm_lifecycle.emulator.power_rig import OFF_SECONDS, PowerRigServer, PowerRigService, RiggedCard

            rig = PowerRigService(token, lock)
            card, off_after_cut = RiggedCard(token, rig), OFF_SECONDS
            try:
                rig_server = PowerRigServer(power_rig, rig).start()
            except OSError as exc:
                if server is not None:
                    server.close()
                raise VpcdError(f"cannot serve the power-cut rig on {power_rig} ({exc.strerror or exc}): choose another socket path") from None
        bridge = VpcdBridge(card, address, atr=token.atr, off_after_cut=off_after_cut)
        stop_on_signals(bridge)
        origin = "new token" if created else "token"
        # The one line a caller waits for (serve_emulator parses it): serial and address.
        where = f", portal {portal}" if portal is not None else ""
        where += f", power-cut rig {power_rig}" if power_rig is not None else ""
        print(f"{origin} {token.serial} on vpcd {address} (state {state_path}{where})", file=out, flush=True)
        try:
            bridge.serve()
        finally:
            for each in (server, rig_server):
                if each is not None:
                    each.close()
        LOG.info("stopped after %d APDUs", bridge.apdus)
    return 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `hsm-lifecycle emulate` and `python -m hsm_lifecycle.emulator.vpcd`."""
    parser.add_argument("--vpcd", default=f"127.0.0.1:{VPCD_PORT}", metavar="HOST:PORT",
                        help=f"vpcd reader to serve (default 127.0.0.1:{VPCD_PORT}: reader 'Virtual PCD 00 00')")
    parser.add_argument("--state", required=True, type=Path, metavar="FILE",
                        help="token state file; a new token is manufactured into it if absent")
    parser.add_argument("--profile", action="append", default=[], metavar="NAME=VALUE",
                        help="open behaviour of a new token, e.g. last-wrong-try-sw=6983 (repeatable)")
    parser.add_argument("--model", choices=sorted(MODELS), default=None,
                        help="device a new token poses as: its ATR, applet version and key sizes (default smartcard-hsm)")
    parser.add_argument("--fault", action="append", default=[], metavar="FAULT",
                        help="break one rule on purpose, for testing the suite (repeatable; not persisted)")
    parser.add_argument("--portal", type=Path, metavar="SOCKET",
                        help="also serve the simulated firmware-update portal on this Unix socket, for a "
                        "scripted operator (requests: update, updates, login HEXPIN, ping)")
    parser.add_argument("--updates-used", type=int, default=None, metavar="N",
                        help="a new token has had N firmware updates admitted only because its SO-PIN was blocked "
                        "(0..5, persisted in the state file; the portal's 'updates' request shows it)")
    parser.add_argument("--power-rig", type=Path, metavar="SOCKET",
                        help="also serve a scripted power-cut rig on this Unix socket: the token loses power at an armed "
                        "moment, e.g. the next PIN check (requests: arm pin-check|try-spent|apdu, disarm, status, ping)")


def run_from_args(args: argparse.Namespace, *, log_prefix: str) -> int:
    """Run with parsed `add_arguments` options; VpcdError for a user mistake."""
    logging.basicConfig(level=logging.INFO, format=f"{log_prefix}: %(message)s")
    from hsm_lifecycle.emulator.portal import PortalFault

    portal_names = {f.value for f in PortalFault}
    portal_faults = frozenset(PortalFault(n) for n in args.fault if n in portal_names)
    used = getattr(args, "updates_used", None)
    if used is not None and not 0 <= used <= FIRMWARE_UPDATES_WHILE_SO_BLOCKED:
        raise VpcdError(f"--updates-used must be 0..{FIRMWARE_UPDATES_WHILE_SO_BLOCKED}: a token gets 5 updates for a blocked SO-PIN")
    return run(VpcdAddress.parse(args.vpcd), args.state, profile=profile_from_args(args),
               faults=_parse_faults([n for n in args.fault if n not in portal_names]),
               portal=getattr(args, "portal", None), portal_faults=portal_faults, updates_used=used,
               power_rig=getattr(args, "power_rig", None))


def profile_from_args(args: argparse.Namespace) -> Profile | None:
    """--profile settings, posing as --model (at the model's applet version unless --profile
    sets one); None when neither is given (an existing token keeps its own)."""
    profile = parse_profile(args.profile)
    if not getattr(args, "model", None):
        return profile
    base = profile or Profile()
    version = base.version if _sets_version(args.profile) else MODELS[args.model].version
    return replace(base, model=args.model, version=version)


def _sets_version(settings: Sequence[str]) -> bool:
    return any(s.partition("=")[0].strip() == "version" for s in settings)


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m hsm_lifecycle.emulator.vpcd`: serve a token to pcscd's vpcd reader (no CLI package needed)."""
    parser = argparse.ArgumentParser(prog="python -m hsm_lifecycle.emulator.vpcd", description=main.__doc__)
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run_from_args(args, log_prefix="emulator")
    except VpcdError as exc:
        print(f"emulator: {exc}", file=sys.stderr)
        return 2


# ---------------------------------------------------------------------------------------
# For clients: which vpcd ports pcscd offers, leasing one, running an emulator on it.

# Debian's vsmartcard-vpcd entry: one driver instance, two slots on 35963 and 35964.
_DEFAULT_READERS = {VPCD_PORT: "Virtual PCD 00 00", VPCD_PORT + 1: "Virtual PCD 00 01"}


def vpcd_readers(environ: dict[str, str] | None = None) -> dict[int, str]:
    """vpcd port -> pcscd reader name. scripts/pcscd.sh exports HSM_VPCD_READERS
    ("35963=Virtual PCD 00 00;35964=..."); without it, Debian's default two readers."""
    text = (os.environ if environ is None else environ).get("HSM_VPCD_READERS", "")
    readers: dict[int, str] = {}
    for item in filter(None, (part.strip() for part in text.split(";"))):
        port, sep, name = item.partition("=")
        if not sep or not port.strip().isdigit() or not name.strip():
            raise VpcdError(f"HSM_VPCD_READERS has a malformed entry '{item}': write PORT=READER NAME")
        readers[int(port)] = name.strip()
    return readers or dict(_DEFAULT_READERS)


def vpcd_readers_from_names(names: Sequence[str]) -> dict[int, str]:
    """The vpcd readers among pcscd's reader names, by scripts/pcscd.sh's naming: Debian's
    "Virtual PCD 00 0s" (ports 35963 + s) and "Virtual PCD <port> 00 0s" (port + s)."""
    readers: dict[int, str] = {}
    for name in names:
        words = name.split()
        if words[:2] != ["Virtual", "PCD"] or len(words) not in (4, 5) or words[-2] != "00":
            continue
        base = int(words[2]) if len(words) == 5 and words[2].isdigit() else VPCD_PORT
        if words[-1] in ("00", "01") and (len(words) == 4 or base != VPCD_PORT):
            readers[base + int(words[-1])] = name
    return dict(sorted(readers.items()))


def _lease_dir() -> Path:
    # One directory per machine, shared by every user and process that serves on vpcd
    # (sticky and world-writable like /tmp, since pcscd and its ports are machine-wide too).
    path = Path(os.environ.get("HSM_VPCD_LEASE_DIR") or Path(tempfile.gettempdir()) / "hsm-lifecycle-vpcd")
    if not path.is_dir():
        path.mkdir(exist_ok=True)
        with contextlib.suppress(OSError):
            path.chmod(0o1777)
    return path


@contextlib.contextmanager
def lease_ports(count: int, ports: Sequence[int] | None = None, *, wait: float = 0.0,
                usable: Callable[[int], bool] | None = None) -> Iterator[list[int]]:
    """Exclusive claims on `count` vpcd ports at once, across processes (pytest-xdist workers,
    the plugin, the tests), held until the block ends or the process dies. A vpcd port takes
    one card: a second emulator on it would wait unseen in the listen backlog. All or none:
    two clients each holding one port while waiting for a second would deadlock. `wait`:
    seconds to wait for ports to free up before giving up. `usable(port)`: a further check,
    e.g. that pcscd shows the port's reader empty (an emulator started by hand holds no lease)."""
    candidates = list(ports if ports is not None else vpcd_readers())
    directory = _lease_dir()
    deadline = time.monotonic() + wait
    while True:
        held: list[tuple[int, int]] = []
        for port in candidates:
            fd = os.open(directory / f"{port}.lock", os.O_CREAT | os.O_RDONLY, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            if usable is not None and not usable(port):
                os.close(fd)
                continue
            held.append((port, fd))
            if len(held) == count:
                break
        if len(held) == count:
            try:
                yield [port for port, _ in held]
            finally:
                for _, fd in held:
                    os.close(fd)
            return
        for _, fd in held:
            os.close(fd)
        if time.monotonic() >= deadline:
            raise VpcdError(f"{count} of the {len(candidates)} vpcd ports ({', '.join(map(str, candidates))}) are "
                            "not free: other emulators lease or hold them; stop some (opensc-tool -l shows the "
                            "readers with a card), or give pcscd more vpcd readers (scripts/pcscd.sh)")
        time.sleep(0.05 + random.random() * 0.1)  # jitter: contenders do not retry in lockstep


@contextlib.contextmanager
def lease_port(ports: Sequence[int] | None = None, *, wait: float = 0.0,
               usable: Callable[[int], bool] | None = None) -> Iterator[int]:
    """`lease_ports` for a single port."""
    with lease_ports(1, ports, wait=wait, usable=usable) as leased:
        yield leased[0]


class EmulatorProcess:
    """An emulator serving one token on one vpcd port, as a child process."""

    def __init__(self, proc: subprocess.Popen[str], address: VpcdAddress, state_path: Path,
                 log_path: Path, serial: str) -> None:
        self.proc = proc
        self.address = address
        self.state_path = state_path
        self.log_path = log_path
        self.serial = serial

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def port(self) -> int:
        return self.address.port

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log(self) -> str:
        """What the emulator logged (stderr) so far."""
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM (the token finishes its APDU and exits 0); SIGKILL after `timeout`."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def kill(self) -> None:
        """SIGKILL: the card vanishes from the reader, like a token yanked out mid-command."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


def _stop_with_parent() -> Callable[[], None] | None:
    """A preexec_fn asking Linux to SIGTERM the child when its parent dies, so a test run that
    is killed leaves no emulator holding a vpcd port. None where prctl does not exist."""
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up before fork, not in the child
    parent = os.getpid()

    def arm() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os.kill(os.getpid(), signal.SIGTERM)

    return arm


def start_emulator(port: int, state_path: Path, *, host: str = "127.0.0.1", profile: Profile | None = None,
                   faults: Sequence[str] = (), ready_timeout: float = 30.0,
                   log_path: Path | None = None, portal: Path | None = None, updates_used: int | None = None,
                   power_rig: Path | None = None) -> EmulatorProcess:
    """Start `python -m hsm_lifecycle.emulator.vpcd` on `host:port` for `state_path` and wait for its ready
    line. Its log (stderr) goes to `log_path` (default: next to the state file). Raises
    VpcdError, quoting the log, if it does not come up. The emulator gets SIGTERM when the
    thread that started it ends (Linux PR_SET_PDEATHSIG): start it from a long-lived thread."""
    address = VpcdAddress(host, port)
    log_path = log_path or state_path.with_name(state_path.name + ".log")
    command = [sys.executable, "-m", "hsm_lifecycle.emulator.vpcd", "--vpcd", str(address), "--state", str(state_path)]
    for setting in profile_settings(profile) if profile is not None else []:
        command += ["--profile", setting]
    for fault in faults:
        command += ["--fault", fault]
    if portal is not None:
        command += ["--portal", str(portal)]
    if updates_used is not None:
        command += ["--updates-used", str(updates_used)]
    if power_rig is not None:
        command += ["--power-rig", str(power_rig)]
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL, text=True,
                                preexec_fn=_stop_with_parent())
    assert proc.stdout is not None
    readable, _, _ = select.select([proc.stdout], [], [], ready_timeout)
    line = proc.stdout.readline() if readable else ""
    proc.stdout.close()  # the emulator prints nothing after its ready line
    words = line.split()
    if proc.poll() is not None or "on" not in words:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        last = log_path.read_text(errors="replace").strip().splitlines()[-1:] or ["no output"]
        raise VpcdError(f"the emulator for {state_path} on vpcd {address} did not start ({last[0]}): see {log_path}")
    serial = words[words.index("on") - 1]
    return EmulatorProcess(proc, address, state_path, log_path, serial)


@contextlib.contextmanager
def serve_emulator(port: int, state_path: Path, *, host: str = "127.0.0.1", profile: Profile | None = None,
                   faults: Sequence[str] = (), ready_timeout: float = 30.0,
                   portal: Path | None = None, updates_used: int | None = None,
                   power_rig: Path | None = None) -> Iterator[EmulatorProcess]:
    """Run an emulator on a vpcd port for the block; stop it (SIGTERM) afterwards.
    Pair it with `lease_port()`, and `vpcd_readers()[port]` for the reader name."""
    emulator = start_emulator(port, state_path, host=host, profile=profile, faults=faults,
                              ready_timeout=ready_timeout, portal=portal, updates_used=updates_used, power_rig=power_rig)
    try:
        yield emulator
    finally:
        emulator.stop()


if __name__ == "__main__":
    sys.exit(main())
