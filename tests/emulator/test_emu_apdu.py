"""ISO 7816-4 framing: cases 1-4 short and extended, and the 6700/6E00/6D00 answers."""

from __future__ import annotations

import pytest
from emu_helpers import PIN, fresh_card, initialized_card, select_applet, verify_user

from hsm_lifecycle.emulator.apdu import ApduError, parse


@pytest.mark.parametrize(
    ("hexapdu", "case", "data", "ne", "extended"),
    [
        ("00200081", 1, b"", None, False),
        ("00A4040000", 2, b"", 256, False),
        ("00A4040010", 2, b"", 16, False),
        ("0020008102AABB", 3, b"\xaa\xbb", None, False),
        ("0020008102AABB00", 4, b"\xaa\xbb", 256, False),
        ("0020008102AABB7F", 4, b"\xaa\xbb", 127, False),
        ("80580000000000", 2, b"", 65536, True),
        ("80580000000102", 2, b"", 258, True),
        ("002000810000 03 AABBCC", 3, b"\xaa\xbb\xcc", None, True),
        ("002000810000 02 AABB 0000", 4, b"\xaa\xbb", 65536, True),
        ("002000810000 02 AABB 0100", 4, b"\xaa\xbb", 256, True),
    ],
)
def test_cases_parse(hexapdu: str, case: int, data: bytes, ne: int | None, extended: bool) -> None:
    cmd = parse(bytes.fromhex(hexapdu.replace(" ", "")))
    assert (cmd.case, cmd.data, cmd.ne, cmd.extended) == (case, data, ne, extended)
    assert (cmd.cla, cmd.ins, cmd.p1) == tuple(bytes.fromhex(hexapdu.replace(" ", ""))[:3])


def test_extended_lc_above_255_parses() -> None:
    body = bytes(range(256)) * 2
    cmd = parse(bytes.fromhex("00D70000") + b"\x00" + len(body).to_bytes(2, "big") + body + b"\x00\x00")
    assert cmd.data == body and cmd.ne == 65536 and cmd.case == 4


@pytest.mark.parametrize(
    "hexapdu",
    [
        "",
        "00",
        "002000",
        "0020008103AABB",  # Lc 3, 2 bytes
        "0020008102AABBCCDD",  # Lc 2, 4 bytes
        "002000810000",  # 00 then 1 byte: neither short nor extended
        "00200081000002AA",  # extended Lc 2, 1 byte
        "00200081000000AABB",  # extended Lc 0 with data
        "002000810000020102030405",  # extended Lc 2, 5 bytes
    ],
)
def test_framing_errors_raise_6700(hexapdu: str) -> None:
    raw = bytes.fromhex(hexapdu)
    with pytest.raises(ApduError) as err:
        parse(raw)
    assert err.value.sw == 0x6700


@pytest.mark.parametrize(
    "hexapdu",
    ["0020008103AABB", "0020008102AABBCCDD", "002000810000", "00200081000002AA", "00200081000000AABB"],
)
def test_token_answers_6700_for_truncations(hexapdu: str) -> None:
    card = initialized_card()
    before = card.status
    assert card.sw(hexapdu) == "6700"
    assert card.status == before


def test_short_header_is_6700() -> None:
    card = fresh_card()
    assert card.sw(b"") == "6700"
    assert card.sw("00A4") == "6700"


@pytest.mark.parametrize("cla", [0xFF, 0x01, 0x0C, 0x10, 0x84, 0xA0])
def test_unknown_cla_is_6e00(cla: int) -> None:
    card = initialized_card()
    assert card.sw(bytes([cla, 0x20, 0x00, 0x81])) == "6E00"


@pytest.mark.parametrize("cla_ins", ["0050", "8020", "0001", "00B0", "80FF", "0070", "8046"])
def test_unknown_ins_is_6d00(cla_ins: str) -> None:
    card = initialized_card()
    assert card.sw(cla_ins + "0000") == "6D00"


def test_cla_checked_before_framing() -> None:
    card = fresh_card()
    assert card.sw("FF200081 03 AABB") == "6E00"
    assert card.sw("00FE0000 03 AABB") == "6D00"


def test_verify_with_le_is_6700() -> None:
    card = initialized_card()
    assert card.sw(verify_user(PIN) + b"\x00") == "6700"
    assert card.sw("0020008100") == "6700"
    assert card.status.user_tries == 3


def test_long_answer_with_small_le_uses_get_response() -> None:
    card = fresh_card()
    full, sw = card.send(select_applet())
    assert sw == 0x9000 and len(full) > 8
    head, sw = card.send(select_applet()[:-1] + b"\x08")
    assert head == full[:8] and sw >> 8 == 0x61 and sw & 0xFF == len(full) - 8
    rest, sw = card.send(bytes([0x00, 0xC0, 0x00, 0x00, sw & 0xFF]))
    assert sw == 0x9000 and head + rest == full


def test_get_response_in_pieces_and_without_pending() -> None:
    card = fresh_card()
    full, _ = card.send(select_applet())
    head, sw = card.send(select_applet()[:-1] + b"\x04")
    part, sw = card.send(bytes.fromhex("00C0000004"))
    assert sw >> 8 == 0x61 and part == full[4:8]
    # Any other command drops the waiting bytes.
    assert card.sw("00200088") == "6A88"
    assert card.sw("00C0000004") == "6985"
    assert card.sw("00C0010004") == "6A86"
