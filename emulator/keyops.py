"""Key commands (§4): GENERATE ASYMMETRIC KEY PAIR, SIGN, DECIPHER, GET CHALLENGE, DKEK,
WRAP KEY and UNWRAP KEY.

Key use needs the user PIN verified in the current card session (R10), never the SO-PIN (R09):
`CardContext.require_user` is the one gate. The cryptography is `emulator.keys`; its refusals carry
the SW to answer. GAKP stores the key in CCxx and its CV request in CExx, in one write.
"""

from __future__ import annotations

import secrets
from dataclasses import replace
from typing import TYPE_CHECKING

from cryptography.hazmat.primitives.asymmetric import ec

from hsm_lifecycle.emulator import dkek as backup
from hsm_lifecycle.emulator import keys
from hsm_lifecycle.emulator.apdu import ApduError, Command
from hsm_lifecycle.emulator.identity import new_device_key_der
from hsm_lifecycle.emulator.initialize import dkek_kcv
from hsm_lifecycle.emulator.profile import Fault
from hsm_lifecycle.emulator.state import Dkek
from hsm_lifecycle.emulator.store import PersistencePoint
from hsm_lifecycle import cvc, protocol, tlv
from hsm_lifecycle.protocol import SW

if TYPE_CHECKING:
    from hsm_lifecycle.emulator.card import CardContext

CHALLENGE_MAX = protocol.CHALLENGE_MAX  # OpenSC caps GET CHALLENGE there
DKEK_SHARE_BYTES = protocol.DKEK_SHARE_LENGTH
DEVICE_KEY_ID = protocol.FID_DEVICE_KEY & 0xFF
WRAP_P2 = 0x92  # OpenSC sends 80 72 <id> 92 and 80 74 <id> 93 (card-sc-hsm.c)
UNWRAP_P2 = 0x93
FID_WRAPPED_KEY = 0x2F10  # OpenSC writes the blob here before UNWRAP KEY without data
# What Fault.WRAP_UNDER_FIXED_KEY wraps under instead of the DKEK: the same on every token.
FIXED_WRAP_KEY = bytes(DKEK_SHARE_BYTES)


def key_fid(key_id: int) -> int:
    return protocol.FID_PREFIX_PRIVATE_KEY << 8 | key_id


def request_fid(key_id: int) -> int:
    return protocol.FID_PREFIX_EE_CERT << 8 | key_id


def generate_key_pair(card: CardContext, cmd: Command) -> tuple[bytes, int]:
    """`00 46 <key id> 00` + CV body: a new key, answered (and kept in CExx) as a CV request
    signed by the device key."""
    if Fault.UNINITIALIZED_GENERATE_WRITES in card.faults and not card.state.initialized and 0 < cmd.p1 and cmd.data:
        # The key slot is written before the initialization check refuses the command.
        blob = new_device_key_der()
        card.commit(card.state.with_key(key_fid(cmd.p1), blob), PersistencePoint.KEY_GENERATED)
    if Fault.GENERATE_WITHOUT_LOGIN not in card.faults or not card.state.initialized:
        card.require_user()
    if cmd.p1 == DEVICE_KEY_ID:
        raise ApduError(SW.INCORRECT_P1P2, "key 00 is the device key")
    if cmd.p2 != DEVICE_KEY_ID:
        raise ApduError(SW.INCORRECT_P1P2, "only the device key (00) signs CV requests here")
    if not cmd.data:
        raise ApduError(SW.WRONG_LENGTH, "GENERATE ASYMMETRIC KEY PAIR needs a CV body")
    state = card.state
    if state.dkek is not None and state.dkek.outstanding:
        raise ApduError(SW.CONDITIONS_NOT_SATISFIED, "DKEK shares outstanding")
    device = card.stored_key(protocol.FID_DEVICE_KEY)
    if device is None:
        raise ApduError(SW.CONDITIONS_NOT_SATISFIED, "no device key")
    signer = device.private_key
    if not isinstance(signer, ec.EllipticCurvePrivateKey):
        raise ApduError(SW.CONDITIONS_NOT_SATISFIED, "device key is not an EC key")
    chr_fallback = f"{card.serial}{cmd.p1:05d}"
    body = cmd.data
    if Fault.TRUNCATED_TLV_ACCEPTED in card.faults and _truncated(body):
        body = _default_template(signer)  # a lenient parser: what it could not read, it defaulted
    try:
        bits = keys.parse_key_template(body).rsa_bits
        if bits is not None and bits not in card.profile.device.rsa_bits:
            raise keys.UnsupportedKeyError(f"RSA-{bits} not offered by a {card.profile.model}")
        generated = keys.generate_from_cv_body(
            body, chr_fallback, keys.OuterSigner(signer, state.device_chr)
        )
    except keys.KeyOperationError as refused:
        raise ApduError(refused.sw, str(refused)) from refused
    fid = key_fid(cmd.p1)
    card.keys.put(fid, generated.key)
    updated = state.with_key(fid, generated.key.to_bytes()).with_file(
        request_fid(cmd.p1), generated.request
    )
    card.require_room(updated)
    card.commit(updated, PersistencePoint.KEY_GENERATED)
    return generated.request, SW.OK


def _truncated(body: bytes) -> bool:
    try:
        tlv.decode_all(body)
    except tlv.TlvError:
        return True
    return False


def _default_template(signer: ec.EllipticCurvePrivateKey) -> bytes:
    """An EC key template on the device key's curve (domain, no point)."""
    public = cvc.CvPublicKey.from_cryptography(signer.public_key(), cvc.OID_TA_ECDSA_SHA256)
    parts = [tlv.encode(i.tag, i.value) for i in tlv.decode_all(public.encode())[0].children() if i.tag != 0x86]
    return tlv.encode_constructed(protocol.TAG_CV_PUBLIC_KEY, parts)


def _key_for_use(card: CardContext, cmd: Command, login: bool = True) -> keys.StoredKey:
    if login or not card.state.initialized:
        card.require_user()
    if not cmd.data:
        raise ApduError(SW.WRONG_LENGTH, "no input data")
    key = card.stored_key(key_fid(cmd.p1))
    if key is None:
        raise ApduError(SW.REFERENCED_DATA_NOT_FOUND, f"no key {cmd.p1:02X}")
    return key


def sign(card: CardContext, cmd: Command) -> tuple[bytes, int]:
    """`80 68 <key id> <algorithm>` + hash or message."""
    key = _key_for_use(card, cmd)
    if Fault.DEVICE_KEY_NEEDS_EXTENDED_LE in card.faults and cmd.p1 == DEVICE_KEY_ID and not cmd.extended:
        raise ApduError(SW.WRONG_LENGTH, "the device key answers only an extended Le")
    try:
        return keys.sign(key, cmd.p2, cmd.data), SW.OK
    except keys.KeyOperationError as refused:
        raise ApduError(refused.sw, str(refused)) from refused


def decipher(card: CardContext, cmd: Command) -> tuple[bytes, int]:
    """`80 62 <key id> <algorithm>` + cryptogram (RSA 21/22/23) or peer point (EC 80)."""
    key = _key_for_use(card, cmd, login=Fault.DECIPHER_WITHOUT_LOGIN not in card.faults)
    try:
        return keys.decipher(key, cmd.p2, cmd.data), SW.OK
    except keys.KeyOperationError as refused:
        raise ApduError(refused.sw, str(refused)) from refused


def get_challenge(card: CardContext, cmd: Command) -> tuple[bytes, int]:
    """`00 84 00 00 Le`: Le random bytes; no Le is 6700."""
    if cmd.p1p2 != 0x0000:
        raise ApduError(SW.INCORRECT_P1P2, "GET CHALLENGE wants P1P2 0000")
    if cmd.data or cmd.ne is None or cmd.ne > CHALLENGE_MAX:
        raise ApduError(SW.WRONG_LENGTH, f"GET CHALLENGE needs Le of 1..{CHALLENGE_MAX}")
    return secrets.token_bytes(cmd.ne), SW.OK


def dkek(card: CardContext, cmd: Command) -> tuple[bytes, int]:
    """`80 52 00 00 00`: DKEK status; with 32 bytes of data: import one share."""
    if cmd.p1p2 != 0x0000:
        raise ApduError(SW.INCORRECT_P1P2, "IMPORT DKEK SHARE wants P1P2 0000")
    state = card.state
    if not state.initialized or state.dkek is None:
        # The v4.0 card without a DKEK answered 6A88 (OSC#2647).
        raise ApduError(SW.REFERENCED_DATA_NOT_FOUND, "no DKEK configured")
    current = state.dkek
    if cmd.data:
        if len(cmd.data) != DKEK_SHARE_BYTES:
            raise ApduError(SW.WRONG_LENGTH, "a DKEK share is 32 bytes")
        if not current.outstanding and Fault.DKEK_EXTRA_SHARE not in card.faults:
            raise ApduError(SW.CONDITIONS_NOT_SATISFIED, "no DKEK share outstanding")
        key = bytes(a ^ b for a, b in zip(current.key, cmd.data))
        left = max(current.outstanding - 1, 0)
        current = Dkek(current.shares, left, dkek_kcv(key) if left == 0 else bytes(8), key)
        card.commit(replace(state, dkek=current), PersistencePoint.DKEK_SHARE_IMPORTED)
    if Fault.DKEK_STATUS_SHOWS_IMPORTED in card.faults:
        return bytes([current.shares, current.shares - current.outstanding]) + current.kcv, SW.OK
    return bytes([current.shares, current.outstanding]) + current.kcv, SW.OK


def _wrapping_key(card: CardContext) -> bytes:
    """The complete DKEK (R23). No DKEK: 6D00, which sc-hsm-tool reads as "not initialized for
    key wrap" (CardContact's own comment there); shares outstanding: 6985, like GAKP."""
    current = card.state.dkek
    if current is None:
        raise ApduError(SW.INS_NOT_SUPPORTED, "no DKEK: keys cannot leave the device")
    if current.outstanding and Fault.INCOMPLETE_DKEK_USED not in card.faults:
        raise ApduError(SW.CONDITIONS_NOT_SATISFIED, "DKEK shares outstanding")
    return FIXED_WRAP_KEY if Fault.WRAP_UNDER_FIXED_KEY in card.faults else current.key


def _key_id(cmd: Command, p2: int) -> int:
    if cmd.p2 != p2:
        raise ApduError(SW.INCORRECT_P1P2, f"P2 must be {p2:02X}")
    if cmd.p1 == DEVICE_KEY_ID:
        raise ApduError(SW.INCORRECT_P1P2, "the device key never leaves the device")
    return cmd.p1


def wrap_key(card: CardContext, cmd: Command) -> tuple[bytes, int]:
    """`80 72 <key id> 92`: the key as a blob under the DKEK (emulator.dkek)."""
    key_id = _key_id(cmd, WRAP_P2)
    card.require_user()
    if cmd.data:
        raise ApduError(SW.WRONG_LENGTH, "WRAP KEY carries no data")
    wrapping = _wrapping_key(card)
    key = card.stored_key(key_fid(key_id))
    if key is None:
        raise ApduError(SW.REFERENCED_DATA_NOT_FOUND, f"no key {key_id:02X}")
    return backup.wrap(wrapping, key), SW.OK


def unwrap_key(card: CardContext, cmd: Command) -> tuple[bytes, int]:
    """`80 74 <key id> 93` [+ blob]: the blob (from EF 2F10 without data) becomes key CCxx."""
    key_id = _key_id(cmd, UNWRAP_P2)
    card.require_user()
    wrapping = _wrapping_key(card)
    state = card.state
    blob = cmd.data or state.files.get(FID_WRAPPED_KEY)
    if not blob:
        raise ApduError(SW.FILE_NOT_FOUND, "no key blob: none sent and EF 2F10 is empty")
    try:
        key = backup.unwrap(wrapping, blob)
    except backup.BlobError as refused:
        # sc-hsm-tool reads 6A80 (SC_ERROR_INCORRECT_PARAMETERS) as "does not match DKEK".
        raise ApduError(SW.WRONG_DATA, str(refused)) from refused
    fid = key_fid(key_id)
    card.keys.put(fid, key)
    updated = state.with_key(fid, key.to_bytes())
    card.require_room(updated)
    card.commit(updated, PersistencePoint.KEY_UNWRAPPED)
    return b"", SW.OK
