"""The emulator in this process: a `VirtualToken` behind the `Transport` interface.

No daemon, no sockets: the default target for CI and developers. `kind` lets the project's own
tests present the emulator to the suite as if it were a real token ("pcsc"), so that the
interlocks can be tested without hardware.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hsm_lifecycle.conformance.transport.base import Response, Transport, TransportError
from hsm_lifecycle.protocol import CLA_ISO, SW1_MORE_DATA, SW1_WRONG_LE, Ins

if TYPE_CHECKING:
    from hsm_lifecycle.emulator import VirtualToken

READER = "in-process emulator"  # the reader name it describes itself with (the bundle reads it)
GET_RESPONSE_LIMIT = 256  # as PcscTransport: a 61xx chain past 64 KB is a broken token, not data


class InProcessTransport(Transport):
    def __init__(self, token: "VirtualToken", *, kind: str = "emulator", reader: str = READER) -> None:
        self.token = token
        self.kind = kind
        self.reader = reader
        self.powered = False

    def connect(self) -> bytes:
        if self.powered:
            return self.token.reset()
        self.powered = True
        return self.token.power_on()

    def transmit(self, capdu: bytes) -> Response:
        if not self.powered:
            self.connect()
        try:
            rapdu = self.token.transmit(capdu)
        except BaseException:
            self.powered = False  # a test's power cut (emulator.PowerLoss): the token is off
            raise
        data, sw = self._split(rapdu)
        # T=0 style answers, which a PC/SC stack would hide from us too.
        for _ in range(GET_RESPONSE_LIMIT):
            if sw >> 8 != SW1_MORE_DATA:
                break
            more = self._split(self.token.transmit(bytes([CLA_ISO, Ins.GET_RESPONSE, 0, 0, sw & 0xFF])))
            data, sw = data + more[0], more[1]
        if sw >> 8 == SW1_MORE_DATA:
            raise TransportError(f"the emulator keeps answering 61xx (more data) after {GET_RESPONSE_LIMIT} GET RESPONSEs "
                                 f"to {capdu[:4].hex().upper()}; this is an emulator bug.")
        if sw >> 8 == SW1_WRONG_LE and len(capdu) >= 5:
            data, sw = self._split(self.token.transmit(capdu[:-1] + bytes([sw & 0xFF])))
        return Response(data, sw)

    @staticmethod
    def _split(rapdu: bytes) -> tuple[bytes, int]:
        if len(rapdu) < 2:
            raise TransportError(f"the emulator answered {len(rapdu)} bytes, fewer than a status word; this is an emulator bug.")
        return bytes(rapdu[:-2]), int.from_bytes(rapdu[-2:], "big")

    def reset(self) -> bytes:
        self.powered = True
        return self.token.reset()

    def power_cycle(self) -> bytes:
        if self.powered:
            self.token.power_off()
        self.powered = True
        return self.token.power_on()

    def close(self) -> None:
        if self.powered:
            self.token.power_off()
            self.powered = False

    def describe(self) -> dict[str, str]:
        return {"kind": self.kind, "reader": self.reader, "serial": self.token.serial}
