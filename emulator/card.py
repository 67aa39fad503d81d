"""The card as a command sees it: the card session and the `CardContext` the applet implements.

The command modules (pins, files, keyops, initialize) take a `CardContext`, never the applet,
so they do not import it. The card session lives here and only here (R10): the user PIN
verified in this session is what sign, decipher, generate, delete and update need; a reset,
a power-off or a re-SELECT of the applet starts a new session.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from hsm_lifecycle.emulator.apdu import Command
from hsm_lifecycle.emulator.keys import StoredKey
from hsm_lifecycle.emulator.objects import KeyCache
from hsm_lifecycle.emulator.profile import Fault, Profile
from hsm_lifecycle.emulator.state import CardState
from hsm_lifecycle.emulator.store import PersistencePoint


@dataclass
class Session:
    """Volatile card-session state: lost at power-off, reset and (partly) re-SELECT.

    Changed only through its methods, so every way a session starts or ends is listed here."""

    selected: bool = False
    authenticated: bool = False
    current_ef: int | None = None
    pending: bytes = b""  # response bytes waiting for GET RESPONSE

    def login(self) -> None:
        self.authenticated = True

    def logout(self) -> None:
        self.authenticated = False

    def end(self) -> None:
        """Reset / power-off / power loss: deselect, forget authentication and the current EF."""
        self.selected = self.authenticated = False
        self.current_ef = None
        self.pending = b""

    def reselect(self, keep_login: bool) -> None:
        """SELECT of the applet is CardContact's logout (§1): a new session, selected.
        `keep_login` only under the fault that lets a login survive it."""
        authenticated = keep_login and self.authenticated
        self.end()
        self.selected = True
        self.authenticated = authenticated


class CardContext(Protocol):
    """What a command handler may read and do on the card; `Applet` implements it."""

    @property
    def state(self) -> CardState:
        """The durable state as of the last commit."""
        ...

    @property
    def faults(self) -> frozenset[Fault]: ...

    @property
    def profile(self) -> Profile: ...

    @property
    def serial(self) -> str: ...

    @property
    def keys(self) -> KeyCache: ...

    # --- persistence
    def commit(self, state: CardState, point: PersistencePoint) -> None:
        """Make `state` durable, then current."""
        ...

    def instant(self, point: PersistencePoint) -> None:
        """A moment a power cut may hit without a write (e.g. after the PIN compare)."""
        ...

    def reidentify(self, state: CardState) -> CardState:
        """`state` with a brand-new device identity."""
        ...

    # --- the card session
    @property
    def authenticated(self) -> bool:
        """The user PIN was verified in this card session."""
        ...

    def login(self) -> None: ...

    def logout(self) -> None: ...

    @property
    def current_ef(self) -> int | None: ...

    def set_current_ef(self, fid: int | None) -> None: ...

    # --- gates and answers shared by several commands
    def require_user(self) -> None:
        """Initialized (else 6A88) and the user PIN verified in this session (else 6982)."""
        ...

    def require_room(self, state: CardState) -> None:
        """6A84 if `state` would not fit the storage budget."""
        ...

    def stored_key(self, fid: int) -> StoredKey | None: ...

    def applet_fcp(self) -> bytes: ...


Handler = Callable[[CardContext, Command], tuple[bytes, int]]
