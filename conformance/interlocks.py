"""Safety interlocks for real tokens (rules.md, "Cost classes"; `hsm_lifecycle.model.cost.CostClass`).

Two layers, so that a wrong test or a wrong model cannot hurt a token:

* test level: `skip_reason(cost)` decides, from the cost-class marker, whether a test may run at
  all (the plugin skips it otherwise, with this reason);
* APDU level: `GuardedTransport` sits between the mapper and the device and classifies every
  command APDU by what it can do to the token. Anything above the user's consent is never sent
  (`InterlockRefused`, a pytest skip). Before an APDU that presents the SO-PIN it queries the SO
  counter itself (free) and refuses if the try would cross the floor or block the SO-PIN.

The serial is read from EF.C_DevAut (free) and compared before the first state-changing APDU; a
mismatch stops the whole run (`pytest.exit`), as hardware-in-the-loop suites do.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import pytest

from hsm_lifecycle.conformance.terminal import stdin_is_terminal
from hsm_lifecycle.conformance.transport.base import Response, Transport, TransportWrapper
from hsm_lifecycle.model.cost import CostClass
from hsm_lifecycle.protocol import CLA_ISO, FID_PREFIX_PRIVATE_KEY, PIN_SO, SW, Ins, tries_from_sw


class InterlockRefused(pytest.skip.Exception):  # type: ignore[misc,name-defined]
    """A step the user did not consent to: the test stops here and is reported as skipped."""

    __module__ = "builtins"  # as pytest's own Skipped: reports show "InterlockRefused: ..."

    def __init__(self, reason: str) -> None:
        super().__init__(msg=f"interlock: {reason}", pytrace=False)
        self.reason = reason


WHY_WIPES = "cost class 'wipes' re-initializes the token (every key on it is lost): pass --hsm-serial SERIAL naming this token to allow it"
WHY_IRREVERSIBLE = (
    "cost class 'irreversible' blocks the SO-PIN for good (recovery costs one of the 5 firmware updates): "
    "pass --hsm-serial SERIAL and --hsm-allow-irreversible to allow it"
)
WHY_INITIALIZE = (
    "INITIALIZE DEVICE is never sent to a real token without --hsm-serial: even with a wrong code, "
    "a faulty token would wipe every key on it"
)
WHY_DELETE = "DELETE FILE would reach a key the suite did not generate (the owner's): pass --hsm-serial SERIAL to allow it"
WHY_OPERATOR_FLAG = "cost class 'operator' needs a person at the firmware-update portal: pass --hsm-allow-operator and run from a terminal"
WHY_OPERATOR_TTY = "cost class 'operator' needs a person at the firmware-update portal, but stdin is not a terminal (no one could answer)"


@dataclass
class Consent:
    """What the user allowed, and what the suite has confirmed about the token."""

    guarded: bool  # a real token (or the emulator posing as one): interlocks apply
    serial: str | None  # --hsm-serial
    allow_irreversible: bool
    allow_operator: bool
    so_floor: int
    # Asked with pytest's capture suspended: while it captures, stdin is never a terminal.
    interactive: bool = field(default_factory=stdin_is_terminal)
    serial_confirmed: bool = False  # set once the token's own serial matched --hsm-serial

    def skip_reason(self, cost: CostClass) -> str | None:
        """Why a test of this cost class may not run on this target, or None."""
        if cost == CostClass.OPERATOR:
            # Even the emulator needs the portal for these; the test itself says so if missing.
            if not self.guarded:
                return None
            if not self.allow_operator:
                return WHY_OPERATOR_FLAG
            return None if self.interactive else WHY_OPERATOR_TTY
        if not self.guarded or cost <= CostClass.TRIES:
            return None
        if self.serial is None:
            return WHY_IRREVERSIBLE if cost == CostClass.IRREVERSIBLE else WHY_WIPES
        if cost == CostClass.IRREVERSIBLE and not self.allow_irreversible:
            return WHY_IRREVERSIBLE
        return None

    def ceiling(self) -> CostClass:
        """The most harmful APDU class that may reach this token."""
        if not self.guarded:
            return CostClass.IRREVERSIBLE
        if not self.serial_confirmed:
            return CostClass.TRIES
        return CostClass.IRREVERSIBLE if self.allow_irreversible else CostClass.WIPES

    def confirm_serial(self, device_serial: str) -> None:
        """Compares the token's serial with --hsm-serial; raises SerialMismatch if they differ."""
        if not self.guarded or self.serial is None:
            return
        if device_serial.strip().upper() != self.serial.strip().upper():
            raise SerialMismatch(
                f"--hsm-serial {self.serial} does not match the token in the reader (serial {device_serial}); "
                "nothing was changed on it. Re-run with the serial of the token you consent to wipe."
            )
        self.serial_confirmed = True


class SerialMismatch(Exception):
    """The token in the reader is not the one the user consented to wipe: stop everything."""


@dataclass(frozen=True)
class Apdu:
    """Just enough ISO 7816-4 parsing to classify a command."""

    cla: int
    ins: int
    p1: int
    p2: int
    data: bytes

    @classmethod
    def parse(cls, capdu: bytes) -> "Apdu":
        if len(capdu) < 4:
            return cls(0, 0, 0, 0, b"")
        header, body = capdu[:4], capdu[4:]
        data = b""
        if len(body) > 1 and body[0] != 0:  # short case 3/4
            data = body[1 : 1 + body[0]]
        elif len(body) > 3 and body[0] == 0:  # extended case 3/4 (extended case 2 has 3 bytes)
            lc = int.from_bytes(body[1:3], "big")
            data = body[3 : 3 + lc]
        return cls(header[0], header[1], header[2], header[3], bytes(data))

    @property
    def presents_so_pin(self) -> bool:
        if not self.data:
            return False
        if self.ins == Ins.RESET_RETRY_COUNTER:
            return True
        return self.ins in (Ins.CHANGE_REFERENCE_DATA, Ins.VERIFY) and self.p2 == PIN_SO


FREE_INS = {
    Ins.SELECT,
    Ins.READ_BINARY_ODD,
    Ins.ENUMERATE_OBJECTS,
    Ins.GET_CHALLENGE,
    Ins.GET_RESPONSE,
    Ins.PKA_STATUS,
    Ins.SIGN,
    Ins.DECIPHER,
}


def apdu_cost(apdu: Apdu, own_key_fids: set[int]) -> CostClass:
    """What the APDU can do to a token, whatever the answer. Unknown commands count as wipes."""
    if apdu.ins in FREE_INS:
        return CostClass.FREE
    if apdu.ins == Ins.IMPORT_DKEK_SHARE and not apdu.data:
        return CostClass.FREE  # DKEK status query
    if apdu.ins == Ins.VERIFY:
        return CostClass.TRIES if apdu.data else CostClass.FREE
    if apdu.ins in (Ins.CHANGE_REFERENCE_DATA, Ins.RESET_RETRY_COUNTER):
        return CostClass.TRIES  # a PIN presentation; the SO floor is checked separately
    if apdu.ins == Ins.GENERATE_ASYMMETRIC_KEY_PAIR:
        return CostClass.TRIES  # a key the suite adds and deletes again: reversible
    if apdu.ins == Ins.DELETE_FILE and len(apdu.data) == 2:
        fid = int.from_bytes(apdu.data, "big")
        return CostClass.TRIES if fid in own_key_fids else CostClass.WIPES
    # INITIALIZE (even with a wrong code: a faulty token could wipe), writes, unwraps, the rest.
    return CostClass.WIPES


class GuardedTransport(TransportWrapper):
    """Wraps the device transport; every command APDU passes `admit` first."""

    def __init__(self, inner: Transport, consent: Consent, right_so_pin: Callable[[], bytes] | None = None) -> None:
        super().__init__(inner)
        self.consent = consent
        self.own_key_fids: set[int] = set()  # CCxx the suite generated (it may delete those)
        self.test_cost = CostClass.FREE  # the running test's marker: the SO floor binds below irreversible
        self.right_so_pin = right_so_pin  # the SO-PIN the mapper believes current
        self.refusals: list[str] = []


    def owns(self, key_id: int) -> bool:
        return ((FID_PREFIX_PRIVATE_KEY << 8) | key_id) in self.own_key_fids

    def note_generated(self, key_id: int) -> None:
        self.own_key_fids.add((FID_PREFIX_PRIVATE_KEY << 8) | key_id)

    def note_deleted(self, key_id: int) -> None:
        self.own_key_fids.discard((FID_PREFIX_PRIVATE_KEY << 8) | key_id)

    def transmit(self, capdu: bytes) -> Response:
        if self.consent.guarded:
            self.admit(Apdu.parse(capdu))
        return self.inner.transmit(capdu)

    def admit(self, apdu: Apdu) -> None:
        cost = apdu_cost(apdu, self.own_key_fids)
        if cost > self.consent.ceiling():
            if apdu.ins == Ins.INITIALIZE_DEVICE:
                self.refuse(WHY_INITIALIZE)
            if apdu.ins == Ins.DELETE_FILE:
                self.refuse(WHY_DELETE)
            self.refuse(WHY_IRREVERSIBLE if cost == CostClass.IRREVERSIBLE else WHY_WIPES)
        if apdu.presents_so_pin:
            self.check_so_floor(apdu)

    def check_so_floor(self, apdu: Apdu) -> None:
        """Asks the token itself (free query) how many SO tries are left before risking one.

        A presentation of the SO-PIN the suite believes right spends nothing on a conforming
        token; it is let through down to 2 tries left, so even a token that wrongly spends on
        it cannot be blocked by it (that is what lets the suite restore the counter)."""
        rsp = self.inner.transmit(bytes([CLA_ISO, Ins.VERIFY, 0x00, PIN_SO]))
        left = 0 if rsp.sw == SW.AUTH_METHOD_BLOCKED else tries_from_sw(rsp.sw)
        if left is None:
            return  # not initialized (6A88): presenting a code spends nothing
        may_block = self.consent.ceiling() == CostClass.IRREVERSIBLE and self.test_cost >= CostClass.IRREVERSIBLE
        if may_block:
            return
        believed_right = self.right_so_pin is not None and apdu.data[:8] == self.right_so_pin()
        if believed_right:
            if left < 2:
                self.refuse(f"the SO-PIN has {left} tries left; {WHY_IRREVERSIBLE}")
            return
        if left - 1 <= 0:
            self.refuse(f"the SO-PIN has {left} tries left; one more wrong presentation would block it ({WHY_IRREVERSIBLE})")
        if left - 1 < self.consent.so_floor:
            self.refuse(
                f"the SO-PIN has {left} tries left and the floor is {self.consent.so_floor} (--hsm-so-floor); "
                "the rest of this test would spend more"
            )

    def refuse(self, reason: str) -> None:
        self.refusals.append(reason)
        raise InterlockRefused(reason)
