"""What OpenSC sends (§4, §6) replayed byte by byte, and the digest's "Emulator checklist"."""

from __future__ import annotations

import hashlib

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, utils
from emu_helpers import (
    PIN,
    Card,
    fresh_card,
    initialize,
    initialized_card,
    query_so,
    query_user,
    select_applet,
    verify,
    verify_user,
)
from emu_objects import ec_body, enumerate_objects, list_fids, read_binary, select_ef, tlv, update_binary

from hsm_lifecycle import cvc, protocol

OPENSC_CHUNK = 1215  # max_send - 8


def opensc_update_ef(card: Card, fid: int, content: bytes, delete_first: bool) -> None:
    """OSC-init sc_hsm_update_ef: SELECT, DELETE if present, create with 53 00, write 0000."""
    sw = card.sw(select_ef(fid))
    if sw == "9000" and delete_first:
        assert card.sw(bytes.fromhex("00E4020002") + fid.to_bytes(2, "big")) == "9000"
    else:
        assert sw in {"6A82", "9000"}
    assert card.sw(bytes.fromhex("00D7") + fid.to_bytes(2, "big") + bytes.fromhex("06540200005300")) == "9000"
    for offset in range(0, len(content), OPENSC_CHUNK):
        assert card.sw(update_binary(0x0000, offset, content[offset : offset + OPENSC_CHUNK])) == "9000"


def opensc_free_key_id(card: Card) -> int:
    """First unused CCxx counting from 00 (so 01 while CC00 exists)."""
    data, sw = card.send(enumerate_objects())
    assert sw == 0x9000
    used = {fid & 0xFF for fid in list_fids(data) if fid >> 8 == protocol.FID_PREFIX_PRIVATE_KEY}
    return next(i for i in range(256) if i not in used)


def test_pkcs11_tool_keypairgen_sequence() -> None:
    card = fresh_card()
    assert card.sw(initialize()) == "9000"
    card.token.reset()
    # Driver init: SELECT with P2=00 and Le forced to 00.
    assert card.sw("00A404000B" + protocol.AID.hex() + "00") == "9000"
    assert card.sw(bytes.fromhex("00200081") + bytes([len(PIN)]) + PIN) == "9000"
    key_id = opensc_free_key_id(card)
    assert key_id == 1
    body = ec_body(chr_=f"{card.token.serial}00001")
    gakp = bytes([0x00, 0x46, key_id, 0x00, 0x00]) + len(body).to_bytes(2, "big") + body + b"\x00\x00"
    request, sw = card.send(gakp)
    assert sw == 0x9000 and request[0] == protocol.TAG_CV_AUTHENTICATED_REQUEST
    opensc_update_ef(card, 0xCE00 | key_id, request, delete_first=True)
    prkd = tlv(0x30, tlv(0x30, tlv(0x0C, b"my key")) + tlv(0x04, bytes([key_id])))  # any bytes
    opensc_update_ef(card, 0xC400 | key_id, prkd, delete_first=False)

    # Key listing (OSC-p15): CCxx != 00 -> read C4xx, then CExx (67 = request).
    card.sw(enumerate_objects())
    keys = [fid for fid in list_fids(card.data) if fid >> 8 == 0xCC and fid != 0xCC00]
    assert keys == [0xCC01]
    assert card.sw(read_binary(0xC401)) == "6282" and card.data == prkd
    assert card.sw(read_binary(0xCE01)) == "6282" and card.data == request
    public = cvc.request_public_key(card.data)

    # C_Sign with CKM_ECDSA: 80 68 01 70, short case 4, Le 00.
    digest = hashlib.sha256(b"pkcs11").digest()
    signature, sw = card.send(bytes.fromhex("8068017020") + digest + b"\x00")
    assert sw == 0x9000
    assert isinstance(public, ec.EllipticCurvePublicKey)
    public.verify(signature, digest, ec.ECDSA(utils.Prehashed(hashes.SHA256())))

    # Deletion: CCxx, then C4xx.
    assert card.sw("00E4020002CC01") == "9000"
    assert card.sw("00E4020002C401") == "9000"
    assert opensc_free_key_id(card) == 1


def test_sc_hsm_tool_initialize_with_label_sequence() -> None:
    """§6: INITIALIZE, then VERIFY and the TokenInfo write to 2F03."""
    card = fresh_card()
    apdu = bytes.fromhex("8050000019" "80020001" "8106") + PIN + bytes.fromhex("82083537363231383830" "910103")
    assert card.sw(apdu) == "9000"
    assert card.sw(bytes.fromhex("0020008106") + PIN) == "9000"
    token_info = bytes.fromhex("3010020100") + tlv(0x80, b"label")
    write = bytes.fromhex("00D72F03") + bytes([4 + 2 + len(token_info)]) + bytes.fromhex("54020000") + tlv(0x53, token_info)
    assert card.sw(write) == "9000"
    assert card.sw(read_binary(protocol.FID_TOKEN_INFO)) == "6282" and card.data == token_info


# --- the digest's "Emulator checklist" --------------------------------------------------------------


def test_checklist_foreign_aid_unknown_ins_and_cla() -> None:
    card = fresh_card()
    assert card.sw("00A4040007A000000397425400") == "6A82"  # a foreign AID
    assert card.sw("00FA0000") == "6D00"
    assert card.sw("FF200081") in {"6E00", "6D00"}


def test_checklist_fcps_and_missing_fids() -> None:
    card = fresh_card()
    fcp, _ = card.send(select_applet())
    assert fcp[0] == 0x62 and fcp[-7:-5] == bytes([0x85, 0x05])
    for fid in (protocol.FID_C_DEVAUT,):
        assert card.sw(select_ef(fid)) == "9000" and card.data[0] == 0x62
    assert card.sw(select_ef(0xC4AA)) == "6A82"


def test_checklist_2f02_parseable_with_long_chr() -> None:
    card = fresh_card()
    assert card.sw(read_binary(protocol.FID_C_DEVAUT)) == "6282"
    objects = cvc.parse_cv_objects(card.data)
    assert len(objects) == 2 and len(objects[0].chr) >= 8  # type: ignore[union-attr]


def test_checklist_bio_references_and_free_queries() -> None:
    card = initialized_card()
    assert card.sw(verify(0x85)) == "6A88" and card.sw(verify(0x86)) == "6A88"
    for _ in range(5):
        assert card.sw(query_user()) == "63C3" and card.sw(query_so()) == "63CF"
    assert card.status.user_tries == 3 and card.status.so_tries == 15


def test_checklist_current_ef_through_select_and_create() -> None:
    card = initialized_card()
    card.sw(verify_user(PIN))
    assert card.sw(select_ef(protocol.FID_C_DEVAUT)) == "9000"
    assert card.sw(read_binary(0x0000, le=2)) == "9000" and card.data == b"\x7f\x21"
    assert card.sw(update_binary(0xCF01, 0, b"")) == "9000"
    assert card.sw(update_binary(0x0000, 0, b"abc")) == "9000"
    assert card.sw(read_binary(0xCF01)) == "6282" and card.data == b"abc"


def test_checklist_enumerate_extended_and_requests_in_ce() -> None:
    card = initialized_card()
    card.sw(verify_user(PIN))
    body = ec_body()
    request, sw = card.send(bytes.fromhex("0046050000") + len(body).to_bytes(2, "big") + body + b"\x00\x00")
    assert sw == 0x9000
    assert card.sw("80580000000000") == "9000" and 0xCE05 in list_fids(card.data)
    assert card.sw(read_binary(0xCE05)) == "6282" and card.data == request


def test_checklist_select_and_reset_clear_verification() -> None:
    card = initialized_card()
    card.sw(verify_user(PIN))
    card.sw(select_applet())
    assert card.sw(query_user()) == "63C3"
    card.sw(verify_user(PIN))
    card.token.reset()
    card.sw(select_applet())
    assert card.sw(query_user()) == "63C3"
