"""Helpers for the doctor tests: tokens in each abstract state, built on the in-process
emulator through APDUs (the mapper drives them, as the suite would), and a transport spy that
records what doctor sends."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from hsm_lifecycle.conformance.mapper import Mapper
from hsm_lifecycle.conformance.transport.base import Response, Transport, TransportWrapper
from hsm_lifecycle.conformance.transport.inprocess import InProcessTransport
from hsm_lifecycle.emulator import VirtualToken
from hsm_lifecycle.model.commands import RIGHT, WRONG, Command


@dataclass
class SpyTransport(TransportWrapper):
    """Records every command APDU that reaches the token, below doctor's own guard."""

    inner: Transport
    sent: list[bytes] = field(default_factory=list)

    def transmit(self, capdu: bytes) -> Response:
        self.sent.append(bytes(capdu))
        return self.inner.transmit(capdu)


@dataclass
class Built:
    token: VirtualToken
    transport: InProcessTransport
    keys: int


def build_token(
    *,
    so_wrong: int = 0,
    user_wrong: int = 0,
    keys: int = 0,
    initialize: bool = True,
    options: int = 0x0001,
    state_path: Path | None = None,
) -> Built:
    """A token initialized with the tools' defaults (SO-PIN 3537363231383830, PIN 648219,
    3 tries, `options`), with `keys` keys, then `so_wrong` wrong SO-PINs (as INITIALIZE, like
    the forum thread) and `user_wrong` wrong user PINs."""
    token = VirtualToken.manufacture(state_path=state_path)
    transport = InProcessTransport(token)
    transport.connect()
    mapper = Mapper(transport)
    assert mapper.select().sw == 0x9000
    if initialize:
        assert mapper.run(Command.initialize(RIGHT, options, 3), uninitialized=True) == "9000"
        for _ in range(keys):
            assert mapper.run(Command.verify_user(RIGHT), uninitialized=False) == "9000"
            assert mapper.run(Command.generate_key(), uninitialized=False) == "9000"
        for _ in range(so_wrong):
            assert mapper.run(Command.initialize(WRONG, options, 3), uninitialized=False) != "9000"
        for _ in range(user_wrong):
            assert mapper.run(Command.verify_user(WRONG), uninitialized=False) != "9000"
    transport.close()
    return Built(token, transport, keys)


def firmware_reset_token() -> tuple[Built, str]:
    """An SO-blocked token with a key, updated through the emulator's portal (logged in with a
    second, working HSM, as the story requires): returns it and its serial before the update."""
    from hsm_lifecycle.emulator.portal import Portal, PluggedDevice, working_hsm

    built = build_token(so_wrong=15, keys=1)
    old_serial = built.token.serial
    working = working_hsm(b"648219")
    working.power_on()
    built.token.power_on()
    login = Portal().login(PluggedDevice.of(working), b"648219", email="owner@example.org")
    assert login.session is not None, login.refusal
    result = login.session.update(PluggedDevice.of(built.token))
    assert result.verdict.value == "update-ok", result.message
    built.token.power_off()
    return Built(built.token, InProcessTransport(built.token), 0), old_serial


# The abstract states (rules.md) reachable through APDUs alone; firmware-reset needs the portal.
STATE_RECIPES: dict[str, dict[str, object]] = {
    "shipped": {"initialize": False},
    "initialized": {"so_wrong": 8, "user_wrong": 1, "keys": 2},  # the forum thread's token
    "user-blocked": {"user_wrong": 3, "keys": 1},
    "so-blocked": {"so_wrong": 15, "keys": 1},
    "both-blocked": {"so_wrong": 15, "user_wrong": 3},
}


