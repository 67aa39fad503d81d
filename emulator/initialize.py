"""INITIALIZE DEVICE (`80 50 00 00 Lc <TLVs>`, §2).

The first initialization takes any well-formed 8-byte code as the SO-PIN, with 15 tries (R21).
Later ones verify it (R01, R02): a wrong code spends an SO try, a right one wipes every object
except the device identity (R07, R08) and sets the new user PIN, counter and options.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from hsm_lifecycle.emulator.apdu import ApduError, Command, sw_hex
from hsm_lifecycle.emulator.dkek import kcv as dkek_kcv
from hsm_lifecycle.emulator.identity import new_device_key_der
from hsm_lifecycle.emulator.objects import PROTECTED_FIDS
from hsm_lifecycle.emulator.pins import (
    MAX_SO_TRIES,
    present_so_pin,
    so_blocked,
    transport_active,
    user_pin_length_ok,
    wrong_pin_sw,
)
from hsm_lifecycle.emulator.profile import TRIES_SW, Fault
from hsm_lifecycle.emulator.state import CardState, Dkek
from hsm_lifecycle.emulator.store import PersistencePoint
from hsm_lifecycle import protocol, tlv
from hsm_lifecycle.protocol import SW

if TYPE_CHECKING:
    from hsm_lifecycle.emulator.card import CardContext

KNOWN_TAGS = frozenset(
    {
        protocol.TAG_INIT_OPTIONS,
        protocol.TAG_INIT_USER_PIN,
        protocol.TAG_INIT_SO_PIN,
        protocol.TAG_INIT_USER_PIN_RETRY,
        protocol.TAG_INIT_DKEK_SHARES,
        protocol.TAG_INIT_PUBLIC_KEY_AUTH,
        protocol.TAG_INIT_BIO_1,
        protocol.TAG_INIT_BIO_2,
        protocol.TAG_INIT_KEY_DOMAINS,
    }
)
FIRST_INIT_WRONG_SO_TRIES = 10  # what Fault.FIRST_INIT_SETS_WRONG_TRIES sets instead of 15
PKA_MAX_KEYS = 90  # sc-hsm-tool's bound for tag 93
AID_MAX = 16


@dataclass(frozen=True)
class InitRequest:
    """A well-formed INITIALIZE DEVICE body."""

    so_pin: bytes
    user_pin: bytes
    options: int
    user_tries: int
    dkek_shares: int | None
    public_key_auth: bytes | None
    bio_aids: tuple[bytes | None, bytes | None]
    key_domains: int | None


def retries_allowed(pin_length: int) -> int:
    """CardContact's rule: 6 bytes -> 3 tries, 7 -> 5, longer -> 10."""
    return protocol.USER_PIN_TRIES_BY_LENGTH.get(pin_length, protocol.USER_PIN_TRIES_MAX)


def _malformed(why: str) -> ApduError:
    return ApduError(SW.WRONG_DATA, why)


def parse_request(data: bytes, retries_by_length: bool) -> InitRequest:
    """Decode and validate the TLVs; every problem is 6A80 and changes nothing."""
    try:
        items = tlv.require_unique(tlv.decode_all(data), "INITIALIZE DEVICE")
    except tlv.TlvError as exc:
        raise _malformed(str(exc)) from exc
    unknown = set(items) - KNOWN_TAGS
    if unknown:
        raise _malformed(f"unknown tags {sorted(unknown)}")

    def value(tag: int, sizes: range | None = None, required: bool = False) -> bytes | None:
        item = items.get(tag)
        if item is None:
            if required:
                raise _malformed(f"tag {tag:02X} missing")
            return None
        if sizes is not None and len(item.value) not in sizes:
            raise _malformed(f"tag {tag:02X} has length {len(item.value)}")
        return item.value

    so_pin = value(protocol.TAG_INIT_SO_PIN, range(8, 9), required=True)
    user_pin = value(
        protocol.TAG_INIT_USER_PIN, range(protocol.USER_PIN_MIN, protocol.USER_PIN_MAX + 1), True
    )
    assert so_pin is not None and user_pin is not None and user_pin_length_ok(user_pin)
    options = value(protocol.TAG_INIT_OPTIONS, range(2, 3))
    retry = value(protocol.TAG_INIT_USER_PIN_RETRY, range(1, 2))
    user_tries = retry[0] if retry is not None else protocol.USER_PIN_TRIES_DEFAULT
    if not 1 <= user_tries <= protocol.USER_PIN_TRIES_MAX:
        raise _malformed(f"user PIN retry counter {user_tries} outside 1..10")
    if retries_by_length and user_tries > retries_allowed(len(user_pin)):
        raise _malformed(f"{user_tries} tries not allowed for a {len(user_pin)}-byte PIN")
    dkek = value(protocol.TAG_INIT_DKEK_SHARES, range(1, 2))
    pka = value(protocol.TAG_INIT_PUBLIC_KEY_AUTH, range(2, 3))
    if pka is not None and not 1 <= pka[1] <= pka[0] <= PKA_MAX_KEYS:
        raise _malformed(f"public key authentication {pka[1]} of {pka[0]} keys")
    bio = (
        value(protocol.TAG_INIT_BIO_1, range(1, AID_MAX + 1)),
        value(protocol.TAG_INIT_BIO_2, range(1, AID_MAX + 1)),
    )
    domains = value(protocol.TAG_INIT_KEY_DOMAINS, range(1, 2))
    return InitRequest(
        so_pin=so_pin,
        user_pin=user_pin,
        options=int.from_bytes(options, "big") if options is not None else 0,
        user_tries=user_tries,
        dkek_shares=dkek[0] if dkek is not None else None,
        public_key_auth=pka,
        bio_aids=bio,
        key_domains=domains[0] if domains is not None else None,
    )


def new_dkek(shares: int | None) -> Dkek | None:
    """Tag 92: absent = no DKEK; 0 = the card makes a random one; n = wait for n shares."""
    if shares is None:
        return None
    if shares == 0:
        key = secrets.token_bytes(32)
        return Dkek(0, 0, dkek_kcv(key), key)
    return Dkek(shares, shares, bytes(8), bytes(32))


def identity_objects(state: CardState) -> tuple[dict[int, bytes], dict[int, bytes]]:
    """The files and keys that make up the device identity (2F02, CC00): INITIALIZE keeps them."""
    files = {fid: blob for fid, blob in state.files.items() if fid in PROTECTED_FIDS}
    keys = {fid: blob for fid, blob in state.keys.items() if fid in PROTECTED_FIDS}
    return files, keys


def apply_request(card: CardContext, state: CardState, request: InitRequest) -> CardState:
    """The state after an accepted INITIALIZE: new PINs and options, objects wiped (R07)."""
    if Fault.REINIT_KEEPS_KEYS in card.faults:
        files, keys = dict(state.files), dict(state.keys)
    else:
        files, keys = identity_objects(state)
    kept = {
        Fault.REINIT_KEEPS_CERTIFICATES: (protocol.FID_PREFIX_EE_CERT,),
        Fault.REINIT_KEEPS_DATA_OBJECTS: (protocol.FID_PREFIX_PROTECTED_DATA, protocol.FID_PREFIX_READABLE_DATA),
    }
    for fault, prefixes in kept.items():
        if fault in card.faults:
            files.update({fid: blob for fid, blob in state.files.items() if fid >> 8 in prefixes})
    reinit = state.user_pin is not None
    tries = request.user_tries
    if reinit and Fault.REINIT_KEEPS_COUNTER in card.faults:
        tries = state.user_max
    if not reinit and Fault.FIRST_INIT_IGNORES_RETRIES in card.faults:
        tries = 3
    fresh = replace(
        state,
        user_pin=state.user_pin if Fault.REINIT_KEEPS_USER_PIN in card.faults and reinit else request.user_pin,
        so_pin=bytes(reversed(request.so_pin)) if Fault.REINIT_CHANGES_SO_PIN in card.faults and reinit else state.so_pin,
        user_tries=tries,
        user_max=tries,
        options=request.options,
        transport_pin=bool(request.options & protocol.OPTION_TRANSPORT_PIN),
        dkek=state.dkek
        if Fault.DKEK_SURVIVES_INIT in card.faults and state.dkek is not None
        else new_dkek(request.dkek_shares),
        public_key_auth=request.public_key_auth,
        bio_aids=request.bio_aids,
        key_domains=request.key_domains,
        files=files,
        keys=keys,
    )
    if Fault.IDENTITY_CHANGES_ON_INIT in card.faults:
        fresh = card.reidentify(fresh)
    if Fault.INIT_REGENERATES_DEVICE_KEY in card.faults:
        # CC00 anew, 2F02 untouched: the certificate no longer names the device's key.
        fresh = replace(fresh, keys={**fresh.keys, protocol.FID_DEVICE_KEY: new_device_key_der()})
    return fresh


def initialize_device(card: CardContext, cmd: Command) -> tuple[bytes, int]:
    if cmd.p1p2 != 0x0000:
        raise ApduError(SW.INCORRECT_P1P2, "P1P2 must be 0000")
    if not cmd.data:
        raise ApduError(SW.WRONG_LENGTH, "INITIALIZE DEVICE needs its TLVs")
    state = card.state
    try:
        request = parse_request(cmd.data, card.profile.retries_by_pin_length)
    except ApduError:
        if Fault.INIT_WRONG_LENGTH_SPENDS_TRY in card.faults and state.initialized and state.so_tries > 0:
            card.commit(replace(state, so_tries=state.so_tries - 1), PersistencePoint.SO_TRY_SPENT)
        raise
    if not state.initialized:
        # R21: any well-formed code becomes the SO-PIN.
        so_tries = (
            FIRST_INIT_WRONG_SO_TRIES
            if Fault.FIRST_INIT_SETS_WRONG_TRIES in card.faults
            else MAX_SO_TRIES
        )
        if Fault.FIRST_INIT_ONLY_FACTORY_CODE in card.faults and request.so_pin != protocol.DEFAULT_SO_PIN:
            return b"", SW.SECURITY_STATUS_NOT_SATISFIED
        code = protocol.DEFAULT_SO_PIN if Fault.FIRST_INIT_KEEPS_FACTORY_CODE in card.faults else request.so_pin
        first = replace(state, so_pin=code, so_tries=so_tries)
        card.commit(apply_request(card, first, request), PersistencePoint.DEVICE_INITIALIZED)
    elif Fault.INITIALIZE_IGNORES_SO_PIN in card.faults:
        card.commit(apply_request(card, state, request), PersistencePoint.DEVICE_INITIALIZED)
    else:
        if so_blocked(card):
            return b"", SW.AUTH_METHOD_BLOCKED  # R03: not even the right code helps
        accepted = present_so_pin(
            card,
            request.so_pin,
            lambda target: apply_request(card, target, request),
            PersistencePoint.DEVICE_INITIALIZED,
        )
        if not accepted:
            if Fault.WRONG_INIT_SPENDS_TWO in card.faults and card.state.so_tries > 0:
                card.commit(replace(card.state, so_tries=card.state.so_tries - 1), PersistencePoint.SO_TRY_SPENT)
            if Fault.WRONG_INIT_SPENDS_USER_TRY in card.faults and card.state.user_tries > 0:
                card.commit(replace(card.state, user_tries=card.state.user_tries - 1), PersistencePoint.USER_TRY_SPENT)
            setting = card.profile.init_wrong_so_sw
            if setting == TRIES_SW:
                return b"", wrong_pin_sw(card, card.state.so_tries)
            return b"", sw_hex(setting)
    # A transport PIN cannot be verified (R11), so no session can start under it.
    if card.profile.auth_after_init and not transport_active(card):
        card.login()
    else:
        card.logout()
    card.set_current_ef(None)
    return b"", SW.OK
