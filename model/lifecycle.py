"""The guarded transitions of the lifecycle: the single table the machine, the oracle, the
explorer, the diagram and docs/rules.md are all built from.

Each transition names its source and destination abstract states, the command (with the PIN
variants it covers), a guard on the extended variables (a readable label plus the predicate),
the effect on the extended variables and the expected outputs, the rules it exercises and its
cost class. IDs are literal and stable: S = shipped, F = firmware-reset, I = initialized,
U = user-blocked, O = so-blocked, B = both-blocked.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from hsm_lifecycle.protocol import (
    FIRMWARE_UPDATES_WHILE_SO_BLOCKED,
    OPTION_TRANSPORT_PIN,
    SO_PIN_TRIES,
    USER_PIN_TRIES_BY_LENGTH,
    USER_PIN_TRIES_MAX,
)
from hsm_lifecycle.model import dkek
from hsm_lifecycle.model import outputs as out
from hsm_lifecycle.model.cost import FREE, IRREVERSIBLE, OPERATOR, TRIES, WIPES
from hsm_lifecycle.model.commands import COMMAND_NAMES, Command
from hsm_lifecycle.model.profiles import (
    AUTH_AFTER_CHANGE,
    AUTH_AFTER_INIT,
    INIT_WRONG_SO_SW,
    LAST_WRONG_TRY_SW,
    REFUSED,
    RETRIES_BY_PIN_LENGTH,
    RRC_DISABLED,
    SO_SUCCESS_RESTORES,
    TRIES_FAMILY,
    WRONG_LENGTH_PIN_SW,
    WRONG_PIN_ENDS_SESSION,
    Profile,
)
from hsm_lifecycle.model.states import (
    BOTH_BLOCKED,
    FIRMWARE_RESET,
    INITIALIZED,
    SHIPPED,
    SO_BLOCKED,
    USER_BLOCKED,
    ExtState,
)

Predicate = Callable[[ExtState, Command, Profile], bool]


@dataclass(frozen=True, slots=True)
class Step:
    """What a transition's effect computes: the next extended state and the accepted outputs."""

    next: ExtState
    outputs: frozenset[str]
    open: str | None = None  # open behaviour deciding the output
    depends: tuple[str, ...] = ()  # state-affecting open behaviours the next state was read from


Effect = Callable[[ExtState, Command, Profile], Step]


@dataclass(frozen=True, slots=True)
class Guard:
    """A condition on the extended state (and the profile), with the label the diagram shows."""

    label: str
    test: Predicate

    def __and__(self, other: Guard) -> Guard:
        first, second = self.test, other.test
        label = ", ".join(x for x in (self.label, other.label) if x)
        return Guard(label, lambda s, c, p: first(s, c, p) and second(s, c, p))


@dataclass(frozen=True, slots=True)
class Transition:
    id: str
    source: str
    dest: str
    command: str  # e.g. "verify_user(wrong)", "verify_user(right|wrong)", "initialize(any)"
    guard: str  # human label; "" = always
    rules: tuple[str, ...]
    cost: str
    test: Predicate = field(repr=False, compare=False)  # the guard, including the command variant
    effect: Effect = field(repr=False, compare=False)
    trigger: str = field(init=False)  # the command name: the machine's trigger

    def __post_init__(self) -> None:
        object.__setattr__(self, "trigger", self.command.partition("(")[0])

    @property
    def label(self) -> str:
        guard = f" [{self.guard}]" if self.guard else ""
        return f"{self.source} --{self.command}{guard}--> {self.dest}"

    def applies(self, s: ExtState, c: Command, p: Profile) -> bool:
        return self.test(s, c, p)

    def __str__(self) -> str:
        return f"{self.id} {self.label}"


# -- guards ------------------------------------------------------------------------------------

ALWAYS = Guard("", lambda s, c, p: True)
TRANSPORT = Guard("transport PIN", lambda s, c, p: s.transport)
NO_TRANSPORT = Guard("no transport PIN", lambda s, c, p: not s.transport)
AUTH = Guard("authenticated", lambda s, c, p: s.authenticated)
NOT_AUTH = Guard("not authenticated", lambda s, c, p: not s.authenticated)
KEYS = Guard("keys > 0", lambda s, c, p: s.keys > 0)
NO_KEYS = Guard("keys = 0", lambda s, c, p: s.keys == 0)
USER_MORE = Guard("user tries > 1", lambda s, c, p: s.user_tries > 1)
USER_LAST = Guard("user tries = 1", lambda s, c, p: s.user_tries == 1)
SO_MORE = Guard("SO tries > 1", lambda s, c, p: (s.so_tries or 0) > 1)
SO_LAST = Guard("SO tries = 1", lambda s, c, p: s.so_tries == 1)
RRC_ON = Guard("RRC on (0x0001)", lambda s, c, p: s.rrc_enabled)
RRC_OFF = Guard("RRC off", lambda s, c, p: not s.rrc_enabled)
SPENDS = Guard("rrc-disabled spends a try", lambda s, c, p: p.require(RRC_DISABLED))
NO_SPEND = Guard("rrc-disabled spends no try", lambda s, c, p: not p.require(RRC_DISABLED))
UNDER_LIMIT = Guard(
    f"SO-blocked updates < {FIRMWARE_UPDATES_WHILE_SO_BLOCKED}",
    lambda s, c, p: s.so_blocked_updates < FIRMWARE_UPDATES_WHILE_SO_BLOCKED,
)
AT_LIMIT = Guard(
    f"SO-blocked updates ≥ {FIRMWARE_UPDATES_WHILE_SO_BLOCKED}",
    lambda s, c, p: s.so_blocked_updates >= FIRMWARE_UPDATES_WHILE_SO_BLOCKED,
)


def _over_cap(s: ExtState, c: Command, p: Profile) -> bool:
    """Tag 91 above CardContact's cap for the PIN's length (6 bytes: 3, 7: 5, longer: 10) on a
    device that enforces it. Asked of the profile only then, so an unknown behaviour leaves
    every INITIALIZE within the cap predictable."""
    cap = USER_PIN_TRIES_BY_LENGTH.get(c.pin_length or 0, USER_PIN_TRIES_MAX)
    return (c.retries or 0) > cap and p.require(RETRIES_BY_PIN_LENGTH)


OVER_CAP = Guard("retries above the PIN-length cap, enforced", _over_cap)
RETRIES_OK = Guard("retries accepted", lambda s, c, p: not _over_cap(s, c, p))

# DKEK key backup (R23; model.dkek).
NO_DKEK = Guard("no DKEK", lambda s, c, p: not dkek.has_dkek(s))
HAS_DKEK = Guard("a DKEK", lambda s, c, p: dkek.has_dkek(s))
DKEK_PENDING = Guard("DKEK shares outstanding", lambda s, c, p: dkek.pending(s))
DKEK_READY = Guard("no DKEK share outstanding", lambda s, c, p: not dkek.pending(s))
DKEK_COMPLETE = Guard("DKEK complete", lambda s, c, p: dkek.complete(s))
BLOB_OPENS = Guard("the held blob, under this DKEK", lambda s, c, p: dkek.blob_opens(s, c))
BLOB_REFUSED = Guard("tampered, another DKEK or no blob", lambda s, c, p: not dkek.blob_opens(s, c))


def _variants(command: str) -> Predicate:
    """The command-variant test a label like "verify_user(right|wrong)" stands for."""
    name, _, rest = command.partition("(")
    if name not in COMMAND_NAMES:
        raise ValueError(f"transition command {command!r}: unknown command")
    wanted = frozenset(rest.rstrip(")").split("|")) if rest and rest != "any)" else None
    if wanted is None:
        return lambda s, c, p: True
    return lambda s, c, p: (c.pin or c.so or c.share or c.blob) in wanted


# -- effects -----------------------------------------------------------------------------------


def _const(*outputs: str, open_: str | None = None) -> Effect:
    """Nothing changes; the command answers one of `outputs`."""
    allowed = frozenset(outputs)
    return lambda s, c, p: Step(s, allowed, open_)


def _end_session(s: ExtState, c: Command, p: Profile) -> Step:
    return Step(s.but(authenticated=False) if s.authenticated else s, frozenset({out.OK}))


def _query_user(s: ExtState, c: Command, p: Profile) -> Step:
    return Step(s, frozenset({out.OK if s.authenticated else out.tries_sw(s.user_tries)}))


def _query_so(s: ExtState, c: Command, p: Profile) -> Step:
    return Step(s, frozenset({out.tries_sw(s.so_tries or 0)}))


def _user_right(s: ExtState, c: Command, p: Profile) -> Step:
    return Step(s.but(user_tries=s.user_max, authenticated=True), frozenset({out.OK}))


def _user_wrong(s: ExtState, c: Command, p: Profile) -> Step:
    """A wrong user PIN spends one try (persistently: R17). Whether it ends a verified session
    is open (wrong-pin-ends-session): no rule says so, so it is asked of the profile only when
    a session is open; a blocked PIN opens nothing either way."""
    left = s.user_tries - 1
    keeps = s.authenticated and left > 0 and not p.require(WRONG_PIN_ENDS_SESSION)
    depends = (WRONG_PIN_ENDS_SESSION,) if s.authenticated and left > 0 else ()
    nxt = s.but(user_tries=left, authenticated=keeps)
    if left:
        return Step(nxt, frozenset({out.tries_sw(left)}), None, depends)
    return Step(nxt, out.expand(p.last_wrong_try_sw, 0), LAST_WRONG_TRY_SW)


def _wrong_length(s: ExtState, c: Command, p: Profile) -> Step:
    """Refused without spending a try (R16); a blocked or transport PIN may answer that first."""
    allowed = set(out.expand(p.wrong_length_pin_sw, s.user_tries))
    if s.user_tries == 0:
        allowed.add(out.BLOCKED)
    if s.transport:
        allowed.add(out.TRANSPORT_ACTIVE)
    return Step(s, frozenset(allowed), WRONG_LENGTH_PIN_SW)


def _so_after_success(s: ExtState, p: Profile) -> tuple[int, tuple[str, ...]]:
    """SO tries after a correct SO-PIN; the open behaviour is read only when it matters."""
    if s.so_tries == SO_PIN_TRIES:
        return SO_PIN_TRIES, ()
    return (SO_PIN_TRIES if p.require(SO_SUCCESS_RESTORES) else s.so_tries or 0), (SO_SUCCESS_RESTORES,)


def _fresh_pins(s: ExtState, c: Command, p: Profile, so_tries: int, depends: tuple[str, ...]) -> Step:
    """INITIALIZE succeeded: no keys, new user PIN/counter/options, identity kept (R07, R08)."""
    transport = bool(c.options & OPTION_TRANSPORT_PIN)  # type: ignore[operator]
    # A transport PIN cannot be verified (R11), so no session can start under it.
    authenticated = False if transport else p.require(AUTH_AFTER_INIT)
    nxt = ExtState(
        so_tries=so_tries,
        user_tries=c.retries,  # type: ignore[arg-type]
        user_max=c.retries,  # type: ignore[arg-type]
        options=c.options,  # type: ignore[arg-type]
        transport=transport,
        keys=0,
        authenticated=authenticated,
        identity=s.identity,
        so_blocked_updates=s.so_blocked_updates,
        **dkek.after_initialize(s, c),  # type: ignore[arg-type]
    )
    return Step(nxt, frozenset({out.OK}), None, depends if transport else (*depends, AUTH_AFTER_INIT))


def _first_initialize(s: ExtState, c: Command, p: Profile) -> Step:
    """Any code becomes the SO-PIN, with 15 tries (R21)."""
    return _fresh_pins(s, c, p, SO_PIN_TRIES, ())


def _reinitialize(s: ExtState, c: Command, p: Profile) -> Step:
    so_tries, depends = _so_after_success(s, p)
    return _fresh_pins(s, c, p, so_tries, depends)


def _init_wrong_so(s: ExtState, c: Command, p: Profile) -> Step:
    """Refused, one SO try spent, nothing else changes (R01, R02)."""
    left = (s.so_tries or 0) - 1
    tokens = set(p.init_wrong_so_sw)
    if left == 0 and TRIES_FAMILY in tokens:  # a 63Cx device answers the last try like any other
        tokens.discard(TRIES_FAMILY)
        tokens |= p.last_wrong_try_sw
    return Step(s.but(so_tries=left), out.expand(tokens, left), INIT_WRONG_SO_SW)


def _so_wrong(s: ExtState, c: Command, p: Profile) -> Step:
    """A wrong SO-PIN in RESET RETRY COUNTER / CHANGE 88 spends one try (R02)."""
    left = (s.so_tries or 0) - 1
    if left:
        return Step(s.but(so_tries=left), frozenset({out.tries_sw(left)}))
    return Step(s.but(so_tries=left), out.expand(p.last_wrong_try_sw, 0), LAST_WRONG_TRY_SW)


def _rrc_disabled(s: ExtState, c: Command, p: Profile) -> Step:
    """Option 0x0001 off: refused (R06); a right SO-PIN spends nothing."""
    depends = (RRC_DISABLED,) if c.so == "wrong" else ()
    return Step(s, out.expand(p.rrc_disabled_sw, s.so_tries or 0), RRC_DISABLED, depends)


def _rrc_disabled_spending(s: ExtState, c: Command, p: Profile) -> Step:
    left = (s.so_tries or 0) - 1
    return Step(s.but(so_tries=left), out.expand(p.rrc_disabled_sw, left), RRC_DISABLED, (RRC_DISABLED,))


def _rrc_right(s: ExtState, c: Command, p: Profile) -> Step:
    """User counter back to max (and a new PIN when P1=00); the session is untouched."""
    so_tries, depends = _so_after_success(s, p)
    return Step(s.but(user_tries=s.user_max, so_tries=so_tries), frozenset({out.OK}), None, depends)


def _change_user_right(s: ExtState, c: Command, p: Profile) -> Step:
    """New user PIN, full count, transport mode over (R11); session per auth-after-change."""
    nxt = s.but(user_tries=s.user_max, transport=False, authenticated=p.require(AUTH_AFTER_CHANGE))
    return Step(nxt, frozenset({out.OK}), None, (AUTH_AFTER_CHANGE,))


def _change_so_right(s: ExtState, c: Command, p: Profile) -> Step:
    so_tries, depends = _so_after_success(s, p)
    return Step(s.but(so_tries=so_tries), frozenset({out.OK}), None, depends)


def _generate(s: ExtState, c: Command, p: Profile) -> Step:
    return Step(s.but(keys=s.keys + 1), frozenset({out.OK}))


def _delete(s: ExtState, c: Command, p: Profile) -> Step:
    return Step(s.but(keys=s.keys - 1), frozenset({out.OK}))


def _update(counted: bool) -> Effect:
    """Back to as-shipped with a new identity (R14); SO-blocked admissions are counted (R13)."""

    def effect(s: ExtState, c: Command, p: Profile) -> Step:
        nxt = ExtState(identity=s.identity + 1, so_blocked_updates=s.so_blocked_updates + counted, **dkek.after_wipe(s))  # type: ignore[arg-type]
        return Step(nxt, frozenset({out.UPDATE_OK}))

    return effect


def _login(s: ExtState, c: Command, p: Profile) -> Step:
    """Device authentication plus VERIFY of the user PIN on this token (R15)."""
    return Step(s.but(user_tries=s.user_max, authenticated=True), frozenset({out.LOGIN_OK}))


_NOT_INIT = _const(out.NOT_INITIALIZED)
_NO_LOGIN = _const(out.SECURITY_NOT_SATISFIED)
_BLOCKED = _const(out.BLOCKED)
_TRANSPORT = _const(out.TRANSPORT_ACTIVE)
_REFUSED = _const(REFUSED)
_SIGN_NO_KEY = _const(out.NOT_INITIALIZED, out.FILE_NOT_FOUND, out.SECURITY_NOT_SATISFIED)
_DELETE_NO_KEY = _const(out.FILE_NOT_FOUND, out.SECURITY_NOT_SATISFIED)
_LOGIN_REFUSED = _const(out.LOGIN_REFUSED)


def _t(
    tid: str, source: str, command: str, guard: Guard, dest: str, effect: Effect, rules: str, cost: str
) -> Transition:
    variants = _variants(command)
    test = guard.test
    return Transition(
        id=tid,
        source=source,
        dest=dest,
        command=command,
        guard=guard.label,
        rules=tuple(rules.split()),
        cost=cost,
        test=lambda s, c, p: variants(s, c, p) and test(s, c, p),
        effect=effect,
    )


# -- the table -----------------------------------------------------------------------------------


def _uninitialized(prefix: str, src: str) -> list[Transition]:
    """shipped and firmware-reset behave alike: PIN and key commands answer 6A88 (R20)."""
    return [
        _t(f"{prefix}01", src, "select", ALWAYS, src, _end_session, "R10", FREE),
        _t(f"{prefix}02", src, "power_cycle", ALWAYS, src, _end_session, "R10", FREE),
        _t(f"{prefix}03", src, "query_user", ALWAYS, src, _NOT_INIT, "R20 R19", FREE),
        _t(f"{prefix}04", src, "query_so", ALWAYS, src, _NOT_INIT, "R20 R19", FREE),
        _t(f"{prefix}05", src, "verify_user(any)", ALWAYS, src, _NOT_INIT, "R20", FREE),
        _t(f"{prefix}06", src, "initialize(right|wrong)", RETRIES_OK, INITIALIZED, _first_initialize, "R21 R02 R04", WIPES),
        _t(f"{prefix}07", src, "reset_retry_counter(any)", ALWAYS, src, _NOT_INIT, "R20", FREE),
        _t(f"{prefix}08", src, "change_user_pin(any)", ALWAYS, src, _NOT_INIT, "R20", FREE),
        _t(f"{prefix}09", src, "change_so_pin(any)", ALWAYS, src, _NOT_INIT, "R20", FREE),
        _t(f"{prefix}10", src, "generate_key", ALWAYS, src, _NOT_INIT, "R20", FREE),
        _t(f"{prefix}11", src, "sign", ALWAYS, src, _NOT_INIT, "R20", FREE),
        _t(f"{prefix}12", src, "delete_key", ALWAYS, src, _NOT_INIT, "R20", FREE),
        _t(f"{prefix}13", src, "firmware_update", ALWAYS, FIRMWARE_RESET, _update(False), "R12 R14", OPERATOR),
        _t(f"{prefix}14", src, "portal_login", ALWAYS, src, _LOGIN_REFUSED, "R15 R18", OPERATOR),
        _t(f"{prefix}15", src, "initialize(any)", OVER_CAP, src, _REFUSED, "R04", FREE),
    ]


def _key_commands(prefix: str, src: str, start: int, working: str) -> list[Transition]:
    """Key use where the user PIN is usable: only a verified session may (R10, R09, R11).

    `working` names the extra rule a successful key use exercises (R03 where the SO-PIN is blocked).
    """
    n = iter(range(start, start + 11))

    def tid() -> str:
        return f"{prefix}{next(n):02d}"

    return [
        _t(tid(), src, "generate_key", AUTH & DKEK_READY, src, _generate, f"R10 {working}", FREE),
        _t(tid(), src, "generate_key", NOT_AUTH & NO_TRANSPORT, src, _NO_LOGIN, "R10 R09", FREE),
        _t(tid(), src, "generate_key", TRANSPORT, src, _NO_LOGIN, "R11 R10", FREE),
        _t(tid(), src, "sign", AUTH & KEYS, src, _const(out.OK), f"R10 {working}", FREE),
        _t(tid(), src, "sign", AUTH & NO_KEYS, src, _SIGN_NO_KEY, "R10", FREE),
        _t(tid(), src, "sign", NOT_AUTH & NO_TRANSPORT, src, _NO_LOGIN, "R10 R09", FREE),
        _t(tid(), src, "sign", TRANSPORT, src, _NO_LOGIN, "R11 R10", FREE),
        _t(tid(), src, "delete_key", AUTH & KEYS, src, _delete, f"R10 {working}", WIPES),
        _t(tid(), src, "delete_key", AUTH & NO_KEYS, src, _DELETE_NO_KEY, "R10", FREE),
        _t(tid(), src, "delete_key", NOT_AUTH & NO_TRANSPORT, src, _NO_LOGIN, "R10 R09", FREE),
        _t(tid(), src, "delete_key", TRANSPORT, src, _NO_LOGIN, "R11 R10", FREE),
    ]


_I, _U, _O, _B = INITIALIZED, USER_BLOCKED, SO_BLOCKED, BOTH_BLOCKED

TRANSITIONS: tuple[Transition, ...] = (
    *_uninitialized("S", SHIPPED),
    *_uninitialized("F", FIRMWARE_RESET),
    # -- initialized: SO tries > 0, user tries > 0 ---------------------------------------------
    _t("I01", _I, "select", ALWAYS, _I, _end_session, "R10", FREE),
    _t("I02", _I, "power_cycle", ALWAYS, _I, _end_session, "R10", FREE),
    _t("I03", _I, "query_user", TRANSPORT, _I, _TRANSPORT, "R19 R11", FREE),
    _t("I04", _I, "query_user", NO_TRANSPORT, _I, _query_user, "R19", FREE),
    _t("I05", _I, "query_so", ALWAYS, _I, _query_so, "R19", FREE),
    _t("I06", _I, "verify_user(right|wrong)", TRANSPORT, _I, _TRANSPORT, "R11", FREE),
    _t("I07", _I, "verify_user(right)", NO_TRANSPORT, _I, _user_right, "R04 R10", FREE),
    _t("I08", _I, "verify_user(wrong)", NO_TRANSPORT & USER_MORE, _I, _user_wrong, "R04 R17", TRIES),
    _t("I09", _I, "verify_user(wrong)", NO_TRANSPORT & USER_LAST & RRC_ON, _U, _user_wrong, "R04 R05 R17", TRIES),
    _t("I10", _I, "verify_user(wrong)", NO_TRANSPORT & USER_LAST & RRC_OFF, _U, _user_wrong, "R04 R05 R17", WIPES),
    _t("I11", _I, "verify_user(wrong_length)", ALWAYS, _I, _wrong_length, "R16", FREE),
    _t("I12", _I, "initialize(right)", RETRIES_OK, _I, _reinitialize, "R07 R08 R04 R23", WIPES),
    _t("I13", _I, "initialize(wrong)", RETRIES_OK & SO_MORE, _I, _init_wrong_so, "R01 R02 R17", TRIES),
    _t("I14", _I, "initialize(wrong)", RETRIES_OK & SO_LAST, _O, _init_wrong_so, "R01 R02 R03", IRREVERSIBLE),
    _t("I15", _I, "reset_retry_counter(right)", RRC_OFF, _I, _rrc_disabled, "R06", FREE),
    _t("I16", _I, "reset_retry_counter(wrong)", RRC_OFF & NO_SPEND, _I, _rrc_disabled, "R06", FREE),
    _t("I17", _I, "reset_retry_counter(wrong)", RRC_OFF & SPENDS & SO_MORE, _I, _rrc_disabled_spending, "R06 R02", TRIES),
    _t("I18", _I, "reset_retry_counter(wrong)", RRC_OFF & SPENDS & SO_LAST, _O, _rrc_disabled_spending, "R06 R02 R03", IRREVERSIBLE),
    _t("I19", _I, "reset_retry_counter(right)", RRC_ON, _I, _rrc_right, "R06 R09", TRIES),
    _t("I20", _I, "reset_retry_counter(wrong)", RRC_ON & SO_MORE, _I, _so_wrong, "R06 R02 R17", TRIES),
    _t("I21", _I, "reset_retry_counter(wrong)", RRC_ON & SO_LAST, _O, _so_wrong, "R06 R02 R03", IRREVERSIBLE),
    _t("I22", _I, "change_user_pin(right)", TRANSPORT, _I, _change_user_right, "R11", TRIES),
    _t("I23", _I, "change_user_pin(right)", NO_TRANSPORT, _I, _change_user_right, "R04", TRIES),
    _t("I24", _I, "change_user_pin(wrong)", USER_MORE, _I, _user_wrong, "R04 R17", TRIES),
    _t("I25", _I, "change_user_pin(wrong)", USER_LAST & RRC_ON, _U, _user_wrong, "R04 R05", TRIES),
    _t("I26", _I, "change_user_pin(wrong)", USER_LAST & RRC_OFF, _U, _user_wrong, "R04 R05", WIPES),
    _t("I27", _I, "change_so_pin(right)", ALWAYS, _I, _change_so_right, "R02 R16", TRIES),
    _t("I28", _I, "change_so_pin(wrong)", SO_MORE, _I, _so_wrong, "R02 R17", TRIES),
    _t("I29", _I, "change_so_pin(wrong)", SO_LAST, _O, _so_wrong, "R02 R03", IRREVERSIBLE),
    *_key_commands("I", _I, 30, ""),
    _t("I41", _I, "firmware_update", NO_KEYS, FIRMWARE_RESET, _update(False), "R12 R14", OPERATOR),
    _t("I42", _I, "firmware_update", KEYS, _I, _const(out.UPDATE_REFUSED_KEYS), "R12", OPERATOR),
    _t("I43", _I, "portal_login", TRANSPORT, _I, _LOGIN_REFUSED, "R15 R11", OPERATOR),
    _t("I44", _I, "portal_login", NO_TRANSPORT, _I, _login, "R15 R18", OPERATOR),
    _t("I45", _I, "initialize(any)", OVER_CAP, _I, _REFUSED, "R04", FREE),
    # -- user-blocked: SO tries > 0, user tries = 0 ---------------------------------------------
    _t("U01", _U, "select", ALWAYS, _U, _end_session, "R10", FREE),
    _t("U02", _U, "power_cycle", ALWAYS, _U, _end_session, "R10", FREE),
    _t("U03", _U, "query_user", TRANSPORT, _U, _TRANSPORT, "R19 R11", FREE),
    _t("U04", _U, "query_user", NO_TRANSPORT, _U, _BLOCKED, "R19 R05", FREE),
    _t("U05", _U, "query_so", ALWAYS, _U, _query_so, "R19", FREE),
    _t("U06", _U, "verify_user(right|wrong)", TRANSPORT, _U, _TRANSPORT, "R11", FREE),
    _t("U07", _U, "verify_user(right|wrong)", NO_TRANSPORT, _U, _BLOCKED, "R05", FREE),
    _t("U08", _U, "verify_user(wrong_length)", ALWAYS, _U, _wrong_length, "R16", FREE),
    _t("U09", _U, "initialize(right)", RETRIES_OK, _I, _reinitialize, "R07 R08 R23", WIPES),
    _t("U10", _U, "initialize(wrong)", RETRIES_OK & SO_MORE, _U, _init_wrong_so, "R01 R02", TRIES),
    _t("U11", _U, "initialize(wrong)", RETRIES_OK & SO_LAST, _B, _init_wrong_so, "R01 R02 R03", IRREVERSIBLE),
    _t("U12", _U, "reset_retry_counter(right)", RRC_OFF, _U, _rrc_disabled, "R06", FREE),
    _t("U13", _U, "reset_retry_counter(wrong)", RRC_OFF & NO_SPEND, _U, _rrc_disabled, "R06", FREE),
    _t("U14", _U, "reset_retry_counter(wrong)", RRC_OFF & SPENDS & SO_MORE, _U, _rrc_disabled_spending, "R06 R02", TRIES),
    _t("U15", _U, "reset_retry_counter(wrong)", RRC_OFF & SPENDS & SO_LAST, _B, _rrc_disabled_spending, "R06 R02 R03", IRREVERSIBLE),
    _t("U16", _U, "reset_retry_counter(right)", RRC_ON, _I, _rrc_right, "R06", TRIES),
    _t("U17", _U, "reset_retry_counter(wrong)", RRC_ON & SO_MORE, _U, _so_wrong, "R06 R02", TRIES),
    _t("U18", _U, "reset_retry_counter(wrong)", RRC_ON & SO_LAST, _B, _so_wrong, "R06 R02 R03", IRREVERSIBLE),
    _t("U19", _U, "change_user_pin(any)", ALWAYS, _U, _BLOCKED, "R05", FREE),
    _t("U20", _U, "change_so_pin(right)", ALWAYS, _U, _change_so_right, "R02", TRIES),
    _t("U21", _U, "change_so_pin(wrong)", SO_MORE, _U, _so_wrong, "R02", TRIES),
    _t("U22", _U, "change_so_pin(wrong)", SO_LAST, _B, _so_wrong, "R02 R03", IRREVERSIBLE),
    _t("U23", _U, "generate_key", ALWAYS, _U, _NO_LOGIN, "R05 R10", FREE),
    _t("U24", _U, "sign", ALWAYS, _U, _NO_LOGIN, "R05 R10", FREE),
    _t("U25", _U, "delete_key", ALWAYS, _U, _NO_LOGIN, "R05 R10", FREE),
    _t("U26", _U, "firmware_update", NO_KEYS, FIRMWARE_RESET, _update(False), "R12 R14", OPERATOR),
    _t("U27", _U, "firmware_update", KEYS, _U, _const(out.UPDATE_REFUSED_KEYS), "R12", OPERATOR),
    _t("U28", _U, "portal_login", ALWAYS, _U, _LOGIN_REFUSED, "R15", OPERATOR),
    _t("U29", _U, "initialize(any)", OVER_CAP, _U, _REFUSED, "R04", FREE),
    # -- so-blocked: SO tries = 0, user tries > 0 -----------------------------------------------
    _t("O01", _O, "select", ALWAYS, _O, _end_session, "R10", FREE),
    _t("O02", _O, "power_cycle", ALWAYS, _O, _end_session, "R10", FREE),
    _t("O03", _O, "query_user", TRANSPORT, _O, _TRANSPORT, "R19 R11", FREE),
    _t("O04", _O, "query_user", NO_TRANSPORT, _O, _query_user, "R19 R03", FREE),
    _t("O05", _O, "query_so", ALWAYS, _O, _BLOCKED, "R19 R03", FREE),
    _t("O06", _O, "verify_user(right|wrong)", TRANSPORT, _O, _TRANSPORT, "R11", FREE),
    _t("O07", _O, "verify_user(right)", NO_TRANSPORT, _O, _user_right, "R03 R04 R10", FREE),
    _t("O08", _O, "verify_user(wrong)", NO_TRANSPORT & USER_MORE, _O, _user_wrong, "R04 R17", TRIES),
    _t("O09", _O, "verify_user(wrong)", NO_TRANSPORT & USER_LAST, _B, _user_wrong, "R04 R05", IRREVERSIBLE),
    _t("O10", _O, "verify_user(wrong_length)", ALWAYS, _O, _wrong_length, "R16", FREE),
    _t("O11", _O, "initialize(any)", ALWAYS, _O, _REFUSED, "R03", FREE),
    _t("O12", _O, "reset_retry_counter(any)", ALWAYS, _O, _REFUSED, "R03", FREE),
    _t("O13", _O, "change_user_pin(right)", TRANSPORT, _O, _change_user_right, "R11 R03", TRIES),
    _t("O14", _O, "change_user_pin(right)", NO_TRANSPORT, _O, _change_user_right, "R04 R03", TRIES),
    _t("O15", _O, "change_user_pin(wrong)", USER_MORE, _O, _user_wrong, "R04", TRIES),
    _t("O16", _O, "change_user_pin(wrong)", USER_LAST, _B, _user_wrong, "R04 R05", IRREVERSIBLE),
    _t("O17", _O, "change_so_pin(any)", ALWAYS, _O, _BLOCKED, "R03", FREE),
    *_key_commands("O", _O, 18, "R03"),
    _t("O29", _O, "firmware_update", UNDER_LIMIT, FIRMWARE_RESET, _update(True), "R12 R13 R14", OPERATOR),
    _t("O30", _O, "firmware_update", AT_LIMIT & NO_KEYS, FIRMWARE_RESET, _update(False), "R12 R13 R14", OPERATOR),
    _t("O31", _O, "firmware_update", AT_LIMIT & KEYS, _O, _const(out.UPDATE_REFUSED_LIMIT), "R13", OPERATOR),
    _t("O32", _O, "portal_login", TRANSPORT, _O, _LOGIN_REFUSED, "R15 R11", OPERATOR),
    _t("O33", _O, "portal_login", NO_TRANSPORT, _O, _login, "R15 R18", OPERATOR),
    # -- both-blocked: SO tries = 0, user tries = 0: only a firmware update leaves ---------------
    _t("B01", _B, "select", ALWAYS, _B, _end_session, "R10", FREE),
    _t("B02", _B, "power_cycle", ALWAYS, _B, _end_session, "R10", FREE),
    _t("B03", _B, "query_user", TRANSPORT, _B, _TRANSPORT, "R19 R11", FREE),
    _t("B04", _B, "query_user", NO_TRANSPORT, _B, _BLOCKED, "R19 R05", FREE),
    _t("B05", _B, "query_so", ALWAYS, _B, _BLOCKED, "R19 R03", FREE),
    _t("B06", _B, "verify_user(right|wrong)", TRANSPORT, _B, _TRANSPORT, "R11", FREE),
    _t("B07", _B, "verify_user(right|wrong)", NO_TRANSPORT, _B, _BLOCKED, "R05", FREE),
    _t("B08", _B, "verify_user(wrong_length)", ALWAYS, _B, _wrong_length, "R16", FREE),
    _t("B09", _B, "initialize(any)", ALWAYS, _B, _REFUSED, "R03", FREE),
    _t("B10", _B, "reset_retry_counter(any)", ALWAYS, _B, _REFUSED, "R03", FREE),
    _t("B11", _B, "change_user_pin(any)", ALWAYS, _B, _BLOCKED, "R05", FREE),
    _t("B12", _B, "change_so_pin(any)", ALWAYS, _B, _BLOCKED, "R03", FREE),
    _t("B13", _B, "generate_key", ALWAYS, _B, _NO_LOGIN, "R05 R10", FREE),
    _t("B14", _B, "sign", ALWAYS, _B, _NO_LOGIN, "R05 R10", FREE),
    _t("B15", _B, "delete_key", ALWAYS, _B, _NO_LOGIN, "R05 R10", FREE),
    _t("B16", _B, "firmware_update", UNDER_LIMIT, FIRMWARE_RESET, _update(True), "R12 R13 R14", OPERATOR),
    _t("B17", _B, "firmware_update", AT_LIMIT & NO_KEYS, FIRMWARE_RESET, _update(False), "R12 R13 R14", OPERATOR),
    _t("B18", _B, "firmware_update", AT_LIMIT & KEYS, _B, _const(out.UPDATE_REFUSED_LIMIT), "R13", OPERATOR),
    _t("B19", _B, "portal_login", ALWAYS, _B, _LOGIN_REFUSED, "R15", OPERATOR),
)  # fmt: skip


# -- DKEK key backup (R23) ------------------------------------------------------------------------
# Status words as far as public sources fix them (protocol digest §4, OpenSC's sc-hsm-tool): no
# DKEK: 6A88 for the status query (a v4.0 card, OSC#2647) and 6D00 for WRAP/UNWRAP (what
# sc-hsm-tool reads as "not initialized for key wrap"); a blob the DKEK cannot open: 6A80 (what
# it reads as "does not match DKEK"). Shares outstanding, a share too many, no key: "refused".


_NO_DKEK_STATUS = _const(out.NOT_INITIALIZED)
_NO_DKEK_WRAP = _const(out.INS_NOT_SUPPORTED)
_BLOB_REFUSED = _const(out.WRONG_DATA)


def _dkek_status(s: ExtState, c: Command, p: Profile) -> Step:
    return Step(s, frozenset({out.dkek_status(s.dkek_shares or 0, dkek.outstanding(s))}))


def _import_share(s: ExtState, c: Command, p: Profile) -> Step:
    return Step(dkek.after_import(s, c), frozenset({out.OK}))


def _wrap(s: ExtState, c: Command, p: Profile) -> Step:
    return Step(s.but(blob=dkek.identity(s)), frozenset({out.OK}))


def _unwrap(s: ExtState, c: Command, p: Profile) -> Step:
    return Step(s.but(keys=s.keys + 1), frozenset({out.OK}))


def _key_backup_uninitialized(prefix: str, src: str) -> list[Transition]:
    return [
        _t(f"{prefix}K01", src, "import_dkek_share(any)", ALWAYS, src, _NOT_INIT, "R20", FREE),
        _t(f"{prefix}K02", src, "dkek_status", ALWAYS, src, _NOT_INIT, "R20", FREE),
        _t(f"{prefix}K03", src, "wrap_key", ALWAYS, src, _NOT_INIT, "R20", FREE),
        _t(f"{prefix}K04", src, "unwrap_key(any)", ALWAYS, src, _NOT_INIT, "R20", FREE),
    ]


def _key_backup(prefix: str, src: str, usable: bool) -> list[Transition]:
    """The DKEK commands on an initialized token. The status and the shares need no PIN; WRAP
    and UNWRAP are key use (R10): where the user PIN is blocked (`usable` False) they are refused
    like every key command. Importing a share changes the DKEK for good: it costs a wipe."""
    rows = [
        _t(f"{prefix}K01", src, "dkek_status", NO_DKEK, src, _NO_DKEK_STATUS, "R23", FREE),
        _t(f"{prefix}K02", src, "dkek_status", HAS_DKEK, src, _dkek_status, "R23", FREE),
        _t(f"{prefix}K03", src, "import_dkek_share(any)", NO_DKEK, src, _NO_DKEK_STATUS, "R23", FREE),
        _t(f"{prefix}K04", src, "import_dkek_share(any)", DKEK_PENDING, src, _import_share, "R23", WIPES),
        _t(f"{prefix}K05", src, "import_dkek_share(any)", DKEK_COMPLETE, src, _REFUSED, "R23", FREE),
    ]
    if not usable:
        return rows + [
            _t(f"{prefix}K06", src, "wrap_key", ALWAYS, src, _NO_LOGIN, "R05 R23", FREE),
            _t(f"{prefix}K07", src, "unwrap_key(any)", ALWAYS, src, _NO_LOGIN, "R05 R23", FREE),
        ]
    return rows + [
        _t(f"{prefix}K06", src, "wrap_key", NOT_AUTH, src, _NO_LOGIN, "R10 R23", FREE),
        _t(f"{prefix}K07", src, "wrap_key", AUTH & NO_DKEK, src, _NO_DKEK_WRAP, "R23", FREE),
        _t(f"{prefix}K08", src, "wrap_key", AUTH & DKEK_PENDING, src, _REFUSED, "R23", FREE),
        _t(f"{prefix}K09", src, "wrap_key", AUTH & DKEK_COMPLETE & NO_KEYS, src, _REFUSED, "R23", FREE),
        _t(f"{prefix}K10", src, "wrap_key", AUTH & DKEK_COMPLETE & KEYS, src, _wrap, "R23", FREE),
        _t(f"{prefix}K11", src, "unwrap_key(any)", NOT_AUTH, src, _NO_LOGIN, "R10 R23", FREE),
        _t(f"{prefix}K12", src, "unwrap_key(any)", AUTH & NO_DKEK, src, _NO_DKEK_WRAP, "R23", FREE),
        _t(f"{prefix}K13", src, "unwrap_key(any)", AUTH & DKEK_PENDING, src, _REFUSED, "R23", FREE),
        _t(f"{prefix}K14", src, "unwrap_key(any)", AUTH & DKEK_COMPLETE & BLOB_OPENS, src, _unwrap, "R23", FREE),
        _t(f"{prefix}K15", src, "unwrap_key(any)", AUTH & DKEK_COMPLETE & BLOB_REFUSED, src, _BLOB_REFUSED, "R23", FREE),
        # The device waits for every share before it generates a key (digest §2).
        _t(f"{prefix}K16", src, "generate_key", AUTH & DKEK_PENDING, src, _REFUSED, "R23", FREE),
    ]


TRANSITIONS = (
    *TRANSITIONS,
    *_key_backup_uninitialized("S", SHIPPED),
    *_key_backup_uninitialized("F", FIRMWARE_RESET),
    *_key_backup("I", _I, usable=True),
    *_key_backup("U", _U, usable=False),
    *_key_backup("O", _O, usable=True),
    *_key_backup("B", _B, usable=False),
)


# -- the widened alphabet: data objects, DECIPHER, warm reset, the device key CC00, and PINs of
# the wrong length in every PIN command. Numbered after each state's original rows.

DATA = Guard("data object", lambda s, c, p: s.data)
NO_DATA = Guard("no data object", lambda s, c, p: not s.data)
_BAD_LENGTH = "wrong_length|over_long"


def _write_data(s: ExtState, c: Command, p: Profile) -> Step:
    return Step(s if s.data else s.but(data=True), frozenset({out.OK}))


def _so_wrong_length(s: ExtState, c: Command, p: Profile) -> Step:
    """An SO-PIN (or RESET RETRY COUNTER's new user PIN) of the wrong length: refused, no try
    spent (R16). INITIALIZE may call it a malformed tag (6A80); RESET RETRY COUNTER with option
    0x0001 off may answer its refusal first (R06)."""
    tries = s.so_tries or 0
    allowed = set(out.expand(p.wrong_length_pin_sw, tries))
    if c.name == "initialize":
        allowed.add("6A80")
    if c.name == "reset_retry_counter":
        if c.new_pin:  # the user PIN is the one of the wrong length: its counter may be shown
            allowed |= out.expand(p.wrong_length_pin_sw, s.user_tries)
        if not s.rrc_enabled:
            allowed |= out.expand(p.rrc_disabled_sw, tries)
    return Step(s, frozenset(allowed), WRONG_LENGTH_PIN_SW)


def _numbered(prefix: str, start: int, rows: list[tuple[str, str, Guard, str, Effect, str, str]]) -> list[Transition]:
    return [_t(f"{prefix}{start + i:02d}", src, cmd, guard, dest, effect, rules, cost) for i, (src, cmd, guard, dest, effect, rules, cost) in enumerate(rows)]


def _widened_uninitialized(prefix: str, src: str) -> list[Transition]:
    return _numbered(prefix, 16, [
        (src, "decipher", ALWAYS, src, _NOT_INIT, "R20", FREE),
        (src, "write_data", ALWAYS, src, _NOT_INIT, "R20", WIPES),
        (src, "read_protected", ALWAYS, src, _NOT_INIT, "R20", FREE),
        (src, "warm_reset", ALWAYS, src, _end_session, "R10", FREE),
        (src, "device_sign", ALWAYS, src, _NOT_INIT, "R20", FREE),
        (src, f"initialize({_BAD_LENGTH})", ALWAYS, src, _REFUSED, "R16 R21", FREE),
    ])  # fmt: skip


def _widened_key_use(src: str, working: str) -> list[tuple[str, str, Guard, str, Effect, str, str]]:
    """DECIPHER, the data object and CC00 where the user PIN is usable: only a verified session may."""
    return [
        (src, "decipher", AUTH & KEYS, src, _const(out.OK), f"R10 {working}".strip(), FREE),
        (src, "decipher", AUTH & NO_KEYS, src, _SIGN_NO_KEY, "R10", FREE),
        (src, "decipher", NOT_AUTH, src, _NO_LOGIN, "R10", FREE),
        (src, "write_data", AUTH, src, _write_data, "R10", WIPES),  # an object left on the token
        (src, "write_data", NOT_AUTH, src, _NO_LOGIN, "R10", WIPES),
        (src, "read_protected", AUTH & DATA, src, _const(out.OK), "R09", FREE),
        (src, "read_protected", AUTH & NO_DATA, src, _const(out.FILE_NOT_FOUND), "R09 R07", FREE),
        (src, "read_protected", NOT_AUTH, src, _NO_LOGIN, "R09", FREE),
        (src, "warm_reset", ALWAYS, src, _end_session, "R10", FREE),
        (src, "device_sign", AUTH, src, _const(out.OK), "R08", FREE),
        (src, "device_sign", NOT_AUTH, src, _NO_LOGIN, "R10", FREE),
        (src, "verify_user(over_long)", ALWAYS, src, _wrong_length, "R16", FREE),
        (src, f"change_user_pin({_BAD_LENGTH})", ALWAYS, src, _wrong_length, "R16", FREE),
    ]


def _widened_blocked_user(src: str) -> list[tuple[str, str, Guard, str, Effect, str, str]]:
    """The user PIN is blocked: no session, so nothing the user PIN guards."""
    return [
        (src, "decipher", ALWAYS, src, _NO_LOGIN, "R05 R10", FREE),
        (src, "write_data", ALWAYS, src, _NO_LOGIN, "R05 R10", WIPES),
        (src, "read_protected", ALWAYS, src, _NO_LOGIN, "R05 R09", FREE),
        (src, "warm_reset", ALWAYS, src, _end_session, "R10", FREE),
        (src, "device_sign", ALWAYS, src, _NO_LOGIN, "R05 R10", FREE),
        (src, "verify_user(over_long)", ALWAYS, src, _wrong_length, "R16", FREE),
    ]


def _widened_so_pin(src: str) -> list[tuple[str, str, Guard, str, Effect, str, str]]:
    """The SO-PIN works: one of the wrong length is refused without spending a try (R16)."""
    return [
        (src, f"change_so_pin({_BAD_LENGTH})", ALWAYS, src, _so_wrong_length, "R16", FREE),
        (src, f"reset_retry_counter({_BAD_LENGTH})", ALWAYS, src, _so_wrong_length, "R16", FREE),
        (src, f"initialize({_BAD_LENGTH})", ALWAYS, src, _so_wrong_length, "R16", FREE),
    ]


WIDENED: tuple[Transition, ...] = (
    *_widened_uninitialized("S", SHIPPED),
    *_widened_uninitialized("F", FIRMWARE_RESET),
    *_numbered("I", 46, [*_widened_key_use(_I, ""), *_widened_so_pin(_I)]),
    *_numbered("U", 30, [*_widened_blocked_user(_U), *_widened_so_pin(_U)]),
    *_numbered("O", 34, _widened_key_use(_O, "R03")),
    *_numbered("B", 20, _widened_blocked_user(_B)),
)  # fmt: skip
TRANSITIONS = (*TRANSITIONS, *WIDENED)

BY_ID: dict[str, Transition] = {t.id: t for t in TRANSITIONS}
_CANDIDATES: dict[tuple[str, str], tuple[Transition, ...]] = {
    (source, trigger): tuple(t for t in TRANSITIONS if t.source == source and t.trigger == trigger)
    for source in {t.source for t in TRANSITIONS}
    for trigger in COMMAND_NAMES
}


def transitions_from(source: str, trigger: str) -> tuple[Transition, ...]:
    """The candidates the machine tries, in table order, for one source state and command."""
    return _CANDIDATES[(source, trigger)]
