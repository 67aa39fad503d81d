"""Device profiles: the open behaviours of rules.md as parameters.

SW-only behaviours carry the set of acceptable outputs (they widen what the oracle accepts).
State-affecting ones are `None` until observed; the oracle refuses to predict a step whose
next state depends on one left unknown (`UnresolvedBehaviour`).

Output tokens: four upper-case hex digits, or "63Cx" = 63C with the tries left after the step,
or `REFUSED` = any status word other than 9000.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Iterable, Mapping

# Open behaviour names (design.md; rules.md's seven plus auth-after-change).
INIT_WRONG_SO_SW = "init-wrong-so-sw"
LAST_WRONG_TRY_SW = "last-wrong-try-sw"
WRONG_LENGTH_PIN_SW = "wrong-length-pin-sw"
RRC_DISABLED = "rrc-disabled"
SO_SUCCESS_RESTORES = "so-success-restores"
RETRIES_BY_PIN_LENGTH = "retries-by-pin-length"
AUTH_AFTER_INIT = "auth-after-init"
AUTH_AFTER_CHANGE = "auth-after-change"
WRONG_PIN_ENDS_SESSION = "wrong-pin-ends-session"

OPEN_BEHAVIOURS: tuple[str, ...] = (
    INIT_WRONG_SO_SW, LAST_WRONG_TRY_SW, WRONG_LENGTH_PIN_SW, RRC_DISABLED,
    SO_SUCCESS_RESTORES, RETRIES_BY_PIN_LENGTH, AUTH_AFTER_INIT, AUTH_AFTER_CHANGE, WRONG_PIN_ENDS_SESSION,
)  # fmt: skip
# rules.md's ninth, which the oracle never needs (no step of the alphabet sends an Le with a
# case-3 command, and R22 leaves it open): observed and reported, never part of a Profile.
CASE3_LE = "case3-le"
OBSERVED_ONLY: tuple[str, ...] = (CASE3_LE,)
# Those that change the next state, so must be observed before a campaign predicts with them.
STATE_AFFECTING: tuple[str, ...] = (SO_SUCCESS_RESTORES, RRC_DISABLED, AUTH_AFTER_INIT, AUTH_AFTER_CHANGE, WRONG_PIN_ENDS_SESSION)

OPEN_MEANINGS: dict[str, str] = {
    INIT_WRONG_SO_SW: "SW for a wrong SO-PIN in INITIALIZE (69xx or 63Cx); either way a try is spent (R02)",
    LAST_WRONG_TRY_SW: "SW on the wrong try that spends the last retry: 63C0 or 6983",
    WRONG_LENGTH_PIN_SW: "SW for a wrong-length PIN: 6A80, 6700 or 63Cx",
    RRC_DISABLED: "SW for RESET RETRY COUNTER when option 0x0001 is off, and whether a wrong SO-PIN in it spends an SO try",
    SO_SUCCESS_RESTORES: "whether a correct SO-PIN restores the SO counter to 15",
    RETRIES_BY_PIN_LENGTH: "whether the device enforces the 3/5/10 retries-per-PIN-length rule or only the tools do",
    AUTH_AFTER_INIT: "whether the user is authenticated right after INITIALIZE",
    AUTH_AFTER_CHANGE: "whether a successful CHANGE REFERENCE DATA 81 leaves the user authenticated",
    WRONG_PIN_ENDS_SESSION: "whether a wrong user PIN ends an open user session (no rule or source says)",
    CASE3_LE: "whether a case-3 command sent with an Le (VERIFY with a trailing 00) is accepted (no public source says)",
}

TRIES_FAMILY = "63Cx"
REFUSED = "refused"  # marker: any status word other than 9000


class UnresolvedBehaviour(Exception):
    """The oracle was asked for a step whose next state hangs on an open behaviour left unknown."""

    def __init__(self, behaviour: str, profile: str) -> None:
        self.behaviour = behaviour
        super().__init__(
            f"the next state depends on open behaviour {behaviour!r} ({OPEN_MEANINGS[behaviour]}), "
            f"which profile {profile!r} leaves unknown: observe it on the device and use "
            f"profile.resolve({{{behaviour!r}: ...}}) before predicting"
        )


@dataclass(frozen=True, slots=True)
class Profile:
    """What the model assumes about one kind of device."""

    name: str
    init_wrong_so_sw: frozenset[str]
    last_wrong_try_sw: frozenset[str]
    wrong_length_pin_sw: frozenset[str]
    rrc_disabled_sw: frozenset[str]
    rrc_disabled_spends_so_try: bool | None
    so_success_restores: bool | None
    retries_by_pin_length: bool | None
    auth_after_init: bool | None
    auth_after_change: bool | None
    wrong_pin_ends_session: bool | None = None

    # -- reading state-affecting behaviours --------------------------------------------------

    def require(self, behaviour: str) -> bool:
        """The resolved value of a state-affecting behaviour, or UnresolvedBehaviour."""
        value = getattr(self, _FIELD_OF_BOOL[behaviour])
        if value is None:
            raise UnresolvedBehaviour(behaviour, self.name)
        return value

    @property
    def unresolved(self) -> tuple[str, ...]:
        """State-affecting behaviours still unknown (empty: the profile predicts every step)."""
        return tuple(b for b in STATE_AFFECTING if getattr(self, _FIELD_OF_BOOL[b]) is None)

    @property
    def is_resolved(self) -> bool:
        return not self.unresolved

    # -- resolving by observation ------------------------------------------------------------

    def resolve(self, observed: Mapping[str, object], name: str | None = None) -> Profile:
        """A copy with observed behaviours filled in.

        Values: a bool for so-success-restores, auth-after-init, auth-after-change,
        retries-by-pin-length, and for rrc-disabled (whether a wrong SO-PIN spends a try);
        an SW string or strings for the SW behaviours (narrows the accepted set), also for
        rrc-disabled; or for rrc-disabled a mapping {"sw": ..., "spends": bool}.
        """
        changes: dict[str, object] = {}
        for behaviour, value in observed.items():
            if behaviour not in OPEN_BEHAVIOURS:
                raise ValueError(f"unknown open behaviour {behaviour!r}; known: {', '.join(OPEN_BEHAVIOURS)}")
            if behaviour == RRC_DISABLED and isinstance(value, Mapping):
                if "sw" in value:
                    changes["rrc_disabled_sw"] = _sw_set(behaviour, value["sw"])
                if "spends" in value:
                    changes["rrc_disabled_spends_so_try"] = _bool(behaviour, value["spends"])
            elif behaviour in _FIELD_OF_BOOL and isinstance(value, bool):
                changes[_FIELD_OF_BOOL[behaviour]] = value
            elif behaviour in _FIELD_OF_SW:
                changes[_FIELD_OF_SW[behaviour]] = _sw_set(behaviour, value)
            else:
                raise ValueError(f"{behaviour}: expected a bool, got {value!r}")
        return replace(self, name=name or self.name, **changes)  # type: ignore[arg-type]

    def describe(self) -> dict[str, str]:
        """Each open behaviour as text, for the evidence bundle's open_behaviours."""
        out: dict[str, str] = {}
        for behaviour in OPEN_BEHAVIOURS:
            parts = []
            if behaviour in _FIELD_OF_SW:
                parts.append("|".join(sorted(getattr(self, _FIELD_OF_SW[behaviour]))))
            if behaviour in _FIELD_OF_BOOL:
                value = getattr(self, _FIELD_OF_BOOL[behaviour])
                text = "unknown" if value is None else str(value).lower()
                parts.append(f"spends-so-try={text}" if behaviour == RRC_DISABLED else text)
            out[behaviour] = " ".join(parts)
        return out


_FIELD_OF_SW = {
    INIT_WRONG_SO_SW: "init_wrong_so_sw",
    LAST_WRONG_TRY_SW: "last_wrong_try_sw",
    WRONG_LENGTH_PIN_SW: "wrong_length_pin_sw",
    RRC_DISABLED: "rrc_disabled_sw",
}
_FIELD_OF_BOOL = {
    RRC_DISABLED: "rrc_disabled_spends_so_try",
    SO_SUCCESS_RESTORES: "so_success_restores",
    RETRIES_BY_PIN_LENGTH: "retries_by_pin_length",
    AUTH_AFTER_INIT: "auth_after_init",
    AUTH_AFTER_CHANGE: "auth_after_change",
    WRONG_PIN_ENDS_SESSION: "wrong_pin_ends_session",
}
assert {f.name for f in fields(Profile)} == {"name", *_FIELD_OF_SW.values(), *_FIELD_OF_BOOL.values()}


def _sw_set(behaviour: str, value: object) -> frozenset[str]:
    items = [value] if isinstance(value, str) else list(value) if isinstance(value, Iterable) else None
    if not items:
        raise ValueError(f"{behaviour}: expected a status word or a set of them, got {value!r}")
    out = set()
    for item in items:
        token = str(item).strip().upper().replace("63CX", TRIES_FAMILY)
        if token.lower() == REFUSED:
            token = REFUSED
        elif token != TRIES_FAMILY and not (len(token) == 4 and all(ch in "0123456789ABCDEF" for ch in token)):
            raise ValueError(f"{behaviour}: {item!r} is not a status word (4 hex digits, 63Cx or 'refused')")
        out.add(token)
    return frozenset(out)


def _bool(behaviour: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{behaviour}: expected a bool, got {value!r}")
    return value


# What is known about the real SmartCard-HSM / Nitrokey HSM 2 (protocol digest): SW sets are
# the candidates the sources leave open; state-affecting behaviours must be observed.
SMARTCARD_HSM = Profile(
    name="smartcard-hsm",
    init_wrong_so_sw=frozenset({TRIES_FAMILY, "6900", "6982", "6985", "6986"}),
    last_wrong_try_sw=frozenset({"63C0", "6983"}),
    wrong_length_pin_sw=frozenset({"6A80", "6700", TRIES_FAMILY}),
    rrc_disabled_sw=frozenset({REFUSED}),
    rrc_disabled_spends_so_try=None,
    so_success_restores=None,
    retries_by_pin_length=None,
    auth_after_init=None,
    auth_after_change=None,
)

# The emulator's defaults (design.md): fully resolved, for the project's own tests and learning.
EMULATOR_DEFAULTS = Profile(
    name="emulator-defaults",
    init_wrong_so_sw=frozenset({TRIES_FAMILY}),
    last_wrong_try_sw=frozenset({"63C0"}),
    wrong_length_pin_sw=frozenset({"6A80"}),
    rrc_disabled_sw=frozenset({"6986"}),
    rrc_disabled_spends_so_try=False,
    so_success_restores=True,
    retries_by_pin_length=False,
    auth_after_init=False,
    auth_after_change=False,
    wrong_pin_ends_session=True,
)

PROFILES: dict[str, Profile] = {p.name: p for p in (SMARTCARD_HSM, EMULATOR_DEFAULTS)}
