"""DKEK key backup on a token: the APDUs of R23's check, and the backup advice `doctor` gives.

The commands are the ones OpenSC's sc-hsm-tool sends (protocol digest §4): DKEK status
`80 52 00 00 00`, IMPORT DKEK SHARE `80 52 00 00 20 <share>`, WRAP KEY `80 72 <id> 92`, and
UNWRAP KEY `80 74 <id> 93` after the blob was written to EF 2F10. What the token should answer
is the DKEK sub-model's (`model.dkek`); this module only sends and reads.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from hsm_lifecycle import tlv
from hsm_lifecycle.conformance.mapper import Mapper, apdu
from hsm_lifecycle.conformance.transport.base import Response
from hsm_lifecycle.protocol import (
    ALGO_ECDSA_RAW,
    CLA_ISO,
    CLA_PROPRIETARY,
    FID_PREFIX_EE_CERT,
    FID_PREFIX_PRIVATE_KEY,
    SW,
    TAG_DISCRETIONARY_DATA,
    TAG_OFFSET,
    Ins,
)

FID_WRAPPED_KEY = 0x2F10
WRAP_P2 = 0x92
UNWRAP_P2 = 0x93
# The suite's DKEK shares, by name. Test values, never an owner's: a token the check runs on
# ends re-initialized without a DKEK.
SHARES: dict[str, bytes] = {name: hashlib.sha256(f"hsm-lifecycle DKEK share {name}".encode()).digest()
                            for name in ("A", "B")}  # fmt: skip


@dataclass(frozen=True)
class DkekStatus:
    shares: int
    outstanding: int
    kcv: bytes


def status(mapper: Mapper) -> tuple[Response, DkekStatus | None]:
    """`80 52 00 00 00`: free, no PIN (sc-hsm-tool shows it on every run)."""
    rsp = mapper.send(apdu(CLA_PROPRIETARY, Ins.IMPORT_DKEK_SHARE, 0, 0, le=0))
    if rsp.sw != SW.OK or len(rsp.data) < 10:
        return rsp, None
    return rsp, DkekStatus(rsp.data[0], rsp.data[1], rsp.data[2:10])


def import_share(mapper: Mapper, share: bytes) -> Response:
    return mapper.send(apdu(CLA_PROPRIETARY, Ins.IMPORT_DKEK_SHARE, 0, 0, share, le=0))


def wrap(mapper: Mapper, key_id: int) -> Response:
    return mapper.send(apdu(CLA_PROPRIETARY, Ins.WRAP_KEY, key_id, WRAP_P2, le=0, extended=True))


def unwrap(mapper: Mapper, key_id: int, blob: bytes) -> Response:
    """As OpenSC does it: the blob into EF 2F10, then UNWRAP without data. A refused write is
    the answer (a token that cannot take the blob cannot unwrap it)."""
    data = tlv.encode(TAG_OFFSET, b"\x00\x00") + tlv.encode(TAG_DISCRETIONARY_DATA, blob)
    written = mapper.send(apdu(CLA_ISO, Ins.UPDATE_BINARY_ODD, FID_WRAPPED_KEY >> 8, FID_WRAPPED_KEY & 0xFF, data,
                               extended=True))
    if written.sw != SW.OK:
        return written
    return mapper.send(apdu(CLA_PROPRIETARY, Ins.UNWRAP_KEY, key_id, UNWRAP_P2))


def sign_hash(mapper: Mapper, key_id: int, digest: bytes) -> Response:
    return mapper.send(apdu(CLA_PROPRIETARY, Ins.SIGN, key_id, ALGO_ECDSA_RAW, digest, le=0, extended=True))


def read_request(mapper: Mapper, key_id: int) -> Response:
    """The CV request GAKP left in CExx (it carries the key's public point)."""
    fid = FID_PREFIX_EE_CERT << 8 | key_id
    return mapper.send(apdu(CLA_ISO, Ins.READ_BINARY_ODD, fid >> 8, fid & 0xFF, tlv.encode(TAG_OFFSET, b"\x00\x00"),
                            le=0, extended=True))


def delete_key(mapper: Mapper, key_id: int) -> Response:
    return mapper.send(apdu(CLA_ISO, Ins.DELETE_FILE, 0x02, 0x00, bytes([FID_PREFIX_PRIVATE_KEY, key_id])))


# ---------------------------------------------------------------------------------------------
# Advice before a re-initialization


@dataclass(frozen=True)
class BackupAdvice:
    """Can the keys on this token be backed up before INITIALIZE wipes them (R23)?"""

    possible: bool
    reason: str
    commands: tuple[str, ...]  # what the owner runs, in order (sc-hsm-tool, OpenSC)


def backup_advice(mapper: Mapper, key_ids: list[int] | None = None) -> BackupAdvice:
    """Reads the DKEK status (free) and says whether and how the keys can be saved.

    `key_ids`: the keys to name in the commands (default: what ENUMERATE OBJECTS lists)."""
    ids = sorted(key_ids if key_ids is not None else (mapper.key_ids() or ()))
    rsp, state = status(mapper)
    if state is None:
        return BackupAdvice(
            False,
            f"no DKEK (DKEK status answered {rsp.sw_hex}): the token was initialized without --dkek-shares, "
            "so its keys can never leave it; a re-initialization loses them for good",
            (),
        )
    if state.outstanding:
        return BackupAdvice(
            False,
            f"the DKEK is incomplete: {state.outstanding} of {state.shares} share(s) still to import; "
            "import them first, then wrap each key",
            ("sc-hsm-tool --import-dkek-share <share file>",),
        )
    wraps = tuple(
        f"sc-hsm-tool --wrap-key key-{key_id:02x}.bin --key-reference {key_id} --pin <user PIN>" for key_id in ids
    )
    return BackupAdvice(
        True,
        f"a complete DKEK (key check value {state.kcv.hex().upper()}) is present: wrap every key now and keep the "
        "share files; after INITIALIZE with the same number of shares, import them and unwrap",
        wraps
        + ("sc-hsm-tool --initialize --so-pin <SO-PIN> --pin <user PIN> --dkek-shares <n>",
           "sc-hsm-tool --import-dkek-share <share file>  (each share)")
        + tuple(f"sc-hsm-tool --unwrap-key key-{key_id:02x}.bin --key-reference {key_id} --pin <user PIN>"
                for key_id in ids),
    )  # fmt: skip
