"""Custody of a real token: the run never costs what it cannot give back (rules.md, "Custody").

Every APDU to a guarded token (a real one, or the emulator posing as one) passes one
`CustodyTransport`, the layer closest to the device. It follows the token's PINs, counters
and objects from the APDUs and their answers (never from the model), and it is the one place
that lets a try-spending APDU through:

* credentials before cost: nothing that presents a PIN, spends a try or writes reaches the token
  until `Custody.begin` has read its counters (free) and proven the user PIN with one VERIFY. The
  SO-PIN is proven at its first use, with one CHANGE REFERENCE DATA 88 from itself to itself, and
  only if a wrong one would still leave the SO floor: a run that never needs it never presents
  it. A refused PIN stops the run (`PinRefused`, exit 3) after exactly one try. A wrong
  presentation is let through only while the way back is open: the proven PIN restores the
  counter (for the SO-PIN: only once the token was seen to give a spent SO try back), and a user
  counter brought to 0 needs RESET RETRY COUNTER allowed by the token's options and the SO-PIN.
* the journal (conformance.journal): before each APDU that changes a PIN or spends a try, what
  the token will hold if the run is lost right there; after the answer, what it holds.
* signals: SIGINT/SIGTERM/SIGHUP never cut an APDU or a restore; they are delivered at the next
  APDU boundary, where the token's state is exactly known, as `RunStopped` (SIGINT: exit 130, the
  others: exit 3), and `finish` puts the owner's state back.
* a token that stops answering stops the run (exit 3) instead of failing rules, unless the
  suite itself cut its power (`power_cut`, a power-cut rig): then the journal written before the
  command covers the cut, and the counters are read again before anything else is presented.
* `finish` (end of every run) and conformance.custody_restore (`hsm-lifecycle restore`, the next run) bring
  the owner's PINs back, present the right PINs to restore the counters, delete every object the
  suite created, read the counters again (free) and say in one sentence what they did.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Callable, NoReturn

from hsm_lifecycle import tlv
from hsm_lifecycle.conformance.errors import RunStopped
from hsm_lifecycle.conformance.interlocks import Apdu, InterlockRefused
from hsm_lifecycle.model.cost import CostClass
from hsm_lifecycle.conformance.custody_apdus import (
    Counters,
    Outcome,
    Tracked,
    case3,
    classify,
    describe_apdu,
    hex_pin,
    init_options,
    init_pins,
    init_retries,
    parse_inject,
    query_apdu,
    select_apdu,
    tries_left,
)
from hsm_lifecycle.conformance.custody_restore import restore_from_journal, restore_tracked
from hsm_lifecycle.conformance.journal import Entry, Journal
from hsm_lifecycle.conformance.observe import CredentialError  # a PIN the owner gave is not the token's: exit 3
from hsm_lifecycle.conformance.trace import TraceRecorder, TracingTransport
from hsm_lifecycle.conformance.transport.base import Response, Transport, TransportError, TransportTimeout, TransportWrapper
from hsm_lifecycle.protocol import (
    CLA_ISO,
    CLA_PROPRIETARY,
    OPTION_RESET_RETRY_COUNTER,
    PIN_SO,
    PIN_USER,
    RRC_NEW_PIN,
    SO_PIN_TRIES,
    SW,
    Ins,
)

# A test hook (project tests and bench only): "N:INT", "N:TERM" raise that signal in this
# process while APDU number N is in flight; "N:KILL=PID" kills PID (the emulator serving the
# token) just before APDU N, as a pulled token.
INJECT_ENV = "HSM_CUSTODY_INJECT"

WHY_NO_PINS = (
    "cost class 'tries' spends PIN tries that only the token's own PINs give back: "
    "pass --hsm-pin and --hsm-so-pin to allow it"
)


class TokenLost(TransportError):
    """The token stopped answering during the run."""


class PinRefused(RunStopped):
    """A PIN the owner gave is not the token's: the run stops (exit 3) after that one try."""

    def __init__(self, message: str) -> None:
        super().__init__(message, 3)


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def skip_reason(guarded: bool, cost: CostClass, pin: bytes | None, so_pin: bytes | None) -> str | None:
    """Why a test of this cost class may not run for lack of credentials, or None."""
    if guarded and cost == CostClass.TRIES and (pin is None or so_pin is None):
        return WHY_NO_PINS
    return None


class Custody:
    """The custody of one guarded token for one run (or one `hsm-lifecycle restore`)."""

    def __init__(self, *, pin: bytes | None, so_pin: bytes | None, so_floor: int, may_wipe: Callable[[], bool],
                 may_renew: Callable[[], bool] = lambda: False) -> None:  # fmt: skip
        self.pin = pin
        self.so_pin = so_pin
        self.so_floor = so_floor
        self.may_wipe = may_wipe
        # The owner allowed a firmware update at the portal and blocking the SO-PIN: once the
        # SO-PIN is blocked only an update brings anything back, and it brings back a user PIN too.
        self.may_renew = may_renew
        self.transport: CustodyTransport | None = None
        self.journal: Journal | None = None
        self.entry: Entry | None = None
        self.t = Tracked()
        self.begun = False
        self.user_proven = False
        self.so_proven = False
        # Does a right SO-PIN give a spent SO try back (open behaviour so-success-restores)?
        # None: not seen yet; a wrong SO-PIN then costs a try only with consent to lose it.
        self.so_restores: bool | None = None
        self.so_proof = ""  # where the SO-PIN was first presented (for the session notes)
        self.why_unproven: dict[str, str] = {}
        self.start: Counters | None = None
        self.objects_start: tuple[str, ...] | None = None
        self.options_start: int | None = None  # the token's options (FCP) at the start
        self.user_max_start: int | None = None  # the user PIN's retry counter maximum, once proven
        self.serial = ""
        self.reader = ""
        self.lost: str | None = None
        self.lost_by_timeout = False  # a token that hangs is not asked again
        self.stopping = False  # a signal stopped the run: the tests' own restores are skipped
        self.outcome: Outcome | None = None
        self.earlier: Outcome | None = None  # a leftover journal restored before this run
        self.privileged = 0
        self.closed = False  # finish() ran: nothing but free reads from here on
        self.allowance = {"user": 0, "so": 0}  # the one try a refused PIN cost
        self.apdus = 0
        self.windows: list[list[int]] = []  # [first, last] APDU numbers while not the owner's state
        self.blocked: list[list[int]] = []  # [first, last] APDU numbers while the run had the user PIN blocked
        self._so_check: int | None = None
        self._pending_signal: int | None = None
        self.stopped: RunStopped | None = None  # what stopped the run before its end
        self._busy = False
        self._handlers: dict[int, object] = {}
        self._inject = parse_inject(os.environ.get(INJECT_ENV, ""))
        # The custody's own APDUs sent outside a traced path (a lazy SO proof inside a test, a
        # counter query) land here, so the evidence shows every PIN presented to the token.
        self.recorder: TraceRecorder | None = None
        self._traced: TracingTransport | None = None
        self.cut_armed = False  # the suite armed a power cut for the APDU in flight
        self.cuts = 0

    # -- wiring ---------------------------------------------------------------------------------

    def wrap(self, inner: Transport) -> "CustodyTransport":
        self.transport = CustodyTransport(inner, self)
        self.reader = inner.describe().get("reader", "")
        return self.transport

    @contextmanager
    def own(self) -> Iterator[None]:
        """The custody's own APDUs (proofs, restores): not gated, never cut by a signal."""
        self.privileged += 1
        try:
            yield
        finally:
            self.privileged -= 1

    def send(self, capdu: bytes, via: Transport | None = None) -> Response:
        assert self.transport is not None
        if via is None and self.recorder is not None:
            if self._traced is None:
                self._traced = TracingTransport(self.transport, self.recorder)
            via = self._traced
        with self.own():
            return (via or self.transport).transmit(capdu)

    # -- start of a run ---------------------------------------------------------------------------

    def begin(self, serial: str, via: Transport, *, spending: bool) -> None:
        """Read the token (free), restore a leftover journal, prove the owner's PINs.
        `via`: the traced path to the custody transport. `spending`: a test that may spend a
        try is selected (otherwise no PIN is presented at all)."""
        self.serial = serial or ""
        self.journal = Journal.for_serial(self.serial) if self.serial else None
        self._install_signals()
        if self.journal is not None and self.journal.exists():
            self.earlier = restore_from_journal(self, self.journal, via)
            if not self.earlier.pins_in_place:
                raise CredentialError(
                    f"an earlier run left this token without its owner's PINs and they could not be put back: "
                    f"{self.earlier.sentence}"
                )
        self.t = Tracked(user_pins=(self.pin,) if self.pin else (), so_pins=(self.so_pin,) if self.so_pin else ())
        self.start = self.read_counters(via)
        self.t.options = self.options_start = self._options(via)
        self.objects_start = self._objects(via)
        self.t.initialized = self.start.so is not None
        self.begun = True
        self._write_journal()
        if spending and self.start.so is not None:
            self._prove_user(via)  # the SO-PIN waits for its first use (prove_so)
        self.send(select_apdu(), via)

    def _prove_user(self, via: Transport) -> None:
        if self.pin is None:
            self.why_unproven["user"] = "no user PIN given"
            return
        if self.start is None or self.start.user_sw == "6984":
            self.why_unproven["user"] = "the transport PIN is active"
            return
        if not self.start.user:
            self.why_unproven["user"] = "the user PIN is blocked (unblock it with the SO-PIN first: pkcs11-tool --init-pin)"
            return
        self.send(select_apdu(), via)
        rsp = self.send(case3(CLA_ISO, Ins.VERIFY, 0x00, PIN_USER, self.pin), via)
        if rsp.sw != SW.OK:
            self._refused("user", rsp)
        self.user_proven = True
        self.t.user_max = self.read_counters(via).user  # after SELECT ended the session: the maximum
        self.user_max_start = self.t.user_max

    @property
    def so_pin_usable(self) -> bool:
        """An SO-PIN was given and may still be presented (proven, or its first presentation
        would leave the SO floor even if it were wrong)."""
        return self.so_pin_unusable() is None

    def so_pin_unusable(self) -> str | None:
        """Why the SO-PIN may not be presented (not given, blocked, the floor), or None."""
        return None if self.so_proven else self._so_unprovable()

    def _so_unprovable(self) -> str | None:
        if self.so_pin is None:
            return "no SO-PIN given"
        if self.t.so_tries is None and self.begun:
            self._refresh()
        left = self.t.so_tries
        if not left:
            return "the SO-PIN is blocked"
        if left - 1 < self.so_floor:
            return (
                f"the SO-PIN has {left} tries left: if the SO-PIN given were wrong, presenting it would leave "
                f"{left - 1}, below the floor of {self.so_floor} (--hsm-so-floor)"
            )
        return None

    def prove_so(self, why: str = "") -> bool:
        """Prove the SO-PIN at its first use, with the SO floor applied to that presentation:
        one CHANGE REFERENCE DATA 88 from itself to itself (nothing changes when it is right).
        Below its maximum, the counter read after it also says whether a right SO-PIN gives a
        spent SO try back, for free. Refused: `PinRefused` after that one try."""
        if self.so_proven:
            return True
        if not self.begun or not self.t.initialized:
            return False
        reason = self._so_unprovable()
        if reason is not None:
            self.why_unproven["so"] = reason
            return False
        assert self.so_pin is not None
        before = self.t.so_tries
        if self.recorder is not None:
            self.recorder.context(f"custody: prove the SO-PIN at its first use, before {why or 'the restore'}", "")
        rsp = self.send(case3(CLA_ISO, Ins.CHANGE_REFERENCE_DATA, 0x00, PIN_SO, self.so_pin + self.so_pin))
        if rsp.sw != SW.OK:
            self._refused("so", rsp)
        self.so_proven = True
        self.why_unproven.pop("so", None)
        self.so_proof = f"at APDU {self.apdus}, first needed by {why or 'the restore'} ({before} SO tries left)"
        self.send(query_apdu(PIN_SO))  # free: the counter after a right SO-PIN (see _follow)
        return True

    def _refused(self, which: str, rsp: Response) -> NoReturn:
        """The PIN given is not the token's: never presented again (the restore included); the
        one try it cost is the price the owner was told of. Stops the run."""
        self.allowance[which] = 1
        if which == "user":
            self.pin, self.t.user_pins = None, ()
            pin, option, kind = "user PIN", "--hsm-pin", "user"
        else:
            self.so_pin, self.t.so_pins = None, ()
            pin, option, kind = "SO-PIN", "--hsm-so-pin", "SO"
        left = tries_left(rsp)
        self.stopping = True
        self.stopped = PinRefused(
            f"the token refused the {pin} given with {option} ({rsp.sw_hex}{'' if left is None else f', {left} tries left'}): "
            f"it is not this token's {pin}; one {kind} try was spent and the run stopped before spending more"
        )
        raise self.stopped

    def read_counters(self, via: Transport | None = None) -> Counters:
        self.send(select_apdu(), via)
        so_rsp = self.send(query_apdu(PIN_SO), via)
        if so_rsp.sw == SW.REFERENCED_DATA_NOT_FOUND:
            return Counters(None, None, "6A88")
        user_rsp = self.send(query_apdu(PIN_USER), via)
        user = tries_left(user_rsp)
        if user_rsp.sw == SW.OK:  # a session was open: the counter is at its maximum
            user = self.t.user_max
        return Counters(user, tries_left(so_rsp), user_rsp.sw_hex)

    def _options(self, via: Transport) -> int | None:
        rsp = self.send(select_apdu(), via)
        try:
            fcp = tlv.decode_exact(rsp.data)
            prop = tlv.find(tlv.decode_all(fcp.value), 0x85)
        except ValueError:
            return None
        return int.from_bytes(prop.value[:2], "big") if prop is not None and len(prop.value) >= 5 else None

    def _objects(self, via: Transport) -> tuple[str, ...] | None:
        rsp = self.send(bytes([CLA_PROPRIETARY, Ins.ENUMERATE_OBJECTS, 0, 0, 0, 0, 0]), via)
        if rsp.sw != SW.OK:
            return None
        return tuple(sorted(rsp.data[i : i + 2].hex().upper() for i in range(0, len(rsp.data) - 1, 2)))

    # -- the gate ------------------------------------------------------------------------------

    def rrc_open(self, why: str = "") -> bool:
        """A blocked user PIN can be brought back: RESET RETRY COUNTER (option 0x0001), or with
        the owner's consent to wipe, INITIALIZE; both need the SO-PIN (proven here if it was not
        yet) with its tries not below the floor."""
        opts = self.t.options
        by_rrc = opts is not None and bool(opts & OPTION_RESET_RETRY_COUNTER)
        if not (by_rrc or self.may_wipe()) or not self.prove_so(why):
            return False
        if self.t.so_tries is None:
            self._refresh()
        return self.t.so_tries is not None and self.t.so_tries >= self.so_floor

    def admit(self, a: Apdu) -> None:
        """Refuse (InterlockRefused) an APDU whose cost the custody could not give back."""
        if self.privileged:
            return
        cost = classify(a)
        if self.closed and cost != "free":
            raise InterlockRefused("the run has ended and the owner's PINs are back: nothing more is presented")
        if cost == "free":
            return
        if not self.begun:
            raise InterlockRefused("nothing that spends a try is sent before the token's counters are read and its PINs proven")
        if not self.t.initialized:
            return  # no PIN to lose: an uninitialized token takes any code (consent is the guard's)
        if cost in ("user", "write"):
            if not self.user_proven:
                raise InterlockRefused(self._missing("user"))
            if cost == "user" and self._user_wrong(a):
                self._refresh()
            renewable = self.t.so_tries == 0 and self.may_renew()
            if cost == "user" and self._user_wrong(a) and (self.t.user_tries or 0) <= 1 and not self.rrc_open(describe_apdu(a)) and not renewable:
                raise InterlockRefused(
                    "a wrong user PIN now would block it, and nothing could bring it back (RESET RETRY COUNTER: "
                    "option 0x0001 off, SO-PIN not proven or SO tries below the floor; INITIALIZE: no --hsm-serial)"
                )
        elif cost == "so":
            self.admit_so(self._so_wrong(a), describe_apdu(a))
            if a.ins == Ins.RESET_RETRY_COUNTER and not self.user_proven:
                raise InterlockRefused(self._missing("user"))

    def admit_so(self, wrong: bool, why: str) -> None:
        """The SO-PIN proven (at its first use) and, for a wrong one, the way back open; else
        InterlockRefused. Also called before a power-cut rig is armed for an SO-PIN command, so
        that the armed cut lands on that command, never on the proof."""
        if not self.prove_so(why):
            raise InterlockRefused(self._missing("so"))
        if wrong and self.so_restores is False:
            raise InterlockRefused("this token did not restore its SO counter after a right SO-PIN: a wrong one would cost a try for good")
        if wrong and self.so_restores is None and not self.may_wipe():
            raise InterlockRefused(
                "a wrong SO-PIN spends an SO try that only a right one gives back, and whether this token does is not "
                "known yet (its SO counter was at its maximum when the SO-PIN was first presented): pass --hsm-serial "
                "(consent to lose that try) to let the suite learn it"
            )

    def _refresh(self) -> None:
        """Both counters asked of the token (free queries, untraced: they change nothing) when a
        wrong presentation is about to be judged against them and one is not known."""
        if self.t.so_tries is None:
            self.send(query_apdu(PIN_SO))
        if self.t.user_tries is None:
            rsp = self.send(query_apdu(PIN_USER))
            if rsp.sw == SW.OK:  # verified in this session: at the maximum
                self.t.user_tries = self.t.user_max

    def _missing(self, which: str) -> str:
        option = "--hsm-pin" if which == "user" else "--hsm-so-pin"
        what = "the user PIN" if which == "user" else "the SO-PIN"
        why = self.why_unproven.get(which, "")
        if why in ("no user PIN given", "no SO-PIN given", ""):
            return f"this step spends tries of {what} that only the token's own PIN gives back: pass it with {option}"
        return f"this step spends tries of {what}, which the suite could not prove: {why}"

    def _user_wrong(self, a: Apdu) -> bool:
        cur = self.t.user_pins[0] if self.t.user_pins else None
        if a.ins == Ins.VERIFY:
            return a.data != cur
        return cur is None or a.data[: len(cur)] != cur

    def _so_wrong(self, a: Apdu) -> bool:
        cur = self.t.so_pins[0] if self.t.so_pins else None
        return a.data[:8] != cur

    # -- following the token ----------------------------------------------------------------------

    def before(self, capdu: bytes) -> None:
        a = Apdu.parse(capdu)
        if self._pending_signal is not None and not self.privileged:
            sig, self._pending_signal = self._pending_signal, None
            raise self.stop_by(sig)
        self.admit(a)
        if self.begun and classify(a) != "free":
            self._write_journal(if_lost=self._if_lost(a), pending=describe_apdu(a))

    def after(self, capdu: bytes, rsp: Response) -> None:
        a = Apdu.parse(capdu)
        self._follow(a, rsp)
        if not self.begun:
            return
        if classify(a) != "free":
            self._write_journal()
        self._note_window()

    def _note_window(self) -> None:
        start_user = self.start.user if self.start is not None else None
        self._extend(self.windows, not self.owner_state())
        self._extend(self.blocked, bool(start_user) and self.t.user_tries == 0)

    def _extend(self, windows: list[list[int]], inside: bool) -> None:
        if inside and (not windows or windows[-1][1] != self.apdus - 1):
            windows.append([self.apdus, self.apdus])
        elif inside:
            windows[-1][1] = self.apdus

    def owner_state(self) -> bool:
        """The token holds the owner's PINs and at least the tries it started with."""
        t, s = self.t, self.start
        if self.pin is not None and t.user_pins != (self.pin,):
            return False
        if self.so_pin is not None and t.so_pins != (self.so_pin,):
            return False
        if s is not None and s.user is not None and t.user_tries is not None and t.user_tries < s.user - self.allowance["user"]:
            return False
        if s is not None and s.so is not None and t.so_tries is not None and t.so_tries < s.so - self.allowance["so"]:
            return False
        return True

    def _if_lost(self, a: Apdu) -> Tracked:
        """The token's state if this APDU is its last: a PIN change may or may not have landed."""
        t = Tracked(**vars(self.t))
        cur_user = t.user_pins[0] if t.user_pins else None
        cur_so = t.so_pins[0] if t.so_pins else None
        if a.ins == Ins.CHANGE_REFERENCE_DATA and a.p2 == PIN_USER and cur_user is not None:
            old, new = a.data[: len(cur_user)], a.data[len(cur_user) :]
            if old == cur_user and new != cur_user:
                t.user_pins = (cur_user, new)
        elif a.ins == Ins.CHANGE_REFERENCE_DATA and a.p2 == PIN_SO and cur_so is not None:
            if a.data[:8] == cur_so and a.data[8:16] != cur_so:
                t.so_pins = (cur_so, a.data[8:16])
        elif a.ins == Ins.RESET_RETRY_COUNTER and a.p1 == RRC_NEW_PIN and cur_user is not None and a.data[8:] != cur_user:
            t.user_pins = (cur_user, a.data[8:])
        elif a.ins == Ins.INITIALIZE_DEVICE:
            user, so = init_pins(a.data)
            if user is not None and cur_user is not None and user != cur_user:
                t.user_pins = (cur_user, user)
            if so is not None and cur_so is not None and so != cur_so:
                t.so_pins = (cur_so, so)
            t.wiped = True
        return t

    def _follow(self, a: Apdu, rsp: Response) -> None:
        t = self.t
        ok = rsp.sw == SW.OK
        tries = tries_left(rsp)
        if a.ins == Ins.SELECT:
            return
        if a.ins == Ins.VERIFY and a.p2 == PIN_SO and not a.data:
            if rsp.sw == SW.REFERENCED_DATA_NOT_FOUND:
                t.initialized = False
            elif tries is not None:
                t.initialized = True
                if self._so_check is not None and tries == SO_PIN_TRIES:
                    self.so_restores = True
                elif self._so_check is not None and tries == self._so_check:
                    self.so_restores = False
                self._so_check = None
                t.so_tries = tries
            return
        if a.ins == Ins.VERIFY and a.p2 == PIN_USER:
            if ok and a.data:
                t.user_pins, t.user_tries = (a.data,), t.user_max
            elif tries is not None:
                t.user_tries = tries
            return
        if a.ins == Ins.VERIFY and a.p2 == PIN_SO:  # VERIFY 88 with data
            self._follow_so(a.data[:8], rsp)
            return
        if a.ins == Ins.CHANGE_REFERENCE_DATA and a.p2 == PIN_USER:
            cur = t.user_pins[0] if t.user_pins else None
            if ok and cur is not None:
                t.user_pins, t.user_tries = (a.data[len(cur) :],), t.user_max
            elif tries is not None:
                t.user_tries = tries
            return
        if a.ins == Ins.CHANGE_REFERENCE_DATA and a.p2 == PIN_SO:
            self._follow_so(a.data[:8], rsp, new=a.data[8:16])
            return
        if a.ins == Ins.RESET_RETRY_COUNTER:
            self._follow_so(a.data[:8], rsp)
            if ok:
                t.user_tries = t.user_max
                if a.p1 == RRC_NEW_PIN:
                    t.user_pins = (a.data[8:],)
            return
        if a.ins == Ins.INITIALIZE_DEVICE:
            if ok:
                user, so = init_pins(a.data)
                # An accepted INITIALIZE proves what it carried: the user PIN it set, and the SO-PIN
                # it set (first initialization) or presented rightly (re-initialization).
                if user is not None:
                    t.user_pins = (user,)
                    self.user_proven = True
                    self.why_unproven.pop("user", None)
                if so is not None:
                    t.so_pins = (so,)
                    self.so_proven = True
                    self.why_unproven.pop("so", None)
                retries = init_retries(a.data)
                t.user_max = retries or t.user_max
                t.user_tries = t.user_max
                t.initialized = True
                t.wiped = True
                opts = init_options(a.data)
                t.options = opts if opts is not None else t.options
            elif tries is not None:
                t.so_tries = tries
            return

    def _follow_so(self, presented: bytes, rsp: Response, new: bytes | None = None) -> None:
        t = self.t
        tries = tries_left(rsp)
        if rsp.sw == SW.OK:
            t.so_pins = (new,) if new is not None else (presented,)
            if t.so_tries is not None and t.so_tries < SO_PIN_TRIES:
                self._so_check = t.so_tries  # the next query says whether a right SO-PIN restores
            t.so_tries = None  # unknown until the next free query
        elif tries is not None:
            t.so_tries = tries

    def _write_journal(self, if_lost: Tracked | None = None, pending: str = "") -> None:
        if self.journal is None:
            return
        t = if_lost or self.t
        self.entry = Entry(
            serial=self.serial,
            reader=self.reader,
            # Only PINs the token accepted: a restore never presents one it might refuse.
            owner_user_pin=hex_pin(self.pin) if self.user_proven else None,
            owner_so_pin=hex_pin(self.so_pin) if self.so_proven else None,
            user_pins=tuple(p.hex().upper() for p in t.user_pins),
            so_pins=tuple(p.hex().upper() for p in t.so_pins),
            user_tries_start=self.start.user if self.start else None,
            so_tries_start=self.start.so if self.start else None,
            objects_start=self.objects_start,
            pending=pending,
            wiped=t.wiped,
            may_wipe=self.may_wipe(),
            options_start=self.options_start,
            user_max_start=self.user_max_start,
        )
        self.journal.write(self.entry)

    # -- transport events ----------------------------------------------------------------------

    @contextmanager
    def power_cut(self) -> Iterator[None]:
        """A command whose power the suite cuts on purpose (a power-cut rig). It spends a try by
        design, so it passes the gate like any wrong presentation (a proven PIN restores it), and
        the journal written before it says what the token holds if the run ends right there."""
        self.cut_armed = True
        try:
            yield
        finally:
            self.cut_armed = False

    def on_cut(self) -> None:
        """The armed cut happened: no answer, so the counters are unknown until read again
        (free queries); the PINs are as before (a cut PIN check changes no PIN)."""
        self.cuts += 1
        self.t.user_tries = None
        self.t.so_tries = None
        self._write_journal()

    def on_lost(self, exc: TransportError) -> None:
        if self.lost is None:
            self.lost = str(exc) or type(exc).__name__
            self.lost_by_timeout = isinstance(exc, TransportTimeout)

    def inject(self, n: int) -> None:
        spec = self._inject
        if spec is None or spec[0] != n:
            return
        what = spec[1]
        if what.startswith("KILL="):
            try:
                os.kill(int(what[5:]), signal.SIGKILL)
            except (ProcessLookupError, ValueError):
                pass
        else:
            os.kill(os.getpid(), getattr(signal, f"SIG{what}"))

    # -- signals -------------------------------------------------------------------------------

    def _install_signals(self) -> None:
        if threading.current_thread() is not threading.main_thread() or self._handlers:
            return

        def handler(signum: int, frame: object) -> None:
            if self._busy or self.privileged or not self.owner_state():
                self._pending_signal = signum  # delivered at the next APDU boundary
                return
            raise self.stop_by(signum)

        for sig in STOP_SIGNALS:
            self._handlers[sig] = signal.signal(sig, handler)

    def _uninstall_signals(self) -> None:
        for sig, previous in self._handlers.items():
            signal.signal(sig, previous)  # type: ignore[arg-type]
        self._handlers.clear()

    def stop_by(self, signum: int) -> RunStopped:
        """The stop a signal makes, remembered for the exit status."""
        self.stopping = True
        self.stopped = RunStopped.by_signal(signum)
        return self.stopped

    def deliver_pending(self) -> None:
        """A signal held through the end of a test, with no APDU after it to stop at."""
        if self._pending_signal is not None and not self._busy and not self.privileged:
            sig, self._pending_signal = self._pending_signal, None
            raise self.stop_by(sig)

    # -- the end of a run ------------------------------------------------------------------------

    def finish(self, via: Transport | None = None) -> Outcome:
        """Put the owner's state back (whatever happened), read the counters, say so."""
        if self.outcome is not None:
            return self.outcome
        try:
            if not self.begun:
                self.outcome = Outcome(None, None, True, sentence="custody: the token was not used (no counters read)")
                return self.outcome
            self.outcome = restore_tracked(self, via)
            return self.outcome
        finally:
            self.closed = True
            self._uninstall_signals()
            if self._pending_signal is not None:  # held through the restore: the run still stops
                self.stop_by(self._pending_signal)
                self._pending_signal = None


class CustodyTransport(TransportWrapper):
    """The custody's layer on the device transport (see the module docstring)."""

    def __init__(self, inner: Transport, custody: Custody) -> None:
        super().__init__(inner)
        self.custody = custody

    def transmit(self, capdu: bytes) -> Response:
        c = self.custody
        if c.lost is not None and not c.privileged:
            raise TokenLost(f"the token stopped answering earlier in this run ({c.lost})")
        c.before(capdu)
        c._busy = True
        try:
            c.apdus += 1
            c.inject(c.apdus)
            try:
                rsp = self.inner.transmit(capdu)
            except TransportError as exc:
                if c.cut_armed:
                    c.on_cut()
                    raise
                c.on_lost(exc)
                raise TokenLost(f"the token stopped answering ({exc})") from None
            c.after(capdu, rsp)
        finally:
            c._busy = False
        return rsp
