"""What a test asks of the device beside the alphabet's judged steps: free reads the
invariants use (identity, key count), and the few probes outside the alphabet that need the
model's state (SO-PIN VERIFY with data, SIGN right after a reset, a stale user PIN). The raw
APDU helpers they share are conformance.offalphabet's."""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable


from hsm_lifecycle.conformance import offalphabet as raw
from hsm_lifecycle.conformance.interlocks import InterlockRefused
from hsm_lifecycle.model.commands import Command
from hsm_lifecycle.model.divergence import blame_key_count
from hsm_lifecycle.protocol import SO_PIN_TRIES

if TYPE_CHECKING:
    from hsm_lifecycle.conformance.device import Device


# -- free reads the invariants use --------------------------------------------------------------


def read(hsm: Device, what: str, fn: Callable[[], object]) -> object:
    hsm.recorder.context(what, hsm.state.abstract, ())
    return fn()


def identity(hsm: Device) -> bytes:
    return read(hsm, "read EF.C_DevAut", hsm.mapper.read_identity)  # type: ignore[return-value]


def key_count(hsm: Device) -> int | None:
    ids = read(hsm, "enumerate objects", hsm.mapper.key_ids)
    return None if ids is None else len(ids)  # type: ignore[arg-type]


def check_keys(hsm: Device) -> None:
    """ENUMERATE must list exactly as many private keys as the model counts."""
    count = key_count(hsm)
    expected = hsm.state.keys
    if count is None and not hsm.state.is_initialized:
        return
    if count != expected:
        found = blame_key_count(expected, -1 if count is None else count, hsm.history)
        hsm.fail(f"ENUMERATE OBJECTS lists {'nothing (refused)' if count is None else count} private keys, "
                 f"the model counts {expected}; {found.describe()}", blame=found)


def check_objects_wiped(hsm: Device) -> None:
    """With no keys in the model, ENUMERATE must list no private key but the device key CC00
    (R07.keys-erased; certificates and data objects are checks of their own)."""
    from hsm_lifecycle.protocol import FID_DEVICE_KEY, FID_PREFIX_PRIVATE_KEY

    if hsm.state.keys:
        return
    fids = read(hsm, "enumerate objects", hsm.mapper.enumerate_objects) or []
    left = [f"{fid:04X}" for fid in fids if fid >> 8 == FID_PREFIX_PRIVATE_KEY and fid != FID_DEVICE_KEY]  # type: ignore[union-attr]
    hsm.check(not left, f"private keys left after INITIALIZE: {', '.join(left)}", "R07.keys-erased")


def issuer_root(hsm: Device, ef_2f02: bytes, checks: tuple[str, ...]) -> str:
    """The root CHR the DICA certificate in EF.C_DevAut names as its issuer. Content that
    does not parse fails `checks` naming the file, not with a bare decoder error."""
    from hsm_lifecycle.cvc import CvcError, parse_cv_objects
    from hsm_lifecycle.tlv import TlvError

    try:
        objects = parse_cv_objects(ef_2f02)
    except (CvcError, TlvError) as exc:
        hsm.fail(f"EF.C_DevAut (2F02) does not parse as CV certificates ({len(ef_2f02)} bytes): {exc}", checks)
    car = getattr(objects[1], "car", None) if len(objects) > 1 else None
    if not car:  # an empty issuer would read as "DICA names issuer ," further on
        hsm.fail(f"EF.C_DevAut (2F02) holds {len(objects)} CV object(s), not a device certificate followed by "
                 "its DICA certificate naming an issuer", checks)
    return car  # type: ignore[return-value]


# -- probes outside the alphabet that follow the model ------------------------------------------


def present_so_pin_with_verify(hsm: Device) -> str:
    """VERIFY 88 with the SO-PIN: outside the model's alphabet (OpenSC never sends it), so
    its answer is recorded as an observation, not judged. Only sent with the SO counter at
    15, where a right presentation cannot change it; a device that still moves the counter
    is followed (free query) so the model keeps up."""
    from hsm_lifecycle.protocol import CLA_ISO, PIN_SO, Ins

    if hsm.state.so_tries != SO_PIN_TRIES:
        hsm.observe("verify-so-with-data", f"not sent (SO tries {hsm.state.so_tries}, not 15)")
        return ""
    if hsm.target.consent.guarded and hsm.target.options.so_pin is None:
        raise InterlockRefused("VERIFY 88 presents the token's SO-PIN: pass it with --hsm-so-pin (16 hex digits)")
    rsp = raw.send(hsm, "verify_so(right)", bytes([CLA_ISO, Ins.VERIFY, 0x00, PIN_SO, 8]) + hsm.mapper.pins.so_pin, ("R09",))
    hsm.observe("verify-so-with-data", rsp.sw_hex)
    hsm.step(Command.query_so())  # judged: a right SO-PIN must not have spent a try (R02)
    return rsp.sw_hex


def reset_and_sign(hsm: Device, how: str, check: str) -> None:
    """A warm reset (`how="warm"`, outside the alphabet) or a power cycle (`"power"`), then
    straight away, before any SELECT (which would end the session by itself), SIGN: it must
    be refused, and that decides `check`. Then a re-SELECT; the model goes on unauthenticated."""
    from hsm_lifecycle.conformance.mapper import SIGN_HASH, apdu
    from hsm_lifecycle.protocol import ALGO_ECDSA_SHA256, CLA_PROPRIETARY, Ins

    hsm.recorder.context(f"{'warm_reset' if how == 'warm' else 'power_cycle'} [then SIGN before SELECT]", hsm.state.abstract, ("R10",))
    hsm.history.append(None)
    if how == "warm":
        hsm.mapper.transport.reset()
    else:
        hsm.mapper.transport.power_cycle()
    sign = apdu(CLA_PROPRIETARY, Ins.SIGN, hsm.mapper.newest_key, ALGO_ECDSA_SHA256, SIGN_HASH, le=0, extended=True)
    raw.expect_sw(hsm, check, f"SIGN right after the {how} reset, before any SELECT", sign, raw.REFUSED, "an error (6D00 or 6982)")
    hsm.mapper.select()
    if hsm.state.is_initialized:
        hsm.state = hsm.state.but(authenticated=False)


def present_stale_user_pin(hsm: Device, stale: bytes) -> str:
    """VERIFY 81 with `stale`, a user PIN the token had before and must now refuse: judged
    as the model's wrong VERIFY (one try spent, 63Cx)."""
    book = hsm.mapper.pins
    if stale == book.user_pin:
        raise ValueError("a stale PIN must differ from the current one")
    book.wrong_user_exact = stale
    try:
        return hsm.step(Command.verify_user("wrong"))
    finally:
        book.wrong_user_exact = None
