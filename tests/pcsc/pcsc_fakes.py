"""Test doubles for the vpcd bridge: a card that records what it is asked, and a TCP server
that speaks vpcd's side of the protocol (as pcscd's vpcd driver would), so the bridge can be
tested without pcscd, including what pcscd cannot easily be made to do (vanish, come back).
"""

from __future__ import annotations

import socket
import threading
import time

from hsm_lifecycle.protocol import ATR, VPCD_GET_ATR, VPCD_POWER_OFF, VPCD_POWER_ON, VPCD_RESET

# The contactless SmartCard-HSM ATR (§1): a card whose ATR differs from the default one.
OTHER_ATR = bytes.fromhex("3B8E80018031815448534D3173802140810718")


class RecordingCard:
    """Answers every APDU with `reply` (default 9000) after `delay` seconds; records events."""

    def __init__(self, reply: bytes = b"\x90\x00", delay: float = 0.0, atr: bytes = ATR) -> None:
        self.events: list[str] = []
        self.apdus: list[bytes] = []
        self.reply = reply
        self.delay = delay
        self.atr = atr
        self.raise_on_transmit = False
        self.transmit_started = threading.Event()

    def power_on(self) -> bytes:
        self.events.append("on")
        return self.atr

    def power_off(self) -> None:
        self.events.append("off")

    def reset(self) -> bytes:
        self.events.append("reset")
        return self.atr

    def transmit(self, capdu: bytes) -> bytes:
        self.transmit_started.set()
        self.apdus.append(capdu)
        if self.delay:
            time.sleep(self.delay)
        if self.raise_on_transmit:
            raise RuntimeError("card bug")
        self.events.append("apdu")
        return self.reply


class FakeVpcd:
    """vpcd's side: listens on 127.0.0.1, accepts the card, sends messages, reads replies.

    `split=True` writes the length prefix and the payload separately with Nagle on, as the
    vpcd in Debian's vsmartcard-vpcd does; that is what makes delayed ACKs hurt.
    """

    def __init__(self, port: int = 0) -> None:
        self._listener = socket.create_server(("127.0.0.1", port), reuse_port=False)
        self.port = self._listener.getsockname()[1]
        self.conn: socket.socket | None = None

    def accept(self, timeout: float = 10.0) -> socket.socket:
        self._listener.settimeout(timeout)
        conn, _ = self._listener.accept()
        conn.settimeout(timeout)
        self.conn = conn
        return conn

    def send(self, payload: bytes, *, split: bool = False) -> None:
        assert self.conn is not None
        prefix = len(payload).to_bytes(2, "big")
        if split:
            self.conn.sendall(prefix)
            self.conn.sendall(payload)
        else:
            self.conn.sendall(prefix + payload)

    def receive(self) -> bytes:
        assert self.conn is not None
        size = int.from_bytes(self._read_exactly(2), "big")
        return self._read_exactly(size)

    def _read_exactly(self, n: int) -> bytes:
        assert self.conn is not None
        data = b""
        while len(data) < n:
            chunk = self.conn.recv(n - len(data))
            if not chunk:
                raise ConnectionError("the card closed the connection")
            data += chunk
        return data

    def exchange(self, apdu: bytes, *, split: bool = False) -> bytes:
        self.send(apdu, split=split)
        return self.receive()

    def control(self, code: int) -> None:
        self.send(bytes([code]))

    def get_atr(self) -> bytes:
        self.send(bytes([VPCD_GET_ATR]))
        return self.receive()

    def drop(self) -> None:
        """Close the card's connection, as vpcd does when pcscd stops."""
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def close(self) -> None:
        self.drop()
        self._listener.close()


POWER_OFF, POWER_ON, RESET = VPCD_POWER_OFF, VPCD_POWER_ON, VPCD_RESET


def wait_until(predicate, timeout: float = 5.0, interval: float = 0.01) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()
