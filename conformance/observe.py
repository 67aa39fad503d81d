"""Open behaviours: what the device does where the public sources are silent (rules.md).

The suite never judges these; it looks, records what it saw for summary.json's
`open_behaviours`, and resolves the model profile with the state-affecting ones before the
oracle predicts anything that depends on them. Probes go straight through the mapper (the oracle
cannot predict them yet, that is the point) and are read back with free status queries.

On a real token each probe stays inside the user's consent: the free and `tries` probes always
run (the SO floor holds), the probes that need INITIALIZE only with --hsm-serial and only when a
selected test will wipe the token anyway; afterwards the token is put back as it was found.
An inconclusive probe (e.g. a faulty device that did not spend a try) leaves the behaviour
unknown, and steps that depend on it are skipped with that reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hsm_lifecycle.conformance.interlocks import InterlockRefused
from hsm_lifecycle.model.cost import CostClass
from hsm_lifecycle.conformance.mapper import Mapper, WRONG_LENGTH_USER_PIN, apdu
from hsm_lifecycle.conformance.trace import TraceRecorder
from hsm_lifecycle.protocol import (
    CLA_ISO,
    PIN_USER,
    Ins,
    OPTION_RESET_RETRY_COUNTER,
    SO_PIN_TRIES,
    SW,
    USER_PIN_MIN,
    USER_PIN_TRIES_BY_LENGTH,
    USER_PIN_TRIES_DEFAULT,
    USER_PIN_TRIES_MAX,
    describe_sw,
    tries_from_sw,
)
from hsm_lifecycle.model.commands import Command
from hsm_lifecycle.model.profiles import (
    AUTH_AFTER_CHANGE,
    CASE3_LE,
    WRONG_PIN_ENDS_SESSION,
    AUTH_AFTER_INIT,
    INIT_WRONG_SO_SW,
    LAST_WRONG_TRY_SW,
    RETRIES_BY_PIN_LENGTH,
    RRC_DISABLED,
    SO_SUCCESS_RESTORES,
    SMARTCARD_HSM,
    WRONG_LENGTH_PIN_SW,
    Profile,
)
from hsm_lifecycle.model.states import ExtState


def normalize(behaviour: str, output: str) -> str:
    """How an observed SW is reported: the 63Cx family as "63Cx", except where the tries
    digit is the point (the last wrong try answers 63C0 or 6983)."""
    if behaviour != LAST_WRONG_TRY_SW and tries_from_sw(int(output, 16) if _is_sw(output) else 0) is not None:
        return "63Cx"
    return output


def _is_sw(text: str) -> bool:
    return len(text) == 4 and all(c in "0123456789ABCDEF" for c in text.upper())


@dataclass
class Observations:
    """What was seen, as text for the report, and the values that resolve the profile."""

    seen: dict[str, str] = field(default_factory=dict)
    resolved: dict[str, object] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)  # why a behaviour stayed unknown
    # Behaviours left unknown because the device answered what no profile explains (not for
    # lack of consent): a step that needs one of them fails instead of being skipped.
    odd: dict[str, str] = field(default_factory=dict)

    def profile(self, base: Profile = SMARTCARD_HSM) -> Profile:
        return base.resolve(self.resolved, name=base.name) if self.resolved else base


@dataclass
class Probe:
    """Raw, unjudged access to the device for observation."""

    mapper: Mapper
    recorder: TraceRecorder

    def run(self, cmd: Command, uninit: bool = False, why: str = "") -> str:
        self.recorder.context(f"observe {why}: {cmd}".strip(), "", ())
        return self.mapper.run(cmd, uninitialized=uninit)

    def query_so(self, why: str) -> int | None:
        sw = int(self.run(Command.query_so(), why=why), 16)
        return 0 if sw == SW.AUTH_METHOD_BLOCKED else tries_from_sw(sw)

    def query_user(self, why: str) -> str:
        return self.run(Command.query_user(), why=why)


# ---------------------------------------------------------------------------------------------
# Reading the device's extended state (persistent targets)


class CredentialError(Exception):
    """The PIN the user gave is not this token's: stop before spending more tries."""


def read_state(probe: Probe, *, identity: int = 0, user_pin_known: bool) -> ExtState:
    """The model state of a device found in an unknown state, from free reads.

    The user-PIN maximum is not readable; with the user PIN known it is learned by a correct
    VERIFY (which restores the counter to the maximum), otherwise the current count stands in.
    Identity generation and SO-blocked updates are not readable: `identity` is carried over.
    """
    probe.run(Command.select(), why="state")
    options = probe.mapper.options_from_fcp()
    so = probe.query_so("state")
    if so is None:
        return ExtState(identity=identity, so_blocked_updates=0)
    user_sw = probe.query_user("state")
    transport = user_sw == "6984"
    user = 0 if user_sw == "6983" else tries_from_sw(int(user_sw, 16)) if _is_sw(user_sw) else None
    ids = probe.mapper.key_ids()
    keys = len(ids or ())
    probe.mapper.keys[:] = sorted(ids or ())
    user_max = user if user else USER_PIN_TRIES_DEFAULT
    if user_pin_known and user and not transport:
        sw = probe.run(Command.verify_user("right"), why="user PIN max")
        if sw != "9000":
            raise CredentialError(
                f"the user PIN given with --hsm-pin was refused ({describe_sw(sw)}): it is not this token's user PIN; "
                "one user try was spent, stopping before spending more"
            )
        probe.run(Command.select(), why="state")
        after = tries_from_sw(int(probe.query_user("state"), 16))
        user_max = after or user_max
        user = user_max
    user_max = max(1, min(USER_PIN_TRIES_MAX, user_max))
    return ExtState(
        so_tries=so,
        user_tries=min(user or 0, user_max),
        user_max=user_max,
        options=options if options is not None else OPTION_RESET_RETRY_COUNTER,
        transport=transport,
        keys=keys,
        authenticated=False,
        identity=identity,
    )


# ---------------------------------------------------------------------------------------------
# Probes


@dataclass
class Observer:
    probe: Probe
    may_wipe: bool  # INITIALIZE allowed (emulator, or a real token with consent and a wiping test)
    so_floor: int | None  # None: no floor (emulator)
    # On a real token a PIN is presented only if its owner gave it (--hsm-pin, --hsm-so-pin):
    # a guessed "right" PIN that is not would spend a try.
    user_pin_known: bool = True
    so_pin_known: bool = True
    # A wrong SO-PIN at 15 tries, to see whether a right one gives the try back, costs that try
    # for good on a token that does not: only with consent to lose it (--hsm-serial).
    may_lose_so_try: bool = True
    so_pin_why: str = "probing it presents the token's SO-PIN: pass it with --hsm-so-pin"  # when not so_pin_known
    out: Observations = field(default_factory=Observations)

    def unknown(self, behaviour: str, why: str) -> None:
        self.out.notes[behaviour] = why
        self.out.seen.setdefault(behaviour, f"not observed: {why}")

    def odd(self, behaviour: str, why: str) -> None:
        """Unknown because of what the device answered."""
        self.unknown(behaviour, why)
        self.out.odd[behaviour] = why

    def observe_all(self, state: ExtState) -> ExtState:
        """Run every probe the target allows; returns the device's model state afterwards
        (not yet known to the profile, so the caller re-reads it where it matters)."""
        self.probe.run(Command.select(), why="start")
        if self.may_wipe:
            self.initialization_probes(state)
            # Put the token back the way it was configured (its keys are gone: consented).
            if state.is_initialized:
                state = self.reinitialize(state.options, state.user_max)
            else:
                state = self.reinitialize(OPTION_RESET_RETRY_COUNTER, USER_PIN_TRIES_DEFAULT)
        elif not state.is_initialized:
            for b in (AUTH_AFTER_INIT, RRC_DISABLED, RETRIES_BY_PIN_LENGTH, AUTH_AFTER_CHANGE, SO_SUCCESS_RESTORES):
                self.unknown(b, "the token is not initialized and initializing it needs --hsm-serial")
            return state
        else:
            for b in (AUTH_AFTER_INIT, RRC_DISABLED, RETRIES_BY_PIN_LENGTH, INIT_WRONG_SO_SW):
                self.unknown(b, "probing it re-initializes the token (needs --hsm-serial and a wiping test selected)")
        try:
            self.wrong_length()
        except InterlockRefused as exc:  # a faulty token could spend a try on it: needs the PINs
            self.unknown(WRONG_LENGTH_PIN_SW, exc.reason)
        if state.transport:
            self.unknown(AUTH_AFTER_CHANGE, "the transport PIN is active; changing it is the owner's first step")
        elif not self.user_pin_known:
            self.unknown(AUTH_AFTER_CHANGE, "probing it presents the token's user PIN: pass it with --hsm-pin")
        elif state.user_tries:
            self.auth_after_change()
        else:
            self.unknown(AUTH_AFTER_CHANGE, "the user PIN is blocked")
        self.wrong_pin_ends_session(state)
        self.case3_le(state)
        self.so_success_restores()
        self.probe.run(Command.select(), why="end")
        return state

    def reinitialize(self, options: int, retries: int) -> ExtState:
        sw = self.probe.run(Command.initialize("right", options, retries), why="set up")
        if sw != "9000":
            raise InterlockRefused(f"observation could not re-initialize the token ({describe_sw(sw)})")
        self.probe.run(Command.select(), why="set up")
        return ExtState.initialized(options=options, user_max=retries, so_tries=self.probe.query_so("set up") or 0)

    def initialization_probes(self, state: ExtState) -> None:
        if not state.is_initialized:
            self.probe.run(Command.initialize("right", OPTION_RESET_RETRY_COUNTER, USER_PIN_TRIES_DEFAULT), uninit=True, why="first initialize")
        # auth-after-init: query right after a successful INITIALIZE.
        self.probe.run(Command.initialize("right", OPTION_RESET_RETRY_COUNTER, USER_PIN_TRIES_DEFAULT), why=AUTH_AFTER_INIT)
        sw = self.probe.query_user(AUTH_AFTER_INIT)
        if sw == "9000":
            self.record(AUTH_AFTER_INIT, True)
        elif _is_sw(sw) and tries_from_sw(int(sw, 16)) is not None:  # not verified, whatever the count
            self.record(AUTH_AFTER_INIT, False)
        else:
            self.odd(AUTH_AFTER_INIT, f"the user-PIN query after INITIALIZE answered {sw}")
        # init-wrong-so-sw: refused, one SO try spent.
        sw = self.probe.run(Command.initialize("wrong", OPTION_RESET_RETRY_COUNTER, USER_PIN_TRIES_DEFAULT), why=INIT_WRONG_SO_SW)
        self.out.seen[INIT_WRONG_SO_SW] = normalize(INIT_WRONG_SO_SW, sw)
        self.probe.run(Command.initialize("right", OPTION_RESET_RETRY_COUNTER, USER_PIN_TRIES_DEFAULT), why="restore SO tries")
        # retries-by-pin-length: one retry more than CardContact allows for the PIN in use
        # (6 characters: 3, 7: 5); from 8 characters on every count up to 10 is allowed.
        length = len(self.probe.mapper.pins.user[0])
        cap = USER_PIN_TRIES_BY_LENGTH.get(length, USER_PIN_TRIES_MAX)
        if cap < USER_PIN_TRIES_MAX:
            probe = Command.initialize("right", OPTION_RESET_RETRY_COUNTER, cap + 1, length)
            sw = self.probe.run(probe, why=RETRIES_BY_PIN_LENGTH)
            if sw == "9000":
                self.record(RETRIES_BY_PIN_LENGTH, False)
            elif sw.startswith("6A8") or sw.startswith("69") or sw == "6700":
                self.record(RETRIES_BY_PIN_LENGTH, True, f"refused {sw}")
            else:
                self.odd(RETRIES_BY_PIN_LENGTH, f"INITIALIZE with {cap + 1} retries for a {length}-character PIN answered {sw}")
        else:
            self.unknown(RETRIES_BY_PIN_LENGTH, f"the user PIN in use has {length} characters, for which every count up to 10 is allowed")
        # rrc-disabled: option 0x0001 off, a wrong SO-PIN in RESET RETRY COUNTER.
        self.probe.run(Command.initialize("right", 0, USER_PIN_TRIES_DEFAULT), why=RRC_DISABLED)
        before = self.probe.query_so(RRC_DISABLED)
        sw = self.probe.run(Command.reset_retry_counter("wrong", False), why=RRC_DISABLED)
        after = self.probe.query_so(RRC_DISABLED)
        if before is None or after is None or after not in (before, before - 1):
            self.odd(RRC_DISABLED, f"SO tries went from {before} to {after}")
        else:
            spends = after == before - 1
            self.out.resolved[RRC_DISABLED] = spends
            self.out.seen[RRC_DISABLED] = f"{normalize(RRC_DISABLED, sw)}, {'spends' if spends else 'spends no'} SO try"

    def wrong_length(self) -> None:
        sw = self.probe.run(Command.verify_user("wrong_length"), why=WRONG_LENGTH_PIN_SW)
        self.out.seen[WRONG_LENGTH_PIN_SW] = normalize(WRONG_LENGTH_PIN_SW, sw)
        assert len(WRONG_LENGTH_USER_PIN) < USER_PIN_MIN

    def auth_after_change(self) -> None:
        """CHANGE 81 in a fresh session, then the user query; changed back afterwards."""
        self.probe.run(Command.select(), why=AUTH_AFTER_CHANGE)
        sw = self.probe.run(Command.change_user_pin("right"), why=AUTH_AFTER_CHANGE)
        if sw != "9000":
            self.odd(AUTH_AFTER_CHANGE, f"CHANGE REFERENCE DATA 81 with the right PIN answered {sw}")
            return
        query = self.probe.query_user(AUTH_AFTER_CHANGE)
        if query == "9000":
            self.record(AUTH_AFTER_CHANGE, True)
        elif tries_from_sw(int(query, 16)) is not None:
            self.record(AUTH_AFTER_CHANGE, False)
        else:
            self.odd(AUTH_AFTER_CHANGE, f"the user query after the change answered {query}")
        self.probe.run(Command.change_user_pin("right"), why="change back")

    def wrong_pin_ends_session(self, state: ExtState) -> None:
        """VERIFY right, VERIFY wrong, then the user query: 9000 means the session survived.
        Spends one user try, given back by the right PIN after it; needs two tries left."""
        if state.transport or not self.user_pin_known:
            why = "the transport PIN is active" if state.transport else "probing it presents the token's user PIN: pass it with --hsm-pin"
            self.unknown(WRONG_PIN_ENDS_SESSION, why)
            return
        if state.user_tries < 2 and state.user_max < 2:
            self.unknown(WRONG_PIN_ENDS_SESSION, "the user PIN allows fewer than 2 tries")
            return
        self.probe.run(Command.select(), why=WRONG_PIN_ENDS_SESSION)
        if self.probe.run(Command.verify_user("right"), why=WRONG_PIN_ENDS_SESSION) != "9000":
            self.odd(WRONG_PIN_ENDS_SESSION, "the user PIN was refused")
            return
        self.probe.run(Command.verify_user("wrong"), why=WRONG_PIN_ENDS_SESSION)
        query = self.probe.query_user(WRONG_PIN_ENDS_SESSION)
        self.probe.run(Command.verify_user("right"), why="restore the user tries")
        self.probe.run(Command.select(), why=WRONG_PIN_ENDS_SESSION)
        if query == "9000":
            self.record(WRONG_PIN_ENDS_SESSION, False)
        elif _is_sw(query) and tries_from_sw(int(query, 16)) is not None:
            self.record(WRONG_PIN_ENDS_SESSION, True)
        else:
            self.odd(WRONG_PIN_ENDS_SESSION, f"the user query after a wrong PIN answered {query}")

    def case3_le(self, state: ExtState) -> None:
        """VERIFY 81 with the right PIN and a trailing Le 00: accepted (9000) or refused.
        Reported only. A device that took the Le for a PIN byte spent a try: given back with
        the right PIN, and the session the probe may have opened ends with a re-SELECT."""
        if state.transport or not self.user_pin_known or not state.user_tries:
            why = ("the transport PIN is active" if state.transport else "the user PIN is blocked" if self.user_pin_known
                   else "probing it presents the token's user PIN: pass it with --hsm-pin")  # fmt: skip
            self.unknown(CASE3_LE, why)
            return
        pin = self.probe.mapper.pins.user_pin
        self.probe.run(Command.select(), why=CASE3_LE)
        self.probe.recorder.context(f"observe {CASE3_LE}: VERIFY 81 with the user PIN and Le 00", "", ())
        try:
            sw = self.probe.mapper.send(apdu(CLA_ISO, Ins.VERIFY, 0, PIN_USER, pin, le=0)).sw_hex.upper()
        except InterlockRefused as exc:
            self.unknown(CASE3_LE, exc.reason)
            return
        if sw == "9000":
            self.out.seen[CASE3_LE] = "accepted (9000)"
        else:
            spent = _is_sw(sw) and tries_from_sw(int(sw, 16)) is not None
            self.out.seen[CASE3_LE] = f"refused ({normalize(CASE3_LE, sw)})" + (", a try spent" if spent else "")
            if spent:
                self.probe.run(Command.verify_user("right"), why="restore the user tries")
        self.probe.run(Command.select(), why=CASE3_LE)

    def so_success_restores(self) -> None:
        """Spend one SO try (only above the floor), then a right SO-PIN: back to 15 or not."""
        if not self.so_pin_known:
            self.unknown(SO_SUCCESS_RESTORES, self.so_pin_why)
            return
        before = self.probe.query_so(SO_SUCCESS_RESTORES)
        if before is None or before == 0:
            self.unknown(SO_SUCCESS_RESTORES, "the SO-PIN is blocked or not set")
            return
        if before == SO_PIN_TRIES:
            if not self.may_lose_so_try:
                self.unknown(
                    SO_SUCCESS_RESTORES,
                    "the SO counter is at its maximum, so seeing it spends one SO try that a token which does not restore it "
                    "never gives back: pass --hsm-serial (consent to lose that try) to allow it",
                )
                return
            if self.so_floor is not None and before - 1 < self.so_floor:
                self.unknown(SO_SUCCESS_RESTORES, "spending one SO try would cross the floor")
                return
            self.probe.run(Command.change_so_pin("wrong"), why=SO_SUCCESS_RESTORES)
            spent = self.probe.query_so(SO_SUCCESS_RESTORES)
            if spent != before - 1:
                self.odd(SO_SUCCESS_RESTORES, f"a wrong SO-PIN left {spent} tries, not {before - 1}")
                return
            before = spent
        self.probe.run(Command.change_so_pin("right"), why=SO_SUCCESS_RESTORES)
        after = self.probe.query_so(SO_SUCCESS_RESTORES)
        self.probe.run(Command.change_so_pin("right"), why="change back")
        if after == SO_PIN_TRIES:
            self.record(SO_SUCCESS_RESTORES, True)
        elif after == before:
            self.record(SO_SUCCESS_RESTORES, False)
        else:
            self.odd(SO_SUCCESS_RESTORES, f"a right SO-PIN left {after} tries (before: {before})")

    def record(self, behaviour: str, value: bool, detail: str = "") -> None:
        self.out.resolved[behaviour] = value
        self.out.seen[behaviour] = str(value).lower() + (f" ({detail})" if detail else "")


def observe(
    probe: Probe,
    state: ExtState,
    *,
    may_wipe: bool,
    so_floor: int | None,
    user_pin_known: bool = True,
    so_pin_known: bool = True,
    may_lose_so_try: bool | None = None,  # None: as may_wipe (consent to wipe covers one SO try)
    so_pin_why: str = "",
) -> tuple[Observations, ExtState]:
    lose = may_wipe if may_lose_so_try is None else may_lose_so_try
    observer = Observer(probe, may_wipe, so_floor, user_pin_known, so_pin_known, lose)
    if so_pin_why:
        observer.so_pin_why = so_pin_why
    try:
        state = observer.observe_all(state)
    except InterlockRefused as exc:
        observer.unknown("interlock", exc.reason)
    return observer.out, state


def probe_cost(may_wipe: bool) -> CostClass:
    return CostClass.WIPES if may_wipe else CostClass.TRIES
