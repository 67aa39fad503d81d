"""Tokens in given lifecycle states for the portal's tests (driven with the suite's mapper)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from hsm_lifecycle.conformance.mapper import Mapper, PinBook
from hsm_lifecycle.conformance.transport.inprocess import InProcessTransport
from hsm_lifecycle.emulator import VirtualToken
from hsm_lifecycle import cvc
from hsm_lifecycle.emulator.portal import PluggedDevice, Portal, PortalSession, working_hsm
from hsm_lifecycle.protocol import DEFAULT_USER_PIN, OPTION_RESET_RETRY_COUNTER, OPTION_TRANSPORT_PIN
from hsm_lifecycle.model.commands import Command

OWNER_PINS = ("--hsm-pin", "648219", "--hsm-so-pin", "3537363231383830")
PIN = DEFAULT_USER_PIN
ACCOUNT = "owner@example.org"
ACCOUNT_PIN = b"135792"


@dataclass
class Hsm:
    """A token and the suite's mapper on it, to put it into a state with abstract commands."""

    token: VirtualToken
    mapper: Mapper

    @classmethod
    def make(cls, state_path: Path | None = None) -> Hsm:
        return cls.wrap(VirtualToken.manufacture(state_path=state_path))

    @classmethod
    def wrap(cls, token: VirtualToken) -> Hsm:
        mapper = Mapper(InProcessTransport(token), pins=PinBook.create())
        mapper.select()
        return cls(token, mapper)

    def chain(self) -> cvc.DeviceChain:
        """EF.C_DevAut as the suite reads it, verified to the test root."""
        return cvc.verify_c_devaut(self.mapper.read_identity(), cvc.load_test_root())

    @property
    def device(self) -> PluggedDevice:
        return PluggedDevice.of(self.token)

    def do(self, *commands: Command) -> list[str]:
        outputs = []
        for cmd in commands:
            uninitialized = not self.token.status().initialized
            outputs.append(self.mapper.run(cmd, uninitialized=uninitialized))
        return outputs

    def initialized(self, options: int = OPTION_RESET_RETRY_COUNTER, keys: int = 0) -> Hsm:
        self.mapper.select()
        assert self.do(Command.initialize("right", options, 3)) == ["9000"]
        if keys:
            steps = (Command.verify_user("right"), *[Command.generate_key()] * keys, Command.select())
            assert set(self.do(*steps)) == {"9000"}
        return self

    def transport_pin(self) -> Hsm:
        return self.initialized(OPTION_TRANSPORT_PIN | OPTION_RESET_RETRY_COUNTER)

    def block_user(self) -> Hsm:
        while self.token.status().user_tries:
            self.do(Command.verify_user("wrong"))
        return self

    def block_so(self) -> Hsm:
        assert self.token.status().initialized
        while self.token.status().so_tries:
            self.do(Command.change_so_pin("wrong"))
        return self

    def sw(self, capdu: bytes) -> int:
        return self.mapper.send(capdu).sw


def logged_in(portal: Portal) -> PortalSession:
    """An account logged in with its own working HSM."""
    result = portal.login(PluggedDevice.of(working_hsm(ACCOUNT_PIN)), ACCOUNT_PIN, email=ACCOUNT)
    assert result.session is not None, result.refusal
    return result.session


def recording(link: Callable[[bytes], bytes]) -> tuple[Callable[[bytes], bytes], list[bytes]]:
    """A card link that keeps every command APDU it passes on."""
    sent: list[bytes] = []

    def record(capdu: bytes) -> bytes:
        sent.append(capdu)
        return link(capdu)

    return record, sent
