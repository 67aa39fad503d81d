"""APDU framing: the emulator's parser against an ISO 7816-4 decoder written here from the
standard (a differential test), and the end-to-end rule that a mis-framed command changes
nothing: not a counter, not the session, not a file."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from hsm_lifecycle.conformance.fuzz.fuzzed import FuzzedToken
from hsm_lifecycle.conformance.fuzz.grammar import encode
from hsm_lifecycle.conformance.fuzz.starts import Campaign
from hsm_lifecycle.emulator import apdu
from hsm_lifecycle.protocol import Ins
from robust_support import FAST, sw_of

Decoded = tuple[bytes, int | None]  # data, Ne (None: no Le field)


def iso_decode(capdu: bytes) -> Decoded | None:
    """ISO 7816-4 §5.1 cases 1, 2S/E, 3S/E, 4S/E; None when the length fields are inconsistent."""
    if len(capdu) < 4:
        return None
    body = capdu[4:]
    n = len(body)
    if n == 0:
        return b"", None  # case 1
    if n == 1:
        return b"", body[0] or 256  # case 2S
    if body[0]:
        lc = body[0]
        if n == 1 + lc:
            return body[1:], None  # case 3S
        if n == 2 + lc:
            return body[1:-1], body[-1] or 256  # case 4S
        return None
    if n == 3:
        return b"", int.from_bytes(body[1:], "big") or 65536  # case 2E
    if n < 3:
        return None
    lc = int.from_bytes(body[1:3], "big")
    if lc == 0:
        return None
    if n == 3 + lc:
        return body[3:], None  # case 3E
    if n == 5 + lc:
        return body[3:-2], int.from_bytes(body[-2:], "big") or 65536  # case 4E
    return None


def emulator_decode(capdu: bytes) -> Decoded | None:
    try:
        cmd = apdu.parse(capdu)
    except apdu.ApduError as refused:
        assert refused.sw == 0x6700, f"framing refused with {refused.sw:04X}, not 6700"
        return None
    return cmd.data, cmd.ne


@st.composite
def bodies(draw: st.DrawFn) -> bytes:
    """Length fields that agree, disagree, or are plain noise."""
    data = draw(st.binary(max_size=300))
    le = draw(st.none() | st.integers(0, 65535))
    well_formed = encode(b"\x00\xa4\x04\x00", data, le, extended=draw(st.booleans()))[4:]
    return draw(st.sampled_from([
        well_formed,
        well_formed[: draw(st.integers(0, max(0, len(well_formed) - 1)))],
        well_formed + draw(st.binary(min_size=1, max_size=3)),
        b"\x00" + draw(st.binary(max_size=6)),
        bytes([draw(st.integers(1, 255))]) + data,
        b"\x00" + draw(st.integers(0, 65535)).to_bytes(2, "big") + data + draw(st.binary(max_size=2)),
        draw(st.binary(max_size=12)),
    ]))


@FAST
@given(header=st.binary(min_size=0, max_size=4), body=bodies())
def test_the_emulator_frames_like_iso_7816_4(header: bytes, body: bytes) -> None:
    capdu = header + body if len(header) == 4 else header
    assert emulator_decode(capdu) == iso_decode(capdu)


HANDLED = [(0x00, Ins.SELECT), (0x00, Ins.VERIFY), (0x00, Ins.CHANGE_REFERENCE_DATA), (0x00, Ins.RESET_RETRY_COUNTER),
           (0x80, Ins.INITIALIZE_DEVICE), (0x80, Ins.IMPORT_DKEK_SHARE), (0x80, Ins.ENUMERATE_OBJECTS),
           (0x00, Ins.GENERATE_ASYMMETRIC_KEY_PAIR), (0x80, Ins.SIGN), (0x80, Ins.DECIPHER), (0x00, Ins.GET_CHALLENGE),
           (0x00, Ins.READ_BINARY_ODD), (0x00, Ins.UPDATE_BINARY_ODD), (0x00, Ins.DELETE_FILE), (0x00, Ins.GET_RESPONSE)]


@FAST
@given(data=st.data(), head=st.sampled_from(HANDLED), p1p2=st.sampled_from([b"\x00\x81", b"\x00\x88", b"\x04\x00", b"\x00\x00", b"\x01\x81"]),
       body=bodies())
def test_a_misframed_command_is_6700_and_changes_nothing(campaign: Campaign, data: st.DataObject, head: tuple[int, int],
                                                         p1p2: bytes, body: bytes) -> None:
    capdu = bytes(head) + p1p2 + body
    if iso_decode(capdu) is not None:
        return  # well framed: the other tests' business
    fuzzed = FuzzedToken(campaign, data.draw(st.sampled_from(campaign.starts)))
    before, writes = fuzzed.token.status(), fuzzed.token.writes
    answer = fuzzed.token.transmit(capdu)
    assert sw_of(answer) == 0x6700 and len(answer) == 2, answer.hex()
    assert fuzzed.token.status() == before and fuzzed.token.writes == writes
    assert fuzzed.token.last_internal_error is None
