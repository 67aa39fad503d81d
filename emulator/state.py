"""The persistent state of one emulated token, and its JSON form.

`CardState` is immutable: every change builds a new state, so the last durable snapshot can be
kept without copying (the in-memory store just keeps the object). Mappings inside are never
mutated in place; helpers return new ones. Volatile card-session state (who is authenticated,
the current EF) lives in `emulator.applet.Session`, never here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from hsm_lifecycle.emulator.profile import Profile
from hsm_lifecycle import protocol


class StateFileError(Exception):
    """A state file is corrupt, of an unknown schema, or unreadable. Never reset silently."""


@dataclass(frozen=True)
class Dkek:
    """Device key encryption key bookkeeping (tag 92 of INITIALIZE)."""

    shares: int  # total shares announced at INITIALIZE (0: the card made a random DKEK)
    outstanding: int  # shares still to import
    kcv: bytes  # key check value, 8 bytes (zeros while shares are outstanding)
    key: bytes  # the DKEK itself, or the XOR of the shares imported so far


@dataclass(frozen=True)
class CardState:
    """Everything the token keeps across power cycles."""

    profile: Profile
    device_chr: str  # CHR of the device CVC in EF 2F02 (the serial is this minus 5 chars)
    identity_generation: int = 0  # +1 at every new device identity (firmware update)
    # PIN lifecycle. so_pin None = never initialized (shipped / after a firmware update).
    so_pin: bytes | None = None
    so_tries: int = 0
    user_pin: bytes | None = None
    user_tries: int = 0
    user_max: int = 0
    options: int = 0
    transport_pin: bool = False  # option 0x0002 active and user PIN not yet changed
    dkek: Dkek | None = None
    public_key_auth: bytes | None = None  # tag 93 (N, M); stored, not enforced
    bio_aids: tuple[bytes | None, bytes | None] = (None, None)  # tags 95 / 96
    key_domains: int | None = None  # tag 97
    # Objects: EF contents and private keys (PKCS#8 DER, emulator.keys.StoredKey), by FID.
    # The device identity is key CC00 and EF 2F02.
    files: Mapping[int, bytes] = field(default_factory=dict)
    keys: Mapping[int, bytes] = field(default_factory=dict)
    so_blocked_updates: int = 0  # firmware updates admitted only because the SO-PIN was blocked

    @property
    def initialized(self) -> bool:
        return self.so_pin is not None

    def with_file(self, fid: int, content: bytes) -> CardState:
        return replace(self, files={**self.files, fid: bytes(content)})

    def without_file(self, fid: int) -> CardState:
        return replace(self, files={k: v for k, v in self.files.items() if k != fid})

    def with_key(self, fid: int, blob: bytes) -> CardState:
        return replace(self, keys={**self.keys, fid: bytes(blob)})

    def without_key(self, fid: int) -> CardState:
        return replace(self, keys={k: v for k, v in self.keys.items() if k != fid})


def _hex(value: bytes | None) -> str | None:
    return None if value is None else value.hex()


def _unhex(value: str | None) -> bytes | None:
    return None if value is None else bytes.fromhex(value)


def _objects(mapping: Mapping[int, bytes]) -> dict[str, str]:
    # In creation order, not sorted: ENUMERATE OBJECTS answers in that order after a power cycle too.
    return {f"{fid:04X}": blob.hex() for fid, blob in mapping.items()}


def _unobjects(data: Mapping[str, str]) -> dict[int, bytes]:
    return {int(fid, 16): bytes.fromhex(blob) for fid, blob in data.items()}


def to_json(state: CardState) -> dict[str, Any]:
    dkek = state.dkek
    return {
        "profile": state.profile.to_json(),
        "device_chr": state.device_chr,
        "identity_generation": state.identity_generation,
        "so_pin": _hex(state.so_pin),
        "so_tries": state.so_tries,
        "user_pin": _hex(state.user_pin),
        "user_tries": state.user_tries,
        "user_max": state.user_max,
        "options": state.options,
        "transport_pin": state.transport_pin,
        "dkek": None
        if dkek is None
        else {"shares": dkek.shares, "outstanding": dkek.outstanding, "kcv": dkek.kcv.hex(),
              "key": dkek.key.hex()},
        "public_key_auth": _hex(state.public_key_auth),
        "bio_aids": [_hex(aid) for aid in state.bio_aids],
        "key_domains": state.key_domains,
        "files": _objects(state.files),
        "keys": _objects(state.keys),
        "so_blocked_updates": state.so_blocked_updates,
    }


def _int(value: Any) -> int:
    """A JSON integer, nothing coerced into one (no "3", 1.5 or true): a file that says
    otherwise was not written by this emulator."""
    if type(value) is not int:
        raise TypeError(f"expected an integer, got {value!r}")
    return value


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"expected true or false, got {value!r}")
    return value


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {value!r}")
    return value


def from_json(data: Mapping[str, Any]) -> CardState:
    """Rebuild a state; any missing or mistyped field is a StateFileError."""
    try:
        raw_dkek = data["dkek"]
        bio = data["bio_aids"]
        if len(bio) != 2:
            raise ValueError("bio_aids must hold two entries")
        state = CardState(
            profile=Profile.from_json(data["profile"]),
            device_chr=_text(data["device_chr"]),
            identity_generation=_int(data["identity_generation"]),
            so_pin=_unhex(data["so_pin"]),
            so_tries=_int(data["so_tries"]),
            user_pin=_unhex(data["user_pin"]),
            user_tries=_int(data["user_tries"]),
            user_max=_int(data["user_max"]),
            options=_int(data["options"]),
            transport_pin=_bool(data["transport_pin"]),
            dkek=None
            if raw_dkek is None
            else Dkek(_int(raw_dkek["shares"]), _int(raw_dkek["outstanding"]),
                      bytes.fromhex(raw_dkek["kcv"]), bytes.fromhex(raw_dkek["key"])),
            public_key_auth=_unhex(data["public_key_auth"]),
            bio_aids=(_unhex(bio[0]), _unhex(bio[1])),
            key_domains=None if data["key_domains"] is None else _int(data["key_domains"]),
            files=_unobjects(data["files"]),
            keys=_unobjects(data["keys"]),
            so_blocked_updates=_int(data["so_blocked_updates"]),
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise StateFileError(f"state content is malformed: {exc!r}") from exc
    _check_ranges(state)
    return state


def _check_ranges(state: CardState) -> None:
    """Values no sequence of commands can produce (a hand-edited or foreign file, re-checksummed):
    refused here rather than met later as an internal error in the middle of a command."""
    problems = []
    if not 0 <= state.so_tries <= 15:
        problems.append(f"so_tries {state.so_tries}")
    if not 0 <= state.user_tries <= max(state.user_max, 0) <= protocol.USER_PIN_TRIES_MAX:
        problems.append(f"user_tries {state.user_tries} / max {state.user_max}")
    if not 0 <= state.options <= 0xFFFF:
        problems.append(f"options {state.options}")
    if state.initialized:
        if len(state.so_pin or b"") != protocol.SO_PIN_LENGTH:
            problems.append("an SO-PIN that is not 8 bytes")
        if state.user_pin is None or not protocol.USER_PIN_MIN <= len(state.user_pin) <= protocol.USER_PIN_MAX:
            problems.append("an initialized token without a 6..16-byte user PIN")
        if state.user_max < 1:
            problems.append(f"user max {state.user_max} on an initialized token")
    elif (state.so_tries, state.user_tries, state.user_max, state.options) != (0, 0, 0, 0) or (
        state.user_pin is not None or state.transport_pin or state.dkek is not None
    ):
        problems.append("PIN counters, options, a user PIN or a DKEK on an uninitialized token")
    if state.transport_pin and not state.options & protocol.OPTION_TRANSPORT_PIN:
        problems.append("a transport PIN without option 0x0002")
    if state.identity_generation < 0 or state.so_blocked_updates < 0:
        problems.append(f"identity generation {state.identity_generation}, SO-blocked updates {state.so_blocked_updates}")
    if any(not 0 <= fid <= 0xFFFF for fid in (*state.files, *state.keys)):
        problems.append("a file identifier outside 0000..FFFF")
    if any(fid >> 8 != protocol.FID_PREFIX_PRIVATE_KEY for fid in state.keys):
        problems.append("a key outside the CCxx identifiers")
    dkek = state.dkek
    if dkek is not None and not (0 <= dkek.outstanding <= dkek.shares <= 0xFF and len(dkek.key) == 32 and len(dkek.kcv) == 8):
        problems.append(f"DKEK with {dkek.outstanding} of {dkek.shares} shares outstanding, a {len(dkek.key)}-byte key")
    if state.key_domains is not None and not 0 <= state.key_domains <= 0xFF:
        problems.append(f"key_domains {state.key_domains}")
    if problems:
        raise StateFileError("state values out of range: " + ", ".join(problems))
