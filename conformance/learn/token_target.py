"""A real token (or anything behind PC/SC) as a learning target, under strict conditions.

A reset-based learner needs one known start state again and again. On a real token the only
way back is INITIALIZE DEVICE with the right SO-PIN: it wipes every key (cost class `wipes`),
so it needs the user's consent (`--serial` naming this token, as the suite asks), and it needs
the SO-PIN to stay usable for the whole run. That is guaranteed only if nothing the learner
sends can spend an SO try on a conforming token, so:

* alphabets that present a wrong SO-PIN or change the SO-PIN are refused before any APDU;
* the token must be initialized with enough SO tries that one mistaken `--so-pin` cannot reach
  the floor; the first INITIALIZE shows whether the SO-PIN is right, and a refusal stops
  everything at once (one try spent, said so);
* every APDU passes the suite's `GuardedTransport` (no `irreversible` command, SO floor);
* after every reset the SO counter is read (free) and must be where it started: a token that
  spends SO tries where the model says it must not stops the run there, far above the block;
* at the end the token is re-initialized once more, so it is left initialized with the user's
  SO-PIN and user PIN, options 0x0001, the learning's retry counter and no keys.

Open behaviours the projection depends on are observed during the first reset.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hsm_lifecycle.conformance.interlocks import Consent, GuardedTransport, InterlockRefused, SerialMismatch
from hsm_lifecycle.conformance.learn.alphabet import LearningAlphabet, RETRIES
from hsm_lifecycle.conformance.learn.sul import OK, LearningCost, CountingTransport, DeviceSession, LearningAborted, Target
from hsm_lifecycle.conformance.mapper import IdentityUnreadable, Mapper, PinBook, apdu
from hsm_lifecycle.conformance.trace import TraceRecorder, TracingTransport
from hsm_lifecycle.conformance.transport.base import Transport
from hsm_lifecycle import cvc
from hsm_lifecycle.protocol import CLA_ISO, OPTION_RESET_RETRY_COUNTER, PIN_SO, SO_PIN_TRIES, SW, Ins, describe_sw, tries_from_sw
from hsm_lifecycle.model.commands import INITIALIZE, QUERY_SO, RIGHT, Command
from hsm_lifecycle.model.profiles import AUTH_AFTER_INIT, SMARTCARD_HSM, SO_SUCCESS_RESTORES, WRONG_PIN_ENDS_SESSION, Profile
from hsm_lifecycle.model.states import ExtState

DEFAULT_SO_FLOOR = 5


class LearningRefused(Exception):
    """The learner will not start on this token; the message says why and what to do."""


def reset_command(alphabet: LearningAlphabet) -> Command:
    """The INITIALIZE a reset sends: the alphabet's own right-SO-PIN one, else the default."""
    for command in alphabet.commands:
        if command.name == INITIALIZE and command.so == RIGHT:
            return command
    return Command.initialize(RIGHT, OPTION_RESET_RETRY_COUNTER, RETRIES)


@dataclass
class RealTokenTarget(Target):
    transport: Transport  # not yet connected
    serial: str  # the consent: the serial of the token the user allows to be wiped
    so_pin: bytes
    user_pin: bytes
    alphabet: LearningAlphabet
    so_floor: int = DEFAULT_SO_FLOOR
    kind: str = "pcsc"
    _guarded: GuardedTransport | None = field(default=None, init=False, repr=False)
    _start: ExtState | None = field(default=None, init=False, repr=False)
    _profile: Profile | None = field(default=None, init=False, repr=False)
    _observed: dict[str, bool] = field(default_factory=dict, init=False, repr=False)
    _device_serial: str = field(default="", init=False, repr=False)
    _aborted: bool = field(default=False, init=False, repr=False)

    # -- before the first wipe -----------------------------------------------------------

    def prepare(self, cost: LearningCost) -> None:
        """Everything that must hold before anything is changed; then the first reset."""
        if self.alphabet.presents_wrong_so_pin or self.alphabet.changes_so_pin:
            raise LearningRefused(
                f"alphabet {self.alphabet.name!r} presents a wrong SO-PIN or changes it; on a real token only an "
                "alphabet that can never spend an SO try is learned (every reset needs the SO-PIN): use --alphabet core"
            )
        consent = Consent(guarded=True, serial=self.serial, allow_irreversible=False, allow_operator=False, so_floor=self.so_floor)
        guarded = GuardedTransport(CountingTransport(self.transport, cost), consent, right_so_pin=lambda: self.so_pin)
        guarded.connect()
        mapper = Mapper(guarded, pins=PinBook.create(self.user_pin, self.so_pin))
        if mapper.select().sw != SW.OK:
            raise LearningRefused("the token in the reader does not answer SELECT of the SmartCard-HSM applet; is it a SmartCard-HSM / Nitrokey HSM 2?")
        self._device_serial = _read_serial(mapper)
        try:
            consent.confirm_serial(self._device_serial)
        except SerialMismatch as exc:
            raise LearningRefused(str(exc)) from None
        before = _so_tries(mapper)
        if before is None:
            raise LearningRefused(
                "the token is not initialized; learning on a real token starts from an initialized token whose "
                "SO-PIN you know (initialize it first, e.g. with sc-hsm-tool --initialize)"
            )
        if before <= self.so_floor:
            raise LearningRefused(
                f"the SO-PIN has {before} tries left, at or below the floor {self.so_floor} (--so-floor): a mistaken "
                "--so-pin would cross it; learning would not leave a safe way back"
            )
        try:
            self._observe_first_reset(mapper, before)
        except BaseException:
            guarded.close()  # no way forward, and nothing to restore: no reset succeeded
            raise
        self._guarded = guarded

    def _observe_first_reset(self, mapper: Mapper, before: int) -> None:
        init = reset_command(self.alphabet)
        answered = mapper.run(init, uninitialized=False)
        if answered != OK:
            left = _so_tries(mapper)
            raise LearningRefused(
                f"INITIALIZE with the given --so-pin answered {describe_sw(answered)}: the SO-PIN is not right; one SO try is spent "
                f"({left} left) and nothing else changed"
            )
        # Open behaviours the projection may need, observed rather than assumed.
        self._observed[AUTH_AFTER_INIT] = mapper.run(Command.query_user(), uninitialized=False) == OK
        # wrong-pin-ends-session: right, wrong, query (9000: the session survived), right again
        # (the token was just initialized: it has every try, and the right PIN restores them).
        mapper.run(Command.verify_user("right"), uninitialized=False)
        mapper.run(Command.verify_user("wrong"), uninitialized=False)
        self._observed[WRONG_PIN_ENDS_SESSION] = mapper.run(Command.query_user(), uninitialized=False) != OK
        mapper.run(Command.verify_user("right"), uninitialized=False)
        mapper.run(Command.power_cycle(), uninitialized=False)
        after = _so_tries(mapper)
        if after is None or after < before:
            raise LearningAborted(f"a right SO-PIN in INITIALIZE spent an SO try ({before} -> {after}); stopped")
        if before < SO_PIN_TRIES:
            self._observed[SO_SUCCESS_RESTORES] = after == SO_PIN_TRIES
        self._profile = SMARTCARD_HSM.resolve(self._observed, name="smartcard-hsm (observed)")
        self._start = ExtState.initialized(so_tries=after, user_max=init.retries, options=init.options)  # type: ignore[arg-type]

    # -- Target ------------------------------------------------------------------------------

    def open_session(self, alphabet: LearningAlphabet, cost: LearningCost, recorder: TraceRecorder | None = None) -> DeviceSession:
        if self._guarded is None or self._start is None:
            raise LearningAborted("the real-token target was not prepared (call prepare first)")
        transport: Transport = self._guarded if recorder is None else TracingTransport(self._guarded, recorder)
        mapper = Mapper(transport, pins=PinBook.create(self.user_pin, self.so_pin))
        try:
            self._reset(mapper)
        except InterlockRefused as exc:
            raise LearningAborted(f"the interlock stopped a reset: {exc.reason}") from None
        return DeviceSession(mapper=mapper, max_keys=alphabet.max_keys, uninitialized=False, recorder=recorder, watch=self._watch)

    def _watch(self, command: Command, output: str) -> None:
        """Every SO status the learner sees must still show the counter where it started."""
        if command.name != QUERY_SO or self._start is None:
            return
        left = 0 if output == "6983" else tries_from_sw(int(output, 16)) if _is_sw(output) else None
        if left is not None and left < (self._start.so_tries or 0):
            self._aborted = True
            raise LearningAborted(
                f"the SO counter dropped to {left} (from {self._start.so_tries}) although the learner never presents a "
                "wrong SO-PIN; stopped at once, the token left as it is"
            )

    def _reset(self, mapper: Mapper) -> None:
        answered = mapper.run(reset_command(self.alphabet), uninitialized=False)
        if answered != OK:
            self._aborted = True
            raise LearningAborted(f"a reset's INITIALIZE answered {describe_sw(answered)}; stopped with the token as it is")
        mapper.run(Command.power_cycle(), uninitialized=False)
        left = _so_tries(mapper)
        if left != self._start.so_tries:  # type: ignore[union-attr]
            self._aborted = True
            raise LearningAborted(
                f"the SO counter moved to {left} (it was {self._start.so_tries} after the first reset) although the "  # type: ignore[union-attr]
                "learner never presents a wrong SO-PIN; stopped, far above the block"
            )

    def close_session(self, session: DeviceSession) -> None:
        """The card stays connected between queries; the next reset re-initializes it."""

    def start_state(self) -> ExtState:
        if self._start is None:
            raise LearningAborted("the real-token target was not prepared (call prepare first)")
        return self._start

    @property
    def model_profile(self) -> Profile:
        if self._profile is None:
            raise LearningAborted("the real-token target was not prepared (call prepare first)")
        return self._profile

    def describe(self) -> dict[str, object]:
        init = reset_command(self.alphabet)
        return {
            "kind": self.kind,
            "reader": self.transport.describe().get("reader", ""),
            "serial": self._device_serial,
            "reset": f"{init} with the given SO-PIN, then power cycle and SELECT",
            "observed": dict(self._observed),
            "so_floor": self.so_floor,
        }

    def finish(self) -> None:
        """Leave the token re-initialized with the user's PINs (keys are gone: the consent).
        After an abort the token is left exactly as it is: it no longer behaves as assumed."""
        if self._guarded is None:
            return
        try:
            if not self._aborted:
                self._reset(Mapper(self._guarded, pins=PinBook.create(self.user_pin, self.so_pin)))
        finally:
            self._guarded.close()
            self._guarded = None


def _is_sw(text: str) -> bool:
    return len(text) == 4 and all(ch in "0123456789ABCDEF" for ch in text)


def _so_tries(mapper: Mapper) -> int | None:
    """SO tries from the free status query; None while uninitialized."""
    sw = mapper.send(apdu(CLA_ISO, Ins.VERIFY, 0x00, PIN_SO)).sw
    if sw == SW.AUTH_METHOD_BLOCKED:
        return 0
    return tries_from_sw(sw)


def _read_serial(mapper: Mapper) -> str:
    """The serial as OpenSC shows it, from the device certificate in EF.C_DevAut (free)."""
    try:
        device = cvc.parse_cv_objects(mapper.read_identity())[0]
        return cvc.serial_from_chr(device.chr)
    except (IdentityUnreadable, cvc.CvcError, ValueError, IndexError) as exc:
        raise LearningRefused(f"the token's serial cannot be read from EF.C_DevAut ({exc}); its identity is not checkable") from None
