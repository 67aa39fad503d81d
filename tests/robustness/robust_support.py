"""Helpers shared by the robustness tests: hypothesis as a grammar chooser, fast state dirs,
and reading a token's lifecycle state back through APDUs only."""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from hsm_lifecycle.emulator import VirtualToken
from hsm_lifecycle import tlv
from hsm_lifecycle.protocol import AID, FID_PREFIX_PRIVATE_KEY, TAG_FCP_PROPRIETARY, tries_from_sw
from hsm_lifecycle.model import ExtState

# CI budget: every hypothesis test here stays around a second or two.
FAST = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FEW = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])


class DataChooser:
    """The fuzz grammar's chooser on top of hypothesis' `st.data()`: shrinkable draws."""

    def __init__(self, data: st.DataObject) -> None:
        self.data = data

    def integer(self, low: int, high: int) -> int:
        return self.data.draw(st.integers(low, high))

    def raw(self, size: int) -> bytes:
        return self.data.draw(st.binary(min_size=size, max_size=size))


SELECT = bytes([0x00, 0xA4, 0x04, 0x00, len(AID)]) + AID + b"\x00"
QUERY_SO = bytes.fromhex("00200088")
QUERY_USER = bytes.fromhex("00200081")
ENUMERATE = bytes.fromhex("80580000000000")  # case 2, extended: Le 0000 (65536)
READ_2F02 = bytes.fromhex("00B12F02000004540200000000")


def sw_of(rapdu: bytes) -> int:
    return int.from_bytes(rapdu[-2:], "big")


@dataclass(frozen=True)
class Seen:
    """A token's lifecycle state as a client sees it: free reads only (nothing changes)."""

    initialized: bool
    so_tries: int | None
    user: str  # tries left as a number, or "transport"
    options: int
    keys: int
    identity: str  # "kept" or "new": EF.C_DevAut compared with the one the token had before

    @classmethod
    def of_model(cls, state: ExtState, before: ExtState) -> Seen:
        user = "transport" if state.transport else str(state.user_tries if state.is_initialized else 0)
        identity = "kept" if state.identity == before.identity else "new"
        return cls(state.is_initialized, state.so_tries, user, state.options, state.keys, identity)


def look(token: VirtualToken, identity_before: bytes) -> Seen:
    """SELECT (options from FCP tag 85), the two status queries, ENUMERATE and EF 2F02."""
    fcp = token.transmit(SELECT)
    assert sw_of(fcp) == 0x9000, fcp.hex()
    inner = tlv.decode_all(tlv.decode_exact(fcp[:-2]).value)
    proprietary = tlv.find(inner, TAG_FCP_PROPRIETARY)
    assert proprietary is not None
    options = int.from_bytes(proprietary.value[:2], "big")
    so_sw = sw_of(token.transmit(QUERY_SO))
    initialized = so_sw != 0x6A88
    so = None if not initialized else 0 if so_sw == 0x6983 else tries_from_sw(so_sw)
    user_sw = sw_of(token.transmit(QUERY_USER))
    user = "transport" if user_sw == 0x6984 else "0" if user_sw in (0x6983, 0x6A88) else str(tries_from_sw(user_sw))
    listed = token.transmit(ENUMERATE)
    fids = [int.from_bytes(listed[i : i + 2], "big") for i in range(0, len(listed) - 2, 2)]
    keys = sum(1 for fid in fids if fid >> 8 == FID_PREFIX_PRIVATE_KEY and fid & 0xFF)
    identity = token.transmit(READ_2F02)[:-2]
    return Seen(initialized, so, user, options, keys, "kept" if identity == identity_before else "new")
