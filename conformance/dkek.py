"""DKEK key backup on a token: the reads R23's check adds to its judged steps, and the backup
advice `doctor` gives.

The DKEK commands themselves are abstract commands (dkek_status, import_dkek_share, wrap_key,
unwrap_key): the mapper sends them as OpenSC's sc-hsm-tool does and the oracle judges them. This
module reads what a judged step cannot: the key a restored blob holds signs like the wrapped one.
"""

from __future__ import annotations

from dataclasses import dataclass

from hsm_lifecycle import tlv
from hsm_lifecycle.conformance.mapper import DkekStatus, Mapper, apdu
from hsm_lifecycle.conformance.transport.base import Response
from hsm_lifecycle.protocol import (
    ALGO_ECDSA_RAW,
    CLA_ISO,
    CLA_PROPRIETARY,
    FID_PREFIX_EE_CERT,
    FID_PREFIX_PRIVATE_KEY,
    TAG_OFFSET,
    Ins,
)

__all__ = ["BackupAdvice", "DkekStatus", "backup_advice", "delete_key", "read_request", "sign_hash"]


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
    rsp, state = mapper.dkek_status()  # the same free query as the abstract dkek_status
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
