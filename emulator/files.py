"""Files (§4): SELECT EF, READ/UPDATE BINARY with the odd INS, DELETE FILE, ENUMERATE OBJECTS.

The *current EF* is part of the card session: SELECT sets it, and so does UPDATE BINARY (the
create with `53 00` at offset 0 makes the new file current, because OpenSC then writes with
P1P2 = 0000). A key (CCxx) is an object, not an EF: it can be selected and deleted, never read
or written.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hsm_lifecycle.emulator.apdu import ApduError, Command
from hsm_lifecycle.emulator.profile import Fault
from hsm_lifecycle.emulator.objects import MF, PROTECTED_FIDS, is_key_fid, needs_pin_to_read
from hsm_lifecycle.emulator.store import PersistencePoint
from hsm_lifecycle import cvc, protocol, tlv
from hsm_lifecycle.protocol import SW

if TYPE_CHECKING:
    from hsm_lifecycle.emulator.card import CardContext

CURRENT_EF = 0x0000
INVALID_FIDS = frozenset({MF, 0xFFFF, 0x3FFF})
# Not 08 (path from the MF): a SmartCard-HSM answered `00 A4 08 00 02 2F00 00` with 6A86
# (OpenSC#528, traces/public/opensc-528.jsonl).
SELECT_EF_P1 = frozenset({protocol.SELECT_P1_BY_FID, protocol.SELECT_P1_EF_UNDER_DF})
SELECT_P2_ANSWERS = {  # P2 -> whether the FCP is sent back
    protocol.SELECT_P2_FCI: True,
    protocol.SELECT_P2_FCP: True,
    protocol.SELECT_P2_NO_RESPONSE: False,
}
OFFSET_BYTES = 2


def ef_fcp(fid: int, size: int) -> bytes:
    return tlv.encode(
        protocol.TAG_FCP,
        tlv.encode(protocol.TAG_FCP_SIZE, size.to_bytes(2, "big"))
        + tlv.encode(protocol.TAG_FCP_DESCRIPTOR, bytes([protocol.FCP_DESCRIPTOR_WORKING_EF]))
        + tlv.encode(protocol.TAG_FCP_FID, fid.to_bytes(2, "big"))
        + tlv.encode(protocol.TAG_FCP_LIFECYCLE, bytes([protocol.FCP_LIFECYCLE_OPERATIONAL])),
    )


def select_ef(card: CardContext, cmd: Command) -> tuple[bytes, int]:
    """SELECT with P1 00/02 and a 2-byte FID (3F00 or no data: the applet, as MF)."""
    if cmd.p1 not in SELECT_EF_P1 or cmd.p2 not in SELECT_P2_ANSWERS:
        raise ApduError(SW.INCORRECT_P1P2, f"SELECT P1P2 {cmd.p1p2:04X}")
    answer = SELECT_P2_ANSWERS[cmd.p2]
    if cmd.data in (b"", MF.to_bytes(2, "big")) and cmd.p1 == protocol.SELECT_P1_BY_FID:
        return (card.applet_fcp() if answer else b""), SW.OK
    if len(cmd.data) != 2:
        raise ApduError(SW.WRONG_LENGTH, "a FID is 2 bytes")
    fid = int.from_bytes(cmd.data, "big")
    state = card.state
    if fid in state.files:
        size = len(state.files[fid])
    elif fid in state.keys:
        size = 0  # a key object has no readable content
    else:
        raise ApduError(SW.FILE_NOT_FOUND, f"no file {fid:04X}")
    card.set_current_ef(fid)
    return (ef_fcp(fid, size) if answer else b""), SW.OK


def _target(card: CardContext, cmd: Command) -> int:
    """P1P2 = FID, or 0000 = the current EF."""
    if cmd.p1p2 != CURRENT_EF:
        if cmd.p1p2 in INVALID_FIDS:
            raise ApduError(SW.INCORRECT_P1P2, f"{cmd.p1p2:04X} is not an EF")
        return cmd.p1p2
    if card.current_ef is None:
        raise ApduError(SW.COMMAND_NOT_ALLOWED, "no current EF")
    return card.current_ef


def _offset(item: tlv.Tlv | None) -> int:
    if item is None or len(item.value) != OFFSET_BYTES:
        raise ApduError(SW.WRONG_DATA, "offset must be 54 02 <hi lo>")
    return int.from_bytes(item.value, "big")


def _decode(data: bytes, allowed: frozenset[int]) -> dict[int, tlv.Tlv]:
    try:
        items = tlv.require_unique(tlv.decode_all(data), "command data")
    except tlv.TlvError as exc:
        raise ApduError(SW.WRONG_DATA, str(exc)) from exc
    if set(items) - allowed:
        raise ApduError(SW.WRONG_DATA, "unexpected tags")
    return items


def read_binary(card: CardContext, cmd: Command) -> tuple[bytes, int]:
    """READ BINARY B1: `54 02 <offset>`; past the end: the rest and 6282."""
    if not cmd.data:
        raise ApduError(SW.WRONG_LENGTH, "READ BINARY (odd INS) needs an offset")
    items = _decode(cmd.data, frozenset({protocol.TAG_OFFSET}))
    offset = _offset(items.get(protocol.TAG_OFFSET))
    fid = _target(card, cmd)
    if is_key_fid(fid) and fid in card.state.keys:
        raise ApduError(SW.SECURITY_STATUS_NOT_SATISFIED, "private keys are never readable")
    if needs_pin_to_read(fid):
        if Fault.PROTECTED_READ_WITHOUT_LOGIN not in card.faults:
            card.require_user()  # before the look-up: no hint whether a CD file exists
    content = card.state.files.get(fid)
    if content is None:
        raise ApduError(SW.FILE_NOT_FOUND, f"no file {fid:04X}")
    if fid == protocol.FID_C_DEVAUT:
        content = _as_personalised(card, content)
    if offset > len(content):
        raise ApduError(SW.WRONG_P1P2, "offset beyond the end of the file")
    card.set_current_ef(fid)
    rest = content[offset:]
    if cmd.ne is None:
        return rest, SW.OK
    if len(rest) < cmd.ne:
        return rest, SW.END_OF_FILE
    return rest[: cmd.ne], SW.OK


def _as_personalised(card: CardContext, c_devaut: bytes) -> bytes:
    """EF.C_DevAut as a badly personalised token holds it (R18 faults); unchanged otherwise."""
    if Fault.DICA_FROM_UNKNOWN_ROOT in card.faults:
        # The DICA's issuer reference (its CAR, the root's CHR) names a root nobody publishes.
        device = cvc.parse_cv_objects(c_devaut)[0]
        dica = c_devaut[len(device.raw) :]
        root = cvc.CVCertificate.decode(dica).car.encode("ascii")
        c_devaut = c_devaut[: len(device.raw)] + dica.replace(root, root[:-6] + b"900001", 1)
    if Fault.DEVICE_CVC_BAD_SIGNATURE in card.faults:
        # The device CVC's signature (its last byte) damaged: the certificate no longer verifies.
        end = len(cvc.parse_cv_objects(c_devaut)[0].raw) - 1
        c_devaut = c_devaut[:end] + bytes([c_devaut[end] ^ 0x01]) + c_devaut[end + 1 :]
    return c_devaut


def update_binary(card: CardContext, cmd: Command) -> tuple[bytes, int]:
    """UPDATE BINARY D7: `54 02 <offset> 53 <len> <data>`; a missing file is created."""
    if not cmd.data:
        raise ApduError(SW.WRONG_LENGTH, "UPDATE BINARY (odd INS) needs offset and data")
    if Fault.UPDATE_WITHOUT_LOGIN not in card.faults or not card.state.initialized:
        card.require_user()
    items = _decode(cmd.data, frozenset({protocol.TAG_OFFSET, protocol.TAG_DISCRETIONARY_DATA}))
    offset = _offset(items.get(protocol.TAG_OFFSET))
    chunk = items.get(protocol.TAG_DISCRETIONARY_DATA)
    if chunk is None:
        raise ApduError(SW.WRONG_DATA, "no 53 data object")
    fid = _target(card, cmd)
    if fid in PROTECTED_FIDS or is_key_fid(fid):
        raise ApduError(SW.SECURITY_STATUS_NOT_SATISFIED, f"{fid:04X} cannot be written")
    state = card.state
    old = state.files.get(fid)
    if old is None and offset != 0:
        raise ApduError(SW.FILE_NOT_FOUND, "a file is created at offset 0 only")
    old = old or b""
    if offset > len(old):
        raise ApduError(SW.WRONG_P1P2, "offset beyond the end of the file")
    new = old[:offset] + chunk.value + old[offset + len(chunk.value) :]
    if new != old or fid not in state.files:
        updated = state.with_file(fid, new)
        card.require_room(updated)
        card.commit(updated, PersistencePoint.FILE_WRITTEN)
    card.set_current_ef(fid)
    return b"", SW.OK


def delete_file(card: CardContext, cmd: Command) -> tuple[bytes, int]:
    """DELETE FILE `00 E4 02 00 02 <FID>`: a file or a key; the identity is never deleted."""
    if cmd.p1p2 != protocol.DELETE_FILE_P1P2:
        raise ApduError(SW.INCORRECT_P1P2, "DELETE FILE wants P1P2 0200")
    if len(cmd.data) != 2:
        raise ApduError(SW.WRONG_LENGTH, "DELETE FILE data is one FID")
    if Fault.DELETE_WITHOUT_LOGIN not in card.faults or not card.state.initialized:
        card.require_user()
    fid = int.from_bytes(cmd.data, "big")
    if fid in PROTECTED_FIDS:
        raise ApduError(SW.SECURITY_STATUS_NOT_SATISFIED, "the device identity stays")
    state = card.state
    if fid in state.keys:
        card.commit(state.without_key(fid), PersistencePoint.OBJECT_DELETED)
    elif fid in state.files:
        card.commit(state.without_file(fid), PersistencePoint.OBJECT_DELETED)
    else:
        raise ApduError(SW.FILE_NOT_FOUND, f"no object {fid:04X}")
    if card.current_ef == fid:
        card.set_current_ef(None)
    return b"", SW.OK


def enumerate_objects(card: CardContext, cmd: Command) -> tuple[bytes, int]:
    """ENUMERATE OBJECTS `80 58 00 00` + Le: every FID, the files in the order they were
    created, then the keys in that order: how a real card listed its objects (OpenSC#528)."""
    if cmd.p1p2 != 0x0000 and Fault.ENUMERATE_IGNORES_P1P2 not in card.faults:
        raise ApduError(SW.INCORRECT_P1P2, "ENUMERATE OBJECTS wants P1P2 0000")
    if cmd.data:
        raise ApduError(SW.WRONG_LENGTH, "ENUMERATE OBJECTS carries no data")
    fids = [*card.state.files, *card.state.keys]
    return b"".join(fid.to_bytes(2, "big") for fid in fids), SW.OK
