"""The SmartCard-HSM PIN lifecycle: VERIFY, CHANGE REFERENCE DATA, RESET RETRY COUNTER.

Every presentation of a PIN follows one pattern (R17): write the counter minus one, compare,
and only then, for a right PIN, write the restored counter. A wrong-length PIN is refused
before any of this (R16). SWs follow docs/design.md's normative table; the open behaviours come
from the token's `Profile`, and `Fault` switches break single rules on purpose.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING

from hsm_lifecycle.emulator.apdu import ApduError, Command, sw_hex
from hsm_lifecycle.emulator.objects import PROTECTED_FIDS
from hsm_lifecycle.emulator.profile import TRIES_SW, Fault
from hsm_lifecycle.emulator.state import CardState
from hsm_lifecycle.emulator.store import PersistencePoint
from hsm_lifecycle import protocol
from hsm_lifecycle.protocol import SW

if TYPE_CHECKING:
    from hsm_lifecycle.emulator.card import CardContext

Update = Callable[[CardState], CardState]
MAX_SO_TRIES = protocol.SO_PIN_TRIES


def _unchanged(state: CardState) -> CardState:
    return state


def user_pin_length_ok(pin: bytes) -> bool:
    return protocol.USER_PIN_MIN <= len(pin) <= protocol.USER_PIN_MAX


# --- answers -------------------------------------------------------------------------------


def wrong_pin_sw(card: CardContext, tries_left: int) -> int:
    """63Cx, or the profile's answer for the try that reached 0 (last-wrong-try-sw)."""
    if tries_left == 0:
        return sw_hex(card.profile.last_wrong_try_sw)
    return protocol.sw_tries(tries_left)


def _spend_one_more(card: CardContext, fault: Fault) -> None:
    """Fault switches that spend a user try the rules do not (a second one for a wrong PIN: R04;
    one for a wrong-length PIN: R16)."""
    if fault in card.faults and card.state.user_tries > 0:
        card.commit(replace(card.state, user_tries=card.state.user_tries - 1), PersistencePoint.USER_TRY_SPENT)


def refuse_wrong_length(card: CardContext, so: bool) -> int:
    """A PIN of impossible length: refused without spending a try (R16) unless the fault."""
    if Fault.WRONG_LENGTH_SPENDS_TRY in card.faults:
        state = card.state
        if so and state.so_tries > 0:
            card.commit(replace(state, so_tries=state.so_tries - 1), PersistencePoint.SO_TRY_SPENT)
        elif not so and state.user_tries > 0:
            card.commit(
                replace(state, user_tries=state.user_tries - 1), PersistencePoint.USER_TRY_SPENT
            )
    setting = card.profile.wrong_length_pin_sw
    if setting == TRIES_SW:
        return protocol.sw_tries(card.state.so_tries if so else card.state.user_tries)
    return sw_hex(setting)


# --- the presentation pattern ------------------------------------------------------------------


def present_user_pin(
    card: CardContext, candidate: bytes, on_success: Update, point: PersistencePoint
) -> bool:
    """Check `candidate` against the user PIN with a persistent pre-decrement (R17)."""
    before = card.state
    assert before.user_pin is not None
    spent = replace(before, user_tries=max(before.user_tries - 1, 0))
    late_write = Fault.TEAR_REFUNDS_TRY in card.faults or (
        Fault.TEAR_REFUNDS_CHANGE_USER in card.faults and point == PersistencePoint.USER_PIN_CHANGED
    )
    if not late_write:
        card.commit(spent, PersistencePoint.USER_TRY_SPENT)
    right = hmac.compare_digest(candidate, before.user_pin)
    card.instant(PersistencePoint.PIN_COMPARED)
    if right:
        keep = Fault.USER_COUNTER_NOT_RESTORED in card.faults
        restored = replace(before, user_tries=before.user_tries if keep else before.user_max)
        card.commit(on_success(restored), point)
    elif late_write:
        card.commit(spent, PersistencePoint.USER_TRY_SPENT)
    return right


def present_so_pin(
    card: CardContext, candidate: bytes, on_success: Update, point: PersistencePoint
) -> bool:
    """Check `candidate` against the SO-PIN with a persistent pre-decrement (R17, R02)."""
    before = card.state
    assert before.so_pin is not None
    spends = Fault.SO_COUNTER_NOT_SPENT not in card.faults
    spent = replace(before, so_tries=max(before.so_tries - 1, 0)) if spends else before
    late_write = Fault.TEAR_REFUNDS_TRY in card.faults or (
        Fault.TEAR_REFUNDS_RRC in card.faults and point == PersistencePoint.USER_PIN_RESET
    ) or (Fault.TEAR_REFUNDS_CHANGE_SO in card.faults and point == PersistencePoint.SO_PIN_CHANGED)
    if spends and not late_write:
        card.commit(spent, PersistencePoint.SO_TRY_SPENT)
    right = hmac.compare_digest(candidate, before.so_pin)
    card.instant(PersistencePoint.PIN_COMPARED)
    if right:
        tries = MAX_SO_TRIES if card.profile.so_success_restores else before.so_tries
        card.commit(on_success(replace(before, so_tries=tries)), point)
    elif spends and late_write:
        card.commit(spent, PersistencePoint.SO_TRY_SPENT)
    return right


def so_blocked(card: CardContext) -> bool:
    """SO tries 0 and nothing may unblock it (R03), unless the fault lets a right PIN in."""
    return card.state.so_tries == 0 and Fault.SO_UNBLOCKABLE not in card.faults


def user_blocked(card: CardContext) -> bool:
    return card.state.user_tries == 0 and Fault.USER_BLOCK_IGNORED not in card.faults


def transport_active(card: CardContext) -> bool:
    return card.state.transport_pin and Fault.TRANSPORT_PIN_IGNORED not in card.faults


# --- commands ----------------------------------------------------------------------------------


def _pin_reference(card: CardContext, cmd: Command, allowed: tuple[int, ...]) -> int:
    if cmd.p1 != 0x00:
        raise ApduError(SW.INCORRECT_P1P2, "P1 must be 00")
    if cmd.p2 in (protocol.PIN_BIO_1, protocol.PIN_BIO_2):
        raise ApduError(SW.REFERENCED_DATA_NOT_FOUND, "no biometric template on this device")
    if cmd.p2 not in allowed:
        raise ApduError(SW.INCORRECT_P1P2, f"no PIN reference {cmd.p2:02X}")
    refuse_le(card, cmd)
    return cmd.p2


def refuse_le(card: CardContext, cmd: Command) -> None:
    """PIN commands return no data: an Le is 6700, except on a case-3 command (with data) of a
    profile that ignores it there (open behaviour case3-le)."""
    if cmd.ne is not None and not (cmd.data and card.profile.case3_le_accepted):
        raise ApduError(SW.WRONG_LENGTH, "PIN commands return no data")


def verify(card: CardContext, cmd: Command) -> tuple[bytes, int]:
    """VERIFY 81/88: a status query without data (free, R19), a PIN check with data."""
    ref = _pin_reference(card, cmd, (protocol.PIN_USER, protocol.PIN_SO))
    if ref == protocol.PIN_USER:
        return b"", _verify_user(card, cmd.data)
    return b"", _verify_so(card, cmd.data)


def _spend_on_query(card: CardContext, so: bool) -> None:
    """Fault query-spends-try only: a status query costs a try (breaks R19)."""
    if Fault.QUERY_SPENDS_TRY not in card.faults and not (so and Fault.SO_QUERY_SPENDS_TRY in card.faults):
        return
    state = card.state
    if so and state.so_tries > 0:
        card.commit(replace(state, so_tries=state.so_tries - 1), PersistencePoint.SO_TRY_SPENT)
    elif not so and state.user_tries > 0:
        card.commit(
            replace(state, user_tries=state.user_tries - 1), PersistencePoint.USER_TRY_SPENT
        )


def _verify_user(card: CardContext, pin: bytes) -> int:
    state = card.state
    if not state.initialized:
        if pin and Fault.UNINITIALIZED_ACCEPTS_PIN in card.faults:
            card.login()
            return SW.OK
        if card.profile.version[0] < 2:
            # "V1.2: Not initialized" is 6984 (CardContact scsh-scripts smartcardhsm.js isInitialized).
            raise ApduError(SW.REFERENCE_DATA_NOT_USABLE, "not initialized (v1.x)")
        raise ApduError(SW.REFERENCED_DATA_NOT_FOUND, "not initialized")
    if transport_active(card):
        if pin and Fault.TRANSPORT_VERIFY_LOGS_IN in card.faults and hmac.compare_digest(pin, state.user_pin or b""):
            card.login()  # the session flag set before the transport check refuses
        raise ApduError(SW.REFERENCE_DATA_NOT_USABLE, "transport PIN must be changed first")
    if not pin:
        _spend_on_query(card, so=False)
        if Fault.QUERY_ENDS_SESSION in card.faults:
            card.logout()
        if card.state.user_tries == 0:
            return SW.AUTH_METHOD_BLOCKED
        if card.authenticated:
            return SW.OK
        return protocol.sw_tries(card.state.user_tries)
    if user_blocked(card) or (Fault.SO_BLOCK_BLOCKS_USER_PIN in card.faults and state.so_tries == 0):
        return SW.AUTH_METHOD_BLOCKED
    if not user_pin_length_ok(pin) and not (Fault.LONG_PIN_SPENDS_TRY in card.faults and len(pin) > protocol.USER_PIN_MAX):
        return refuse_wrong_length(card, so=False)
    if present_user_pin(card, pin, _unchanged, PersistencePoint.USER_TRY_RESTORED):
        card.login()
        return SW.OK
    _spend_one_more(card, Fault.WRONG_VERIFY_SPENDS_TWO)
    if card.profile.wrong_pin_ends_session or card.state.user_tries == 0:
        card.logout()
    return wrong_pin_sw(card, card.state.user_tries)


def _verify_so(card: CardContext, pin: bytes) -> int:
    state = card.state
    if not state.initialized:
        raise ApduError(SW.REFERENCED_DATA_NOT_FOUND, "not initialized")
    if not pin:
        _spend_on_query(card, so=True)
        if card.state.so_tries == 0:
            return protocol.sw_tries(0) if Fault.SO_BLOCK_QUERY_ANSWERS_63C0 in card.faults else SW.AUTH_METHOD_BLOCKED
        # No SO session exists: the SO-PIN authorizes nothing by itself (R09), so the query
        # always reports the counter.
        return protocol.sw_tries(card.state.so_tries)
    if so_blocked(card):
        return SW.AUTH_METHOD_BLOCKED
    if len(pin) != protocol.SO_PIN_LENGTH:
        return refuse_wrong_length(card, so=True)
    if present_so_pin(card, pin, _unchanged, PersistencePoint.SO_TRY_RESTORED):
        if Fault.SO_PIN_AUTHORIZES_KEYS in card.faults:
            card.login()
        return SW.OK
    return wrong_pin_sw(card, card.state.so_tries)


def change_reference_data(card: CardContext, cmd: Command) -> tuple[bytes, int]:
    """CHANGE REFERENCE DATA 81 (old||new, the card knows the old length) and 88 (8||8)."""
    ref = _pin_reference(card, cmd, (protocol.PIN_USER, protocol.PIN_SO))
    if not cmd.data:
        raise ApduError(SW.WRONG_LENGTH, "CHANGE REFERENCE DATA needs old and new PIN")
    if not card.state.initialized:
        raise ApduError(SW.REFERENCED_DATA_NOT_FOUND, "not initialized")
    if ref == protocol.PIN_USER:
        return b"", _change_user(card, cmd.data)
    return b"", _change_so(card, cmd.data)


def _change_user(card: CardContext, data: bytes) -> int:
    if user_blocked(card):
        return SW.AUTH_METHOD_BLOCKED
    stored = card.state.user_pin
    assert stored is not None
    old, new = data[: len(stored)], data[len(stored) :]
    if len(data) <= len(stored) or not user_pin_length_ok(new):
        _spend_one_more(card, Fault.CHANGE_WRONG_LENGTH_SPENDS_TRY)
        return refuse_wrong_length(card, so=False)

    def set_pin(state: CardState) -> CardState:
        # Changing the PIN is also the way out of transport-PIN mode (R11).
        keep = Fault.CHANGE_KEEPS_TRANSPORT in card.faults
        return replace(state, user_pin=new, transport_pin=state.transport_pin and keep)

    if Fault.CHANGE_USER_PIN_REFUSED in card.faults and not transport_active(card) and hmac.compare_digest(old, stored):
        return SW.SECURITY_STATUS_NOT_SATISFIED
    if present_user_pin(card, old, set_pin, PersistencePoint.USER_PIN_CHANGED):
        if card.profile.auth_after_change:
            card.login()
        else:
            card.logout()
        return SW.OK
    _spend_one_more(card, Fault.WRONG_CHANGE_SPENDS_TWO)
    if card.profile.wrong_pin_ends_session or card.state.user_tries == 0:
        card.logout()
    return wrong_pin_sw(card, card.state.user_tries)


def _change_so(card: CardContext, data: bytes) -> int:
    if so_blocked(card) and Fault.CHANGE_SO_UNBLOCKS not in card.faults:
        return SW.AUTH_METHOD_BLOCKED
    if len(data) != 2 * protocol.SO_PIN_LENGTH:
        if Fault.SHORT_SO_PIN_SPENDS_TRY in card.faults and card.state.so_tries > 0:
            card.commit(replace(card.state, so_tries=card.state.so_tries - 1), PersistencePoint.SO_TRY_SPENT)
        return refuse_wrong_length(card, so=True)
    old, new = data[: protocol.SO_PIN_LENGTH], data[protocol.SO_PIN_LENGTH :]
    if present_so_pin(
        card, old, lambda state: replace(state, so_pin=new), PersistencePoint.SO_PIN_CHANGED
    ):
        if Fault.RIGHT_SO_PIN_SPENDS in card.faults and card.state.so_tries > 0:
            card.commit(replace(card.state, so_tries=card.state.so_tries - 1), PersistencePoint.SO_TRY_SPENT)
        if Fault.CHANGE_SO_LOGS_IN in card.faults:
            card.login()
        return SW.OK
    if Fault.WRONG_SO_ERASES_KEYS in card.faults:
        kept = {fid: blob for fid, blob in card.state.keys.items() if fid in PROTECTED_FIDS}
        card.commit(replace(card.state, keys=kept), PersistencePoint.OBJECT_DELETED)
    return wrong_pin_sw(card, card.state.so_tries)


def reset_retry_counter(card: CardContext, cmd: Command) -> tuple[bytes, int]:
    """RESET RETRY COUNTER: P1=00 SO-PIN||new PIN, P1=01 SO-PIN only; gated by option 0x0001."""
    if cmd.p1 not in (protocol.RRC_NEW_PIN, protocol.RRC_COUNTER_ONLY):
        raise ApduError(SW.INCORRECT_P1P2, "P1 must be 00 or 01")
    if cmd.p2 != protocol.PIN_USER:
        raise ApduError(SW.INCORRECT_P1P2, "P2 must be 81")
    refuse_le(card, cmd)
    if not cmd.data:
        raise ApduError(SW.WRONG_LENGTH, "RESET RETRY COUNTER needs the SO-PIN")
    state = card.state
    if not state.initialized:
        raise ApduError(SW.REFERENCED_DATA_NOT_FOUND, "not initialized")
    if so_blocked(card) and Fault.RRC_WORKS_WHEN_SO_BLOCKED not in card.faults:
        return b"", SW.AUTH_METHOD_BLOCKED
    enabled = bool(state.options & protocol.OPTION_RESET_RETRY_COUNTER) or (
        Fault.RRC_IGNORES_OPTION in card.faults
    )
    disabled_sw = sw_hex(card.profile.rrc_disabled_sw)
    if not enabled and not card.profile.rrc_disabled_spends_so_try:
        wrong = not hmac.compare_digest(cmd.data[: protocol.SO_PIN_LENGTH], state.so_pin or b"")
        if Fault.RRC_DISABLED_SPENDS_TWO in card.faults and wrong:
            card.commit(replace(state, so_tries=max(state.so_tries - 2, 0)), PersistencePoint.SO_TRY_SPENT)
        return b"", disabled_sw
    so_pin, new = cmd.data[: protocol.SO_PIN_LENGTH], cmd.data[protocol.SO_PIN_LENGTH :]
    if cmd.p1 == protocol.RRC_NEW_PIN:
        length_ok = len(so_pin) == protocol.SO_PIN_LENGTH and user_pin_length_ok(new)
    else:
        length_ok = len(cmd.data) == protocol.SO_PIN_LENGTH
    if not length_ok:
        if Fault.RRC_WRONG_LENGTH_SPENDS_TRY in card.faults and state.so_tries > 0:
            card.commit(replace(state, so_tries=state.so_tries - 1), PersistencePoint.SO_TRY_SPENT)
        return b"", refuse_wrong_length(card, so=True)
    if not enabled:
        # This profile checks the SO-PIN before the option: a wrong one spends a try, a right
        # one gets its try back (nothing more: the command did not run); either way the
        # command is refused with the profile's SW.
        tries = state.so_tries
        present_so_pin(
            card, so_pin, lambda target: replace(target, so_tries=tries), PersistencePoint.SO_TRY_RESTORED
        )
        return b"", disabled_sw

    def unblock(target: CardState) -> CardState:
        pin = new if cmd.p1 == protocol.RRC_NEW_PIN and Fault.RRC_IGNORES_NEW_PIN not in card.faults else target.user_pin
        tries = state.user_tries if cmd.p1 == protocol.RRC_COUNTER_ONLY and Fault.RRC_DOES_NOT_RESET in card.faults else target.user_max
        return replace(target, user_tries=tries, user_pin=pin)

    if present_so_pin(card, so_pin, unblock, PersistencePoint.USER_PIN_RESET):
        if Fault.RRC_LOGS_IN in card.faults:
            card.login()
        return b"", SW.OK
    if Fault.RRC_WRONG_SPENDS_TWO in card.faults and card.state.so_tries > 0:
        card.commit(replace(card.state, so_tries=card.state.so_tries - 1), PersistencePoint.SO_TRY_SPENT)
    sw = wrong_pin_sw(card, card.state.so_tries)
    if Fault.WRONG_RRC_UNINITIALIZES in card.faults and cmd.p1 == protocol.RRC_NEW_PIN:
        # The PIN store is cleared before the SO-PIN check's outcome is acted on: as shipped.
        card.commit(replace(card.state, so_pin=None, so_tries=0, user_pin=None, user_tries=0, user_max=0), PersistencePoint.USER_PIN_RESET)
    return b"", sw
