"""ISO 7816-4 command APDU framing: cases 1-4, short and extended length (§5.1).

Parsing is split from the header so the applet can answer 6E00/6D00 for a bad CLA/INS before
it looks at the body, as a Java Card applet does (the body is only read on
setIncomingAndReceive). Every framing error is an `ApduError(6700)`.
"""

from __future__ import annotations

from dataclasses import dataclass

from hsm_lifecycle.protocol import SW, sw_name

SHORT_MAX_NE = 256
EXTENDED_MAX_NE = 65536


class ApduError(Exception):
    """A command is refused with a status word; raised inside the applet, turned into a reply."""

    def __init__(self, sw: int, why: str = "") -> None:
        super().__init__(f"SW={sw:04X} ({sw_name(sw)}) {why}".strip())
        self.sw = sw


@dataclass(frozen=True)
class Command:
    """A parsed command APDU. `ne` is None when the command has no Le field."""

    cla: int
    ins: int
    p1: int
    p2: int
    data: bytes
    ne: int | None
    extended: bool

    @property
    def case(self) -> int:
        """ISO case: 1 (nothing), 2 (Le), 3 (data), 4 (data and Le)."""
        if self.data:
            return 4 if self.ne is not None else 3
        return 2 if self.ne is not None else 1

    @property
    def p1p2(self) -> int:
        return self.p1 << 8 | self.p2


def header(capdu: bytes) -> tuple[int, int, int, int]:
    """CLA, INS, P1, P2 of a command at least 4 bytes long."""
    if len(capdu) < 4:
        raise ApduError(SW.WRONG_LENGTH, "command shorter than its 4-byte header")
    return capdu[0], capdu[1], capdu[2], capdu[3]


def parse(capdu: bytes) -> Command:
    """Decode the body (Lc, data, Le); any length inconsistency is 6700."""
    cla, ins, p1, p2 = header(capdu)
    body = capdu[4:]
    if not body:
        return Command(cla, ins, p1, p2, b"", None, False)
    if len(body) == 1:
        return Command(cla, ins, p1, p2, b"", body[0] or SHORT_MAX_NE, False)
    if body[0] != 0:
        lc = body[0]
        if len(body) == 1 + lc:
            return Command(cla, ins, p1, p2, body[1:], None, False)
        if len(body) == 2 + lc:
            return Command(cla, ins, p1, p2, body[1:-1], body[-1] or SHORT_MAX_NE, False)
        raise ApduError(SW.WRONG_LENGTH, f"short Lc {lc} does not match {len(body) - 1} bytes")
    # body[0] == 00 and more bytes follow: extended length.
    if len(body) == 3:
        ne = int.from_bytes(body[1:3], "big") or EXTENDED_MAX_NE
        return Command(cla, ins, p1, p2, b"", ne, True)
    if len(body) < 3:
        raise ApduError(SW.WRONG_LENGTH, "truncated extended length field")
    lc = int.from_bytes(body[1:3], "big")
    if lc == 0:
        raise ApduError(SW.WRONG_LENGTH, "extended Lc of zero")
    rest = body[3:]
    if len(rest) == lc:
        return Command(cla, ins, p1, p2, rest, None, True)
    if len(rest) == lc + 2:
        ne = int.from_bytes(rest[-2:], "big") or EXTENDED_MAX_NE
        return Command(cla, ins, p1, p2, rest[:-2], ne, True)
    raise ApduError(SW.WRONG_LENGTH, f"extended Lc {lc} does not match {len(rest)} bytes")


def reply(data: bytes, sw: int) -> bytes:
    return bytes(data) + sw.to_bytes(2, "big")


def sw_hex(sw: str) -> int:
    """A profile's status-word string ("6986") as an int."""
    return int(sw, 16)
