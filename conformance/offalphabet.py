"""Commands outside the model's abstract alphabet that some checks need: data objects (UPDATE /
READ BINARY, DELETE FILE), DECIPHER, PIN-format edge cases, the device key CC00 and malformed
APDUs. Each helper sends raw APDUs through the test's guarded, traced transport and decides the
named check from the status word the rule statement demands; the model's state is untouched,
so a test uses them only where they change nothing the model tracks (counters are re-judged
with the alphabet's status queries right after).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING


from hsm_lifecycle import tlv
from hsm_lifecycle.conformance.mapper import apdu
from hsm_lifecycle.conformance.transport.base import Response
from hsm_lifecycle.protocol import (
    CLA_ISO,
    CLA_PROPRIETARY,
    SW,
    TAG_DISCRETIONARY_DATA,
    TAG_OFFSET,
    Ins,
)

if TYPE_CHECKING:
    from hsm_lifecycle.conformance.device import Device

OK = SW.OK
REFUSED: Callable[[int], bool] = lambda sw: sw != SW.OK and sw >> 12 == 6  # an ISO 7816-4 error
NOT_LOGGED_IN: Callable[[int], bool] = lambda sw: sw == SW.SECURITY_STATUS_NOT_SATISFIED
READ_OK: Callable[[int], bool] = lambda sw: sw in (SW.OK, SW.END_OF_FILE)  # 6282: asked for more than there is
DEADLINE_S = 2.0  # R22's default deadline


def send(hsm: "Device", what: str, capdu: bytes, rules: tuple[str, ...] = ()) -> Response:
    """One raw APDU, named in the trace like an alphabet step."""
    hsm.recorder.context(f"{what} [outside the alphabet]", hsm.state.abstract, rules)
    hsm.history.append(None)  # a divergence after it is not blamed on an alphabet step
    return hsm.mapper.send(capdu)


def expect_sw(hsm: "Device", check: str, what: str, capdu: bytes, ok: Callable[[int], bool], wanted: str) -> Response:
    """Send `capdu`; the check fails unless the status word is what the rule demands."""
    rsp = send(hsm, what, capdu, (check.partition(".")[0],))
    if not ok(rsp.sw):
        hsm.fail(f"{what}: expected {wanted}, the device answered {rsp.sw_hex}", (check,))
    return rsp


# -- data objects -------------------------------------------------------------------------------


def update_binary(fid: int, data: bytes, offset: int = 0) -> bytes:
    body = tlv.encode(TAG_OFFSET, offset.to_bytes(2, "big")) + tlv.encode(TAG_DISCRETIONARY_DATA, data)
    return apdu(CLA_ISO, Ins.UPDATE_BINARY_ODD, fid >> 8, fid & 0xFF, body)


def read_binary(fid: int, offset: int = 0) -> bytes:
    return apdu(CLA_ISO, Ins.READ_BINARY_ODD, fid >> 8, fid & 0xFF, tlv.encode(TAG_OFFSET, offset.to_bytes(2, "big")), le=0, extended=True)


def delete_file(fid: int) -> bytes:
    return apdu(CLA_ISO, Ins.DELETE_FILE, 0x02, 0x00, fid.to_bytes(2, "big"))


def listed(hsm: "Device") -> set[int]:
    return set(hsm.read("enumerate objects", hsm.mapper.enumerate_objects) or ())  # type: ignore[arg-type]


def write_objects(hsm: "Device", objects: dict[int, bytes], check: str) -> None:
    """Write data objects with a verified user PIN (the session must be open)."""
    for fid, data in objects.items():
        expect_sw(hsm, check, f"UPDATE BINARY {fid:04X} (logged in)", update_binary(fid, data), lambda sw: sw == OK, "9000")
    missing = sorted(set(objects) - listed(hsm))
    hsm.precondition(not missing, f"objects written with 9000 but not listed by ENUMERATE: {', '.join(f'{f:04X}' for f in missing)}", check)


def check_erased(hsm: "Device", fids: Iterable[int], check: str) -> None:
    """The objects are neither listed nor readable (6A82) any more."""
    fids = sorted(fids)
    still = sorted(set(fids) & listed(hsm))
    if still:
        hsm.fail(f"ENUMERATE still lists {', '.join(f'{f:04X}' for f in still)}", (check,))
    for fid in fids:
        expect_sw(hsm, check, f"READ BINARY {fid:04X} (erased)", read_binary(fid), lambda sw: sw == SW.FILE_NOT_FOUND, "6A82 (no such file)")
    hsm.decided(check)


# -- an RSA key for DECIPHER ------------------------------------------------------------------------


def rsa_gakp(key_id: int, bits: int = 2048) -> bytes:
    """GENERATE ASYMMETRIC KEY PAIR for an RSA key (the alphabet's keys are EC: no DECIPHER)."""
    from hsm_lifecycle.cvc import encode_oid
    from hsm_lifecycle.protocol import OID_TA_RSA_V1_5_SHA256, TAG_CV_CAR, TAG_CV_CHR, TAG_CV_CPI, TAG_CV_PUBLIC_KEY, TAG_OID

    key = tlv.encode_constructed(
        TAG_CV_PUBLIC_KEY,
        [tlv.encode(TAG_OID, encode_oid(OID_TA_RSA_V1_5_SHA256)), tlv.encode(0x82, (65537).to_bytes(3, "big")), tlv.encode(0x02, bits.to_bytes(2, "big"))],
    )
    body = b"".join([tlv.encode(TAG_CV_CPI, b"\x00"), tlv.encode(TAG_CV_CAR, b"UTCA00001"), key, tlv.encode(TAG_CV_CHR, b"UTCTSUITE00002")])
    return apdu(CLA_ISO, Ins.GENERATE_ASYMMETRIC_KEY_PAIR, key_id, 0, body, le=0, extended=True)


def decipher_raw(key_id: int, bits: int = 2048) -> bytes:
    """DECIPHER, raw RSA (algorithm 21, as OpenSC sends it), over a cryptogram below any modulus of that size."""
    from hsm_lifecycle.protocol import ALGO_RSA_DECRYPT_RAW

    cryptogram = b"\x00" + secrets.token_bytes(bits // 8 - 1)
    return apdu(CLA_PROPRIETARY, Ins.DECIPHER, key_id, ALGO_RSA_DECRYPT_RAW, cryptogram, le=0, extended=True)


# -- malformed commands -------------------------------------------------------------------------


def refused_in_time(hsm: "Device", check: str, what: str, capdu: bytes, slow: list[str]) -> int:
    """R22: an ISO 7816-4 error status (6xxx, not 9000), timed against the deadline."""
    t0 = time.perf_counter()
    rsp = expect_sw(hsm, check, what, capdu, REFUSED, "an ISO 7816-4 error status (6xxx)")
    took = time.perf_counter() - t0
    if took > DEADLINE_S:
        slow.append(f"{what}: {took:.2f} s")
    return rsp.sw
