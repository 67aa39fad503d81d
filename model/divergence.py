"""Blame by what diverged: when a device's answer differs from the model's, the first
extended-state variable the answer shows to differ (SO tries, user tries, keys, session,
initialization) or else the status word decides which checks failed, not the rule tags of the
step that noticed it.

A status query only reveals a difference that an earlier command made: the `culprit` is the
last command before the query that could change something; a query with nothing but queries
before it blames R19 (queries are free).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from hsm_lifecycle.model import commands as C
from hsm_lifecycle.model import outputs as out
from hsm_lifecycle.model.checks import checks_at
from hsm_lifecycle.model.commands import Command
from hsm_lifecycle.model.oracle import Outcome
from hsm_lifecycle.model.outputs import UPDATE_OK, UPDATE_REFUSED_ACCOUNT, UPDATE_REFUSED_LIMIT
from hsm_lifecycle.protocol import FIRMWARE_UPDATES_WHILE_SO_BLOCKED
from hsm_lifecycle.model.states import ExtState

SO_TRIES = "SO tries"
USER_TRIES = "user tries"
KEYS = "keys"
SESSION = "session"
INITIALIZATION = "initialization"
DKEK = "DKEK"
STATUS_WORD = "status word"
PORTAL = "portal's answer"
UPDATE_REFUSED = "update-refused"  # the prefix of every refusal the portal words
DATA = "data objects"
IDENTITY = "device identity"

QUERIES = frozenset({C.QUERY_USER, C.QUERY_SO})
SO_COMMANDS = frozenset({C.QUERY_SO, C.INITIALIZE, C.RESET_RETRY_COUNTER, C.CHANGE_SO_PIN})
USER_COMMANDS = frozenset({C.QUERY_USER, C.VERIFY_USER, C.CHANGE_USER_PIN})
KEY_COMMANDS = frozenset({C.GENERATE_KEY, C.SIGN, C.DELETE_KEY, C.DECIPHER, C.WRITE_DATA, C.READ_PROTECTED, C.DEVICE_SIGN})
# The check each command's "refused without a verified user PIN" belongs to.
_NEEDS_LOGIN = {
    C.SIGN: "R10.sign-needs-login",
    C.GENERATE_KEY: "R10.generate-needs-login",
    C.DELETE_KEY: "R10.delete-needs-login",
    C.DECIPHER: "R10.decipher-needs-login",
    C.WRITE_DATA: "R10.update-needs-login",
    C.READ_PROTECTED: "R09.protected-read-refused",
    C.DEVICE_SIGN: "R10.sign-needs-login",
}
# A session ended by these, then used anyway: the check of the way it ended.
_SESSION_ENDS = {
    C.SELECT: "R10.reselect-ends-session",
    C.POWER_CYCLE: "R10.power-off-ends-session",
    C.WARM_RESET: "R10.warm-reset-ends-session",
}
OK = "9000"
NOT_LOGGED_IN = "6982"
NOT_INITIALIZED = "6A88"
NO_SUCH_KEY = "6A82"
NO_SUCH_FILE = "6A82"


# The culprit marker for a command outside the alphabet (its effect is not modelled).
OFF_ALPHABET: Outcome = object()  # type: ignore[assignment]

# A PIN check the power was cut in (after the comparison): a counter it left wrong is R17's.
TEAR_CHECKS = {
    C.VERIFY_USER: "R17.verify-user-tear",
    C.CHANGE_USER_PIN: "R17.change-user-tear",
    C.CHANGE_SO_PIN: "R17.change-so-tear",
    C.RESET_RETRY_COUNTER: "R17.rrc-tear",
}


# An open behaviour the device's answers left undetermined (conformance.observe's "odd" ones):
# the probe saw the device break the part of a rule the probe leans on.
ODD_BEHAVIOUR_CHECKS = {
    "rrc-disabled": "R02.rrc-disabled-wrong-spends-per-profile",
    "so-success-restores": "R02.right-spends-none",
    "auth-after-change": "R04.right-restores",
    "auth-after-init": "R07.counter-set",
    "wrong-pin-ends-session": "R04.verify-wrong-spends-one",
    "retries-by-pin-length": "R04.starts-at-tag-91",
}


@dataclass(frozen=True, slots=True)
class Torn:
    """A history entry: `outcome`'s command, cut short by a power loss."""

    outcome: Outcome

    @property
    def command(self) -> Command:
        return self.outcome.command


@dataclass(frozen=True, slots=True)
class Blame:
    variable: str  # what diverged (one of the names above)
    detail: str  # "model 14, device 13"
    checks: tuple[str, ...]  # the checks that failed; empty: the status word decides alone

    def describe(self) -> str:
        blamed = ", ".join(self.checks) or "no check of the catalog"
        return f"diverged: {self.variable} ({self.detail}) -> {blamed}"


def count_of(answer: str) -> int | None:
    """The tries an answer shows: 63Cx -> x, 6983 -> 0; None for anything else."""
    if len(answer) == 4 and answer.upper().startswith("63C"):
        return int(answer[3], 16)
    return 0 if answer.upper() == "6983" else None


# Which commands can move a variable: a query blames the last of them since the same query last
# answered as the model said (none: the queries in between moved it, R19).
_MOVES = {
    C.QUERY_SO: frozenset({C.INITIALIZE, C.RESET_RETRY_COUNTER, C.CHANGE_SO_PIN, C.FIRMWARE_UPDATE}),
    C.QUERY_USER: frozenset({C.VERIFY_USER, C.CHANGE_USER_PIN, C.RESET_RETRY_COUNTER, C.INITIALIZE, C.FIRMWARE_UPDATE, C.PORTAL_LOGIN}),
}


def culprit_of(history: Sequence[Outcome | None], query: str | None) -> Outcome | None:
    """The step that made the difference a command reveals: for a status query, the last step
    that can move its counter since that query last answered; otherwise the last non-query step.
    A None in `history` is a command outside the alphabet: what it did is unknown (OFF_ALPHABET)."""
    for past in reversed(history):
        if past is None:
            return OFF_ALPHABET
        if isinstance(past, Torn):
            if query is None or past.command.name in _MOVES[query]:
                return past  # type: ignore[return-value]
            continue  # a torn user-PIN check cannot have moved the SO counter (nor the reverse)
        name = past.command.name
        if query is not None and name == query and not (name == C.QUERY_USER and past.next.authenticated):
            return None  # that query showed the counter as the model had it (9000 in a session shows none)
        if query is not None and name in _MOVES[query]:
            return past
        if query is None and name not in QUERIES:
            return past
    return None


def blame(outcome: Outcome, answer: str, history: Sequence[Outcome | None] = ()) -> Blame:
    """What diverged when the device answered `answer` where the model expected `outcome`;
    `history` holds the steps the device took before, as the model accepted them. When the
    culprit is a command outside the alphabet, the variable is named but no check: the test
    that sent it decides (conformance.judging)."""
    culprit = culprit_of(history, outcome.command.name if outcome.command.name in QUERIES else None)
    if isinstance(culprit, Torn):
        found = _blame(outcome, answer, [h for h in history if not isinstance(h, Torn)])
        if found.variable in (SO_TRIES, USER_TRIES):
            return Blame(found.variable, found.detail + f", after a power cut in {culprit.command}", (TEAR_CHECKS[culprit.command.name],))
        return found
    found = _blame(outcome, answer, history)
    if culprit is OFF_ALPHABET and found.variable not in (STATUS_WORD, PORTAL):  # both are this step's own answer
        return Blame(found.variable, found.detail + ", after a command outside the alphabet", ())
    return found


def _blame(outcome: Outcome, answer: str, history: Sequence[Outcome | None]) -> Blame:
    cmd, before, after = outcome.command, outcome.before, outcome.next
    culprit = culprit_of(history, cmd.name if cmd.name in QUERIES else None)
    last = culprit_of(history, None)
    if culprit is OFF_ALPHABET or last is OFF_ALPHABET:
        culprit = last = None
    if cmd.name in DKEK_COMMANDS and after.is_initialized and answer not in outcome.outputs:
        dkek_blame = _dkek(outcome, answer, history)
        if dkek_blame is not None:
            return dkek_blame
    answer = answer.upper()
    expected = sorted(outcome.outputs)
    got = count_of(answer)
    # Initialization: the device says "not initialized" where the model has an SO-PIN, or the reverse.
    if (answer == NOT_INITIALIZED) != (NOT_INITIALIZED in outcome.outputs) and (answer == NOT_INITIALIZED or not after.is_initialized):
        return Blame(INITIALIZATION, f"model {after.abstract}, device answered {answer}", _initialization(outcome, answer, culprit or last))
    if cmd.name in SO_COMMANDS and got is not None and after.so_tries is not None and got != after.so_tries:
        if cmd.so == C.RIGHT and before.so_tries and got == before.so_tries - 1:
            # The SO-PIN the model holds for right was refused: blame what last set it.
            return Blame(SO_TRIES, f"model {after.so_tries}, device {got}: the SO-PIN set last is not the SO-PIN", _so_pin_setter(history))
        return Blame(SO_TRIES, f"model {after.so_tries}, device {got}", _so_tries(cmd, outcome, culprit))
    if cmd.name in USER_COMMANDS and after.is_initialized and not after.transport:
        model_auth = cmd.name == C.QUERY_USER and after.authenticated
        if got is not None and not model_auth and got != after.user_tries:
            if cmd.name == C.VERIFY_USER and cmd.pin == C.RIGHT and got == before.user_tries - 1 and before.so_tries:
                # The PIN the model holds for right was refused: blame what last set it.
                return Blame(USER_TRIES, f"model {after.user_tries}, device {got}: the PIN set last is not the PIN", _pin_setter(history))
            return Blame(USER_TRIES, f"model {after.user_tries}, device {got}", _user_tries(cmd, outcome, culprit))
        if cmd.name == C.QUERY_USER and (answer == OK) != model_auth and (answer == OK or got is not None):
            return Blame(SESSION, f"model {'open' if model_auth else 'closed'}, device {'open' if answer == OK else 'closed'}", _session(outcome, last))
    if cmd.name == C.READ_PROTECTED and before.is_initialized and answer in (OK, out.DATA_DIFFERS.upper()) and NO_SUCH_FILE in outcome.outputs:
        return Blame(DATA, "model: no data object, device: read one", _data_kept(history))
    if cmd.name == C.READ_PROTECTED and answer == out.DATA_DIFFERS.upper():
        return Blame(DATA, "model: the data written, device: other data", ("R09.protected-read-refused",))
    if cmd.name == C.DEVICE_SIGN and answer == out.DEVICE_KEY_DIFFERS.upper():
        return Blame(IDENTITY, "CC00 signed with a key the device certificate read before does not name", ("R08.device-key-unchanged",))
    if cmd.name in KEY_COMMANDS and before.is_initialized:
        if answer == OK and outcome.outputs >= {NOT_LOGGED_IN} and OK not in outcome.outputs:
            return Blame(SESSION, "model: no verified user PIN, device: key use allowed", _key_use_allowed(outcome, last))
        if answer == NOT_LOGGED_IN and outcome.outputs == {OK}:
            return Blame(SESSION, "model: user PIN verified, device: not logged in", _session(outcome, last))
        if answer == NO_SUCH_KEY and OK in outcome.outputs and before.keys and cmd.name not in (C.READ_PROTECTED, C.WRITE_DATA):
            return Blame(KEYS, f"model {before.keys} keys, device has none to use", _keys_lost(last))
    if cmd.name == C.FIRMWARE_UPDATE and UPDATE_OK in outcome.outputs and answer.lower().startswith(UPDATE_REFUSED):
        refused = answer.lower()
        check = _update_refused(before, refused)
        if check is not None:
            return Blame(PORTAL, f"model: update admitted, portal: {refused}", (check,))
    checks = tuple(c.id for c in checks_at(outcome.transition))
    return Blame(STATUS_WORD, f"model {' | '.join(expected)}, device {answer}", checks)


def _update_refused(before: ExtState, refused: str) -> str | None:
    """An update the model admits, refused: the portal's reason tells whose rule broke (the
    gate's of R12/R13, or R15's account that may update another, blocked device)."""
    if refused == UPDATE_REFUSED_ACCOUNT:
        return "R15.account-updates-blocked-device" if before.is_initialized and before.user_tries == 0 else None
    if before.so_tries == 0 and before.keys:
        # Admitted only because the SO-PIN is blocked: a limit reached too early is R13's.
        return "R13.five-admitted" if refused == UPDATE_REFUSED_LIMIT else "R12.admitted-when-so-blocked"
    if before.so_tries == 0 and before.so_blocked_updates >= FIRMWARE_UPDATES_WHILE_SO_BLOCKED:
        return "R13.empty-not-counted"
    return None if before.keys else "R12.admitted-without-keys"


# -- DKEK key backup (R23) -----------------------------------------------------------------------

DKEK_COMMANDS = frozenset({C.DKEK_STATUS, C.IMPORT_DKEK_SHARE})
# What can change the DKEK a status query shows.
_MOVES_DKEK = frozenset({C.INITIALIZE, C.IMPORT_DKEK_SHARE, C.FIRMWARE_UPDATE})


def _dkek(outcome: Outcome, answer: str, history: Sequence[Outcome | None]) -> Blame | None:
    """The DKEK the device shows (its status, or whether it takes a share) is not the model's:
    blame the last step that could have changed it. None: only the status word differs."""
    before = outcome.before
    model = f"{before.dkek_imported}/{before.dkek_shares} shares imported" if before.dkek_shares is not None else "no DKEK"
    detail = f"model {model}, device answered {answer}"
    culprit: Outcome | None = None
    for past in reversed(history):
        if past is None:
            return Blame(DKEK, detail + ", after a command outside the alphabet", ())
        if not isinstance(past, Torn) and past.command.name in _MOVES_DKEK:
            culprit = past
            break
    if culprit is None:
        return Blame(DKEK, detail, ("R23.status-follows-init",))
    c = culprit.command
    if c.name == C.INITIALIZE and c.so == C.RIGHT and culprit.before.dkek_shares is not None:
        return Blame(DKEK, detail + f", after {c}", ("R23.init-erases-dkek",))  # the old DKEK survived it
    if c.name == C.FIRMWARE_UPDATE:
        return Blame(DKEK, detail + f", after {c}", ("R14.as-shipped",))
    return Blame(DKEK, detail + f", after {c}", ("R23.status-follows-init",))


def query_moves_itself(outcome: Outcome, first: str, again: str) -> Blame | None:
    """A status query answered a count the model did not expect, and asked once more it
    answered another: the query itself moves the counter (R19), whatever happened before."""
    if outcome.command.name not in QUERIES or first.upper() == again.upper():
        return None
    check = "R19.query-so-free" if outcome.command.name == C.QUERY_SO else "R19.query-user-free"
    return Blame(SO_TRIES if outcome.command.name == C.QUERY_SO else USER_TRIES, f"asked twice: {first}, then {again}", (check,))


def blame_key_count(expected: int, listed: int, history: Sequence[Outcome | None] = ()) -> Blame:
    """ENUMERATE OBJECTS lists `listed` private keys where the model counts `expected`."""
    passive = (*QUERIES, C.SELECT, C.POWER_CYCLE, C.SIGN, C.WARM_RESET, C.DECIPHER, C.READ_PROTECTED, C.DEVICE_SIGN)
    culprit = next((h for h in reversed(history) if h is None or h.command.name not in passive), None)
    if culprit is None and history and history[-1] is None:
        return Blame(KEYS, f"model {expected}, device lists {listed}, after a command outside the alphabet", ())
    cmd = culprit.command if culprit else None
    if cmd is not None and cmd.name == C.INITIALIZE and cmd.so == C.RIGHT and culprit and culprit.before.is_initialized:
        checks: tuple[str, ...] = ("R07.keys-erased",)
    elif cmd is not None and cmd.name == C.FIRMWARE_UPDATE:
        checks = ("R14.no-keys",) if culprit and culprit.next.abstract != culprit.before.abstract else ("R12.refused-with-keys",)
    else:
        checks = _keys_lost(culprit)
    return Blame(KEYS, f"model {expected}, device lists {listed}", checks)


# -- the tables: which check speaks for a variable, given the command that changed it ----------


def _initialization(outcome: Outcome, answer: str, culprit: Outcome | None) -> tuple[str, ...]:
    src = culprit if outcome.command.name in QUERIES and culprit is not None else outcome
    if not src.before.is_initialized:
        return ("R20.changes-nothing",) if answer != NOT_INITIALIZED or src.command.name != C.INITIALIZE else ("R21.any-code-accepted",)
    if src.command.name == C.FIRMWARE_UPDATE:
        return ("R14.as-shipped",)
    return ("R01.wrong-so-keeps-initialized",)


def _so_tries(cmd: Command, outcome: Outcome, culprit: Outcome | None) -> tuple[str, ...]:
    src = outcome
    if cmd.name == C.QUERY_SO:
        if culprit is None:
            return ("R19.query-so-free",)
        src = culprit
    c, s = src.command, src.before
    if not s.is_initialized:
        return ("R21.so-tries-15", "R02.starts-at-15") if c.name == C.INITIALIZE else ("R20.changes-nothing",)
    if s.so_tries == 0:
        return ("R03.nothing-unblocks",)
    if c.so in C.BAD_LENGTHS:
        return (_BAD_LENGTH_CHECKS[c.name] if c.name != C.RESET_RETRY_COUNTER or c.new_pin else "R16.so-pin-wrong-length-free",)
    if c.name == C.CHANGE_SO_PIN:
        return ("R02.change-so-wrong-spends-one",) if c.so == C.WRONG else ("R02.right-spends-none",)
    if c.name == C.RESET_RETRY_COUNTER:
        if not s.rrc_enabled:
            return ("R02.rrc-disabled-wrong-spends-per-profile",) if c.so == C.WRONG else ("R06.refused-without-option",)
        # R06 says it too ("a wrong SO-PIN in it spends an SO try"): both statements are broken.
        return ("R02.rrc-wrong-spends-one", "R06.wrong-so-spends-one") if c.so == C.WRONG else ("R02.right-spends-none",)
    if c.name == C.INITIALIZE:
        return ("R02.init-wrong-spends-one",) if c.so == C.WRONG else ("R07.so-pin-kept",)
    if c.name in QUERIES:
        return ("R19.query-so-free",)
    return ("R02.right-spends-none",)  # no SO-PIN presented, yet the counter moved


def _user_tries(cmd: Command, outcome: Outcome, culprit: Outcome | None) -> tuple[str, ...]:
    src = outcome
    if cmd.name == C.QUERY_USER:
        if culprit is None:
            return ("R19.query-user-free",)
        src = culprit
    c, s = src.command, src.before
    if c.name in QUERIES:
        return ("R19.query-user-free",)
    if not s.is_initialized:
        return ("R04.starts-at-tag-91",) if c.name == C.INITIALIZE else ("R20.changes-nothing",)
    if s.transport and c.name in (C.VERIFY_USER, C.QUERY_USER):
        return ("R11.pin-answers-6984",)
    if s.so_tries == 0 and s.user_tries and c.name == C.VERIFY_USER and c.pin == C.RIGHT:
        return ("R03.user-pin-and-keys-work",)
    if s.user_tries == 0 and c.name in (C.VERIFY_USER, C.CHANGE_USER_PIN):
        return ("R05.right-pin-refused",)
    if (c.pin or c.so) in C.BAD_LENGTHS:
        short_verify = c.name == C.VERIFY_USER and c.pin == C.WRONG_LENGTH
        return ("R16.verify-short-user-pin-free",) if short_verify else (_BAD_LENGTH_CHECKS[c.name],)
    if c.name == C.VERIFY_USER:
        return {C.WRONG: ("R04.verify-wrong-spends-one",)}.get(c.pin or "", ("R04.right-restores",))
    if c.name == C.CHANGE_USER_PIN:
        return ("R04.change-wrong-spends-one",) if c.pin == C.WRONG else ("R04.right-restores",)
    if c.name == C.RESET_RETRY_COUNTER:
        if not s.rrc_enabled:
            return ("R06.refused-without-option",)
        return ("R06.resets-with-option",) if c.so == C.RIGHT else ("R06.wrong-so-spends-one",)
    if c.name == C.INITIALIZE:
        return ("R07.counter-set",) if c.so == C.RIGHT else ("R01.wrong-init-changes-only-so",)
    if c.name in (C.CHANGE_SO_PIN,):
        return ("R01.wrong-so-keeps-initialized",)
    return ("R19.query-user-free",) if c.name in QUERIES else ("R04.right-restores",)


def _pin_setter(history: Sequence[Outcome | None]) -> tuple[str, ...]:
    """The check of the step that last set the user PIN the model believes right."""
    for past in reversed(history):
        if past is None or isinstance(past, Torn):
            continue
        c = past.command
        if c.name == C.RESET_RETRY_COUNTER and c.so == C.RIGHT and c.new_pin and past.before.rrc_enabled:
            return ("R06.new-pin-with-option",)
        if c.name == C.CHANGE_USER_PIN and c.pin == C.RIGHT:
            return ("R11.change-ends-transport",) if past.before.transport else ("R04.right-restores",)
        if c.name == C.INITIALIZE and past.next.is_initialized and past.next is not past.before:
            return ("R07.new-user-pin-set",) if past.before.is_initialized else ("R04.starts-at-tag-91",)
    return ("R04.right-restores",)


def _so_pin_setter(history: Sequence[Outcome | None]) -> tuple[str, ...]:
    """The check of the step that last set the SO-PIN the model believes right."""
    for past in reversed(history):
        if past is None or isinstance(past, Torn):
            continue
        c = past.command
        if c.name == C.INITIALIZE and not past.before.is_initialized and past.next.is_initialized:
            return ("R21.code-becomes-so-pin",)
        if c.name == C.INITIALIZE and c.so == C.RIGHT and past.before.is_initialized:
            return ("R07.so-pin-kept",)
        if c.name == C.CHANGE_SO_PIN and c.so == C.RIGHT:
            return ("R02.right-spends-none",)
    return ("R02.right-spends-none",)


def _session(outcome: Outcome, culprit: Outcome | None) -> tuple[str, ...]:
    """The session differs: opened or ended where the model says otherwise."""
    c = culprit.command if culprit is not None else None
    if c is None or c.name in QUERIES:
        return ("R19.query-keeps-session",)
    if c.name in _SESSION_ENDS:
        return (_SESSION_ENDS[c.name],)
    if c.name == C.RESET_RETRY_COUNTER and c.so == C.RIGHT:
        return ("R09.rrc-opens-nothing",)
    if c.name == C.CHANGE_SO_PIN and c.so == C.RIGHT:
        return ("R09.change-so-opens-nothing",)
    return tuple(x.id for x in checks_at(outcome.transition))


def _key_use_allowed(outcome: Outcome, culprit: Outcome | None) -> tuple[str, ...]:
    s, name = outcome.before, outcome.command.name
    c = culprit.command if culprit is not None else None
    if c is not None and c.name in _SESSION_ENDS and culprit is not None and culprit.before.authenticated:
        return (_SESSION_ENDS[c.name],)
    if name == C.READ_PROTECTED:
        return (_NEEDS_LOGIN[name],)  # the SO-PIN or no PIN at all: R09 names both
    if s.transport:
        return ("R11.key-use-refused",)
    if s.user_tries == 0:
        return ("R05.no-key-use",)
    if c is not None and c.so == C.RIGHT and c.name == C.RESET_RETRY_COUNTER:
        return ("R09.rrc-opens-nothing",)
    if c is not None and c.so == C.RIGHT and c.name == C.CHANGE_SO_PIN:
        return ("R09.change-so-opens-nothing",)
    return (_NEEDS_LOGIN[name],)


def _keys_lost(culprit: Outcome | None) -> tuple[str, ...]:
    c = culprit.command if culprit is not None else None
    if c is not None and c.name == C.INITIALIZE and c.so == C.WRONG:
        return ("R01.wrong-init-changes-only-so",)
    if c is not None and culprit is not None and culprit.before.so_tries == 0:
        return ("R03.user-pin-and-keys-work",)
    return ("R01.wrong-so-keeps-keys",)




# A PIN of the wrong length moved a counter: the R16 check of the command that carried it
# (a too short PIN in VERIFY has its own check, R16.verify-short-user-pin-free).
_BAD_LENGTH_CHECKS = {
    C.VERIFY_USER: "R16.verify-long-user-pin-free",
    C.CHANGE_USER_PIN: "R16.change-user-wrong-length-free",
    C.CHANGE_SO_PIN: "R16.so-pin-wrong-length-free",
    C.RESET_RETRY_COUNTER: "R16.rrc-user-wrong-length-free",
    C.INITIALIZE: "R16.initialize-wrong-length-free",
}


def _data_kept(history: Sequence[Outcome | None]) -> tuple[str, ...]:
    """A data object the model says is gone: a refused write that wrote anyway (R10), or the
    INITIALIZE / firmware update that should have erased it (R07, R14)."""
    for past in reversed(history):
        if past is None or isinstance(past, Torn):
            continue
        c = past.command
        if c.name == C.WRITE_DATA and not past.next.data:
            return ("R10.update-needs-login",)
        if c.name == C.INITIALIZE and past.before.data and not past.next.data:
            return ("R07.data-objects-erased",)
        if c.name == C.FIRMWARE_UPDATE and past.before.data and not past.next.data:
            return ("R14.no-keys",)
    return ("R10.update-needs-login",)
