"""The six abstract lifecycle states and the extended state they project from.

The abstract state is never stored: it is computed from the extended variables, so the two
can never disagree (rules.md, "Lifecycle states").
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from hsm_lifecycle.protocol import (
    OPTION_RESET_RETRY_COUNTER,
    OPTION_TRANSPORT_PIN,
    SO_PIN_TRIES,
    USER_PIN_TRIES_DEFAULT,
    USER_PIN_TRIES_MAX,
)

SHIPPED = "shipped"
INITIALIZED = "initialized"
USER_BLOCKED = "user-blocked"
SO_BLOCKED = "so-blocked"
BOTH_BLOCKED = "both-blocked"
FIRMWARE_RESET = "firmware-reset"

STATES: tuple[str, ...] = (SHIPPED, INITIALIZED, USER_BLOCKED, SO_BLOCKED, BOTH_BLOCKED, FIRMWARE_RESET)
UNINITIALIZED: frozenset[str] = frozenset({SHIPPED, FIRMWARE_RESET})

# rules.md "Lifecycle states": meaning, and how a client can tell.
STATE_MEANINGS: dict[str, str] = {
    SHIPPED: "never initialized; device identity present, no SO-PIN, no user PIN, no keys",
    INITIALIZED: "SO-PIN set (tries > 0), user PIN usable (tries > 0)",
    USER_BLOCKED: "user PIN tries = 0, SO-PIN tries > 0",
    SO_BLOCKED: "SO-PIN tries = 0, user PIN still usable",
    BOTH_BLOCKED: "SO-PIN and user PIN tries = 0: nothing on the card helps, only a firmware update",
    FIRMWARE_RESET: "after a firmware update: as shipped, but with a new device identity",
}
STATE_PROBES: dict[str, str] = {
    SHIPPED: "00 20 00 88 → 6A88",
    INITIALIZED: "88 → 63Cx, 81 → 63Cx/9000",
    USER_BLOCKED: "81 → 6983",
    SO_BLOCKED: "88 → 6983, 81 → 63Cx/9000",
    BOTH_BLOCKED: "88 → 6983, 81 → 6983",
    FIRMWARE_RESET: "88 → 6A88, new 2F02",
}


@dataclass(frozen=True, slots=True)
class ExtState:
    """The extended state of one token: every variable a guard or an output depends on.

    `so_tries is None` means no SO-PIN has ever been set since the last firmware update
    (uninitialized); every other lifecycle field is then at its empty value.
    """

    so_tries: int | None = None  # 0..15; None = no SO-PIN
    user_tries: int = 0  # 0..user_max
    user_max: int = 0  # tag 91 of the last INITIALIZE; 0 while uninitialized
    options: int = 0  # tag 80 of the last INITIALIZE
    transport: bool = False  # transport PIN still active (option 0x0002 until CHANGE 81)
    keys: int = 0  # private keys besides the device key CC00
    authenticated: bool = False  # user PIN verified in the current card session
    identity: int = 0  # device identity generation: +1 per firmware update
    so_blocked_updates: int = 0  # updates admitted only because the SO-PIN was blocked (R13)
    # DKEK key backup (R23; model.dkek): shares announced by tag 92 (None = no DKEK), shares
    # imported since, the DKEK they make (the shares imported an odd number of times), and the
    # DKEK the blob the mapper holds was wrapped under (None = no blob).
    dkek_shares: int | None = None
    dkek_imported: int = 0
    dkek: str = ""
    blob: str | None = None
    data: bool = False  # the suite's PIN-protected data object is on the token (R07, R09, R10)

    def __post_init__(self) -> None:
        if self.so_tries is None:
            if (self.user_tries, self.user_max, self.options, self.keys) != (0, 0, 0, 0) or self.transport or self.authenticated or self.data:
                raise ValueError(f"an uninitialized token has no PINs, options, keys or session: {self!r}")
        else:
            if not 0 <= self.so_tries <= SO_PIN_TRIES:
                raise ValueError(f"SO tries must be 0..{SO_PIN_TRIES}, got {self.so_tries}")
            if not 1 <= self.user_max <= USER_PIN_TRIES_MAX:
                raise ValueError(f"user max must be 1..{USER_PIN_TRIES_MAX}, got {self.user_max}")
            if not 0 <= self.user_tries <= self.user_max:
                raise ValueError(f"user tries must be 0..{self.user_max}, got {self.user_tries}")
            if not 0 <= self.options <= 0xFFFF:
                raise ValueError(f"options must be 16 bits, got {self.options:#x}")
        if self.keys < 0 or self.identity < 0 or not 0 <= self.so_blocked_updates <= self.identity:
            raise ValueError(f"keys, identity and SO-blocked updates must be counts (updates <= identity): {self!r}")
        if self.dkek_shares is None and (self.dkek_imported or self.dkek) or not 0 <= self.dkek_imported <= (self.dkek_shares or 0):
            raise ValueError(f"DKEK shares imported must be 0..announced, and no DKEK imports none: {self!r}")
        if self.so_tries is None and self.dkek_shares is not None:
            raise ValueError(f"an uninitialized token has no DKEK: {self!r}")

    @classmethod
    def shipped(cls) -> ExtState:
        return cls()

    @classmethod
    def initialized(
        cls,
        *,
        so_tries: int = SO_PIN_TRIES,
        user_tries: int | None = None,
        user_max: int = USER_PIN_TRIES_DEFAULT,
        options: int = OPTION_RESET_RETRY_COUNTER,
        transport: bool | None = None,
        keys: int = 0,
        authenticated: bool = False,
        identity: int = 0,
        so_blocked_updates: int = 0,
        data: bool = False,
    ) -> ExtState:
        """An initialized token; user tries default to the max, transport to option 0x0002."""
        return cls(
            so_tries=so_tries,
            user_tries=user_max if user_tries is None else user_tries,
            user_max=user_max,
            options=options,
            transport=bool(options & OPTION_TRANSPORT_PIN) if transport is None else transport,
            keys=keys,
            authenticated=authenticated,
            identity=identity,
            so_blocked_updates=so_blocked_updates,
            data=data,
        )

    @property
    def abstract(self) -> str:
        return abstract_state(self)

    @property
    def is_initialized(self) -> bool:
        return self.so_tries is not None

    @property
    def rrc_enabled(self) -> bool:
        return bool(self.options & OPTION_RESET_RETRY_COUNTER)

    def but(self, **changes: Any) -> ExtState:
        """A copy with some variables changed, validated (a faster dataclasses.replace: hot path)."""
        unknown = changes.keys() - _FIELD_SET
        if unknown:
            raise TypeError(f"ExtState has no {sorted(unknown)}")
        return ExtState(*[changes[n] if n in changes else getattr(self, n) for n in _FIELD_NAMES])

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able form, for traces (model_state_before/after) and reports."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> ExtState:
        return cls(**{f.name: raw[f.name] for f in fields(cls) if f.name in raw})

    def __str__(self) -> str:
        if self.so_tries is None:
            return f"{self.abstract}(identity={self.identity}, so_blocked_updates={self.so_blocked_updates}{self._dkek_str()})"
        flags = "".join(
            (
                " transport" if self.transport else "",
                " authenticated" if self.authenticated else "",
                " data" if self.data else "",
            )
        )
        return (
            f"{self.abstract}(so={self.so_tries}, user={self.user_tries}/{self.user_max}, "
            f"options={self.options:#06x}, keys={self.keys}{flags}, identity={self.identity}, "
            f"so_blocked_updates={self.so_blocked_updates}{self._dkek_str()})"
        )

    def _dkek_str(self) -> str:
        """The DKEK part of the string form; empty without DKEK and blob (traces keep their form)."""
        dkek = "" if self.dkek_shares is None else f", dkek={self.dkek_imported}/{self.dkek_shares}[{self.dkek}]"
        return dkek + ("" if self.blob is None else f", blob={self.blob or '-'}")


_FIELD_NAMES: tuple[str, ...] = tuple(f.name for f in fields(ExtState))
_FIELD_SET = frozenset(_FIELD_NAMES)


def abstract_state(s: ExtState) -> str:
    """Project an extended state onto the six abstract states of rules.md."""
    if s.so_tries is None:
        return SHIPPED if s.identity == 0 else FIRMWARE_RESET
    if s.so_tries == 0:
        return BOTH_BLOCKED if s.user_tries == 0 else SO_BLOCKED
    return USER_BLOCKED if s.user_tries == 0 else INITIALIZED
