"""Files (§4): ENUMERATE, SELECT EF, READ/UPDATE BINARY (odd INS), DELETE, the storage budget."""

from __future__ import annotations

import pytest
from emu_helpers import (
    PIN,
    SO,
    Card,
    fresh_card,
    initialized_card,
    select_applet,
    verify_so,
    verify_user,
)
from emu_objects import (
    delete,
    ec_body,
    enumerate_objects,
    gakp,
    list_fids,
    read_binary,
    select_ef,
    update_binary,
)

from hsm_lifecycle.emulator import Profile
from hsm_lifecycle import protocol, tlv

C_DEVAUT = protocol.FID_C_DEVAUT
DEVICE_KEY = protocol.FID_DEVICE_KEY


def logged_in(**kwargs: object) -> Card:
    card = initialized_card(**kwargs)  # type: ignore[arg-type]
    assert card.sw(verify_user(PIN)) == "9000"
    return card


def content(card: Card, fid: int) -> bytes:
    return card.token._applet.state.files[fid]  # noqa: SLF001 - what is stored


# --- ENUMERATE OBJECTS --------------------------------------------------------------------------


def test_enumerate_lists_identity_before_initialization() -> None:
    card = fresh_card()
    data, sw = card.send(enumerate_objects())
    assert sw == 0x9000 and list_fids(data) == [C_DEVAUT, DEVICE_KEY]


def test_enumerate_short_le_and_errors() -> None:
    card = fresh_card()
    assert card.sw("8058000000") == "9000" and list_fids(card.data) == [C_DEVAUT, DEVICE_KEY]
    assert card.sw("80580100000000") == "6A86"
    assert card.sw("8058000002AABB") == "6700"


def test_enumerate_lists_new_files_and_keys() -> None:
    card = logged_in()
    assert card.sw(update_binary(0xC401, 0, b"prkd")) == "9000"
    assert card.sw(gakp(1, ec_body())) == "9000"
    card.sw(enumerate_objects())
    # Files in creation order, then keys (a real card's order, OpenSC#528).
    assert list_fids(card.data) == [C_DEVAUT, 0xC401, 0xCE01, DEVICE_KEY, 0xCC01]


# --- SELECT EF ------------------------------------------------------------------------------------


def test_select_ef_answers_an_fcp() -> None:
    card = fresh_card()
    data, sw = card.send(select_ef(C_DEVAUT))
    assert sw == 0x9000
    fcp = tlv.decode_exact(data)
    assert fcp.tag == protocol.TAG_FCP
    items = {item.tag: item.value for item in fcp.children()}
    assert items[0x83] == C_DEVAUT.to_bytes(2, "big")
    assert int.from_bytes(items[0x80], "big") == len(content(card, C_DEVAUT))


def test_select_missing_ef_is_6a82_and_keeps_current() -> None:
    card = fresh_card()
    assert card.sw(select_ef(C_DEVAUT)) == "9000"
    assert card.sw(select_ef(0xC401)) == "6A82"
    assert card.sw(read_binary(0x0000, le=4)) == "9000"
    assert card.data == content(card, C_DEVAUT)[:4]


def test_select_ef_variants() -> None:
    card = fresh_card()
    assert card.send(select_ef(C_DEVAUT, p2=0x0C)) == (b"", 0x9000)
    assert card.sw(select_ef(C_DEVAUT, p2=0x04)) == "9000"
    assert card.sw(select_ef(C_DEVAUT, p2=0x08)) == "6A86"
    assert card.sw("00A4000003AABBCC00") == "6700"
    assert card.sw("00A40000023F0000") == "9000" and card.data[0] == protocol.TAG_FCP
    assert card.sw("00A4080002" + f"{C_DEVAUT:04X}" + "00") == "6A86"  # path select: OpenSC#528
    assert card.sw("00A4030002" + f"{C_DEVAUT:04X}" + "00") == "6A86"


def test_select_key_object_gives_empty_fcp() -> None:
    card = fresh_card()
    assert card.sw(select_ef(DEVICE_KEY)) == "9000"
    assert card.sw(read_binary()) == "6982"


# --- READ BINARY ----------------------------------------------------------------------------------


def test_read_by_fid_and_past_the_end() -> None:
    card = fresh_card()
    whole = content(card, C_DEVAUT)
    assert card.sw(read_binary(C_DEVAUT, 0, le=0)) == "6282"  # Le 65536 > 464 bytes
    assert card.data == whole
    assert card.sw(read_binary(C_DEVAUT, 400, le=100)) == "6282"
    assert card.data == whole[400:]
    assert card.sw(read_binary(C_DEVAUT, 0, le=len(whole))) == "9000" and card.data == whole
    assert card.sw(read_binary(C_DEVAUT, len(whole), le=10)) == "6282" and card.data == b""
    assert card.sw(read_binary(C_DEVAUT, len(whole) + 1, le=10)) == "6B00"
    assert card.sw(read_binary(C_DEVAUT, 10, le=None)) == "9000" and card.data == whole[10:]


def test_read_in_short_chunks_reassembles() -> None:
    card = fresh_card()
    whole, parts, offset = content(card, C_DEVAUT), b"", 0
    while True:
        sw = card.sw(read_binary(C_DEVAUT, offset, le=100, extended=False))
        parts += card.data
        offset += len(card.data)
        if sw != "9000":
            assert sw == "6282"
            break
    assert parts == whole


@pytest.mark.parametrize(
    ("capdu", "expected"),
    [
        ("00B10000" + "04540200" + "00", "6986"),  # no current EF
        ("00B1C401" + "04540200" + "00", "6A82"),  # missing file
        ("00B1CC00" + "04540200" + "00", "6982"),  # the device key
        ("00B12F02" + "03540100" + "00", "6A80"),  # 1-byte offset
        ("00B12F02" + "04530200" + "00", "6A80"),  # wrong tag
        ("00B12F02" + "05540200" + "00", "6700"),  # Lc mismatch
        ("00B12F02" + "00", "6700"),  # no offset
        ("00B13F00" + "04540200" + "00", "6A86"),  # not an EF
    ],
)
def test_read_errors(capdu: str, expected: str) -> None:
    card = fresh_card()
    assert card.sw(capdu) == expected


def test_cd_files_need_the_pin_cf_files_do_not() -> None:
    card = logged_in()
    assert card.sw(update_binary(0xCD01, 0, b"secret")) == "9000"
    assert card.sw(update_binary(0xCF01, 0, b"public")) == "9000"
    assert card.sw(select_applet()) == "9000"  # logout
    assert card.sw(read_binary(0xCD01)) == "6982"
    assert card.sw(read_binary(0xCD02)) == "6982"  # no hint whether it exists
    assert card.sw(read_binary(0xCF01)) == "6282" and card.data == b"public"
    assert card.sw(verify_user(PIN)) == "9000"
    assert card.sw(read_binary(0xCD01)) == "6282" and card.data == b"secret"


# --- UPDATE BINARY ---------------------------------------------------------------------------------


def test_create_with_empty_53_makes_the_current_ef() -> None:
    card = logged_in()
    assert card.sw(update_binary(0xC401, 0, b"")) == "9000"
    assert content(card, 0xC401) == b""
    assert card.sw(update_binary(0x0000, 0, b"hello ")) == "9000"
    assert card.sw(update_binary(0x0000, 6, b"world")) == "9000"
    assert card.sw(update_binary(0x0000, 0, b"J")) == "9000"
    assert content(card, 0xC401) == b"Jello world"
    assert card.sw(read_binary(0x0000)) == "6282" and card.data == b"Jello world"


def test_large_write_in_chunks() -> None:
    card = logged_in()
    blob = bytes(range(256)) * 12
    assert card.sw(update_binary(0xCE05, 0, b"")) == "9000"
    for offset in range(0, len(blob), 1215):
        assert card.sw(update_binary(0x0000, offset, blob[offset : offset + 1215])) == "9000"
    assert content(card, 0xCE05) == blob


@pytest.mark.parametrize(
    ("fid", "offset", "expected"),
    [
        (C_DEVAUT, 0, "6982"),  # the identity is never written
        (DEVICE_KEY, 0, "6982"),
        (0xCC05, 0, "6982"),  # key objects are not EFs
        (0xC402, 3, "6A82"),  # create only at offset 0
        (0x3F00, 0, "6A86"),
    ],
)
def test_update_refusals(fid: int, offset: int, expected: str) -> None:
    card = logged_in()
    before = card.status
    assert card.sw(update_binary(fid, offset, b"x")) == expected
    assert card.status == before


def test_update_offset_beyond_end_is_6b00() -> None:
    card = logged_in()
    card.sw(update_binary(0xC401, 0, b"abc"))
    assert card.sw(update_binary(0xC401, 4, b"x")) == "6B00"
    assert content(card, 0xC401) == b"abc"


@pytest.mark.parametrize(
    "capdu",
    ["00D7C40104540200" "00", "00D7C40106540200530100", "00D7C4010553015300", "00D7C401065402000000"],
)
def test_update_malformed_data(capdu: str) -> None:
    card = logged_in()
    assert card.sw(capdu) in {"6A80", "6700"}
    assert 0xC401 not in card.status.files


def test_update_without_current_ef_is_6986() -> None:
    card = logged_in()
    assert card.sw(update_binary(0x0000, 0, b"x")) == "6986"


def test_update_needs_initialization_and_login() -> None:
    shipped = fresh_card()
    assert shipped.sw(update_binary(0xC401, 0, b"x")) == "6A88"
    card = initialized_card()
    assert card.sw(update_binary(0xC401, 0, b"x")) == "6982"
    assert card.sw(verify_so(SO)) == "9000"
    assert card.sw(update_binary(0xC401, 0, b"x")) == "6982"  # R09
    assert 0xC401 not in card.status.files


def test_current_ef_is_session_state() -> None:
    card = logged_in()
    card.sw(update_binary(0xC401, 0, b"x"))
    card.token.reset()
    card.sw(select_applet())
    card.sw(verify_user(PIN))
    assert card.sw(update_binary(0x0000, 0, b"y")) == "6986"


# --- DELETE FILE --------------------------------------------------------------------------------


def test_delete_file_and_key() -> None:
    card = logged_in()
    card.sw(update_binary(0xC401, 0, b"x"))
    assert card.sw(gakp(1, ec_body())) == "9000"
    assert card.sw(delete(0xCC01)) == "9000"
    assert card.sw(delete(0xC401)) == "9000"
    card.sw(enumerate_objects())
    assert list_fids(card.data) == [C_DEVAUT, 0xCE01, DEVICE_KEY]  # CExx may stay behind
    assert card.sw(delete(0xCC01)) == "6A82"


def test_delete_clears_the_current_ef() -> None:
    card = logged_in()
    card.sw(update_binary(0xC401, 0, b"x"))
    assert card.sw(delete(0xC401)) == "9000"
    assert card.sw(read_binary()) == "6986"


@pytest.mark.parametrize(
    ("capdu", "expected"),
    [
        ("00E4020002CC00", "6982"),
        ("00E40200022F02", "6982"),
        ("00E4020002C499", "6A82"),
        ("00E4000002C401", "6A86"),
        ("00E4020003C40100", "6700"),
        ("00E40200", "6700"),
    ],
)
def test_delete_refusals(capdu: str, expected: str) -> None:
    card = logged_in()
    before = card.status
    assert card.sw(capdu) == expected
    assert card.status == before


def test_delete_needs_login() -> None:
    card = initialized_card()
    assert card.sw(delete(0xC401)) == "6982"
    assert fresh_card().sw(delete(0xC401)) == "6A88"


# --- storage budget ---------------------------------------------------------------------------------


def test_storage_full_refuses_writes_and_keeps_what_is_stored() -> None:
    probe = fresh_card()
    used = probe.status.storage_used
    # Room for 700 bytes: a 400-byte file, or one P-256 key with its CV request (~611).
    card = logged_in(profile=Profile(storage_bytes=used + 700))
    assert card.sw(update_binary(0xCF01, 0, b"a" * 400)) == "9000"
    assert card.sw(update_binary(0xCF02, 0, b"b" * 300)) == "6A84"
    assert card.sw(update_binary(0xCF01, 400, b"a" * 300)) == "6A84"
    assert content(card, 0xCF01) == b"a" * 400
    assert 0xCF02 not in card.status.files
    assert card.sw(gakp(1, ec_body())) == "6A84"
    assert 0xCC01 not in card.status.keys and 0xCE01 not in card.status.files
    assert card.sw(update_binary(0xCF01, 0, b"A" * 10)) == "9000"  # rewriting in place fits
    assert card.status.storage_used <= card.status.storage_bytes
    # Deleting frees room.
    assert card.sw(delete(0xCF01)) == "9000"
    assert card.sw(gakp(1, ec_body())) == "9000"


def test_default_budget_is_the_real_tokens() -> None:
    card = fresh_card()
    assert card.status.storage_bytes == protocol.EEPROM_BYTES
    assert 0 < card.status.storage_used < 2000  # the identity alone


def test_filling_the_default_budget() -> None:
    card = logged_in()
    fid, refused = 0xCF00, None
    while refused is None:
        sw = card.sw(update_binary(fid, 0, b"\x55" * 4000))
        if sw != "9000":
            refused = sw
        fid += 1
    assert refused == "6A84"
    status = card.status
    assert status.storage_used <= protocol.EEPROM_BYTES
    assert status.storage_used > protocol.EEPROM_BYTES - 4100
    assert all(content(card, f) == b"\x55" * 4000 for f in range(0xCF00, fid - 1))
