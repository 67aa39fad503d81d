"""Objects on the token: the device identity, what each FID prefix means, the storage budget.

The identity (key CC00, EF 2F02) comes from `emulator.identity` and survives INITIALIZE (R08).
Storage is one budget (`Profile.storage_bytes`, the real token's ~76 KB EEPROM) shared by every
file and key, identity included; a write or key generation that would exceed it is refused
with 6A84 before anything changes.
"""

from __future__ import annotations

from dataclasses import replace

from hsm_lifecycle.emulator.identity import DeviceIdentity, Manufacturer, manufacture_identity
from hsm_lifecycle.emulator.keys import KeyStateError, StoredKey
from hsm_lifecycle.emulator.state import CardState, StateFileError
from hsm_lifecycle import cvc, protocol

# Per-file bookkeeping a card keeps besides the content (FID, size, access rules): a model,
# like StoredKey.eeprom_bytes' object header.
FILE_OVERHEAD = 8
PROTECTED_FIDS = frozenset({protocol.FID_C_DEVAUT, protocol.FID_DEVICE_KEY})
MF = protocol.FID_MF


def is_key_fid(fid: int) -> bool:
    return fid >> 8 == protocol.FID_PREFIX_PRIVATE_KEY


def needs_pin_to_read(fid: int) -> bool:
    """CD files hold PIN-protected data (§4)."""
    return fid >> 8 == protocol.FID_PREFIX_PROTECTED_DATA


def with_identity(state: CardState, identity: DeviceIdentity) -> CardState:
    """`state` carrying `identity` as key CC00, EF 2F02 and the device CHR."""
    return replace(
        state,
        device_chr=identity.chr,
        files={**state.files, protocol.FID_C_DEVAUT: identity.c_devaut},
        keys={**state.keys, protocol.FID_DEVICE_KEY: identity.device_key_der},
    )


def new_identity(state: CardState, manufacturer: Manufacturer | None = None) -> CardState:
    """A brand-new device identity (firmware update, or the R08 fault): generation + 1."""
    fresh = with_identity(state, manufacture_identity(manufacturer=manufacturer))
    return replace(fresh, identity_generation=state.identity_generation + 1)


def serial_of(state: CardState) -> str:
    return cvc.serial_from_chr(state.device_chr)


class KeyCache:
    """Parsed keys by FID, so SIGN and the storage count do not re-parse PKCS#8 each time."""

    def __init__(self) -> None:
        self._parsed: dict[int, tuple[bytes, StoredKey]] = {}

    def get(self, fid: int, blob: bytes) -> StoredKey:
        cached = self._parsed.get(fid)
        if cached is not None and cached[0] == blob:
            return cached[1]
        key = StoredKey.from_bytes(blob)
        self._parsed[fid] = (blob, key)
        return key

    def put(self, fid: int, key: StoredKey) -> None:
        self._parsed[fid] = (key.to_bytes(), key)

    def storage_used(self, state: CardState) -> int:
        files = sum(len(content) + FILE_OVERHEAD for content in state.files.values())
        keys = sum(self.get(fid, blob).eeprom_bytes() for fid, blob in state.keys.items())
        return files + keys

    def check(self, state: CardState) -> CardState:
        """Refuse (StateFileError) a loaded state whose identity or keys are unusable."""
        missing = PROTECTED_FIDS - set(state.files) - set(state.keys)
        if missing:
            raise StateFileError(f"device identity incomplete: {sorted(missing)} missing")
        try:
            serial_of(state)
            for fid, blob in state.keys.items():
                self.get(fid, blob)
        except (KeyStateError, cvc.CvcError) as exc:
            raise StateFileError(f"state holds an unusable key or CHR: {exc}") from exc
        return state
