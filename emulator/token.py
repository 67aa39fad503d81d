"""`VirtualToken`: one emulated SmartCard-HSM / Nitrokey HSM 2, as docs/design.md specifies it.

The token owns the power state and the store; the applet owns the protocol. `transmit` never
raises on any input: an internal error (a failed disk write, a bug) becomes 6F00 and is kept in
`last_internal_error` (so tests can fail on it); the applet's state is never ahead of the store,
so the card carries on. The one exception that passes through is the `PowerLoss` a test's own
power-loss hook raises.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from hsm_lifecycle.emulator.applet import Applet
from hsm_lifecycle.emulator.identity import Manufacturer, manufacture_identity
from hsm_lifecycle.emulator.objects import new_identity, with_identity
from hsm_lifecycle.emulator.profile import Fault, Profile, parse_faults
from hsm_lifecycle.emulator.state import CardState
from hsm_lifecycle.emulator.store import (
    FileStore,
    MemoryStore,
    Persistence,
    PersistencePoint,
    PowerLoss,
    PowerLossHook,
    Store,
)
from hsm_lifecycle import protocol
from hsm_lifecycle.protocol import SW


@dataclass(frozen=True)
class TokenStatus:
    """A read-only view of the token for the project's own tests (never for conformance)."""

    initialized: bool
    so_tries: int
    user_tries: int
    user_max: int
    options: int
    transport_pin: bool
    authenticated: bool
    selected: bool
    files: tuple[int, ...]
    keys: tuple[int, ...]  # CC00 (the device key) included
    serial: str
    device_chr: str
    identity_generation: int
    so_blocked_updates: int
    storage_used: int
    storage_bytes: int

    @property
    def user_keys(self) -> int:
        """Keys the user made (CC00, the device key, excluded): the portal's "contains keys"."""
        return sum(1 for fid in self.keys if fid != protocol.FID_DEVICE_KEY)


class VirtualToken:
    """An emulated token. Build one with `manufacture` or `open`, never directly."""

    def __init__(self, store: Store, faults: frozenset[Fault], path: Path | None) -> None:
        self._persistence = Persistence(store)
        self._faults = faults
        self._applet = Applet(self._persistence, faults, new_identity)
        self._powered = False
        self.state_path = path
        self.last_internal_error: BaseException | None = None

    # --- construction --------------------------------------------------------------------------

    @classmethod
    def manufacture(
        cls,
        state_path: Path | str | None = None,
        profile: Profile = Profile(),
        faults: frozenset[Fault] | frozenset[str] | list[str] = frozenset(),
        updates_used: int = 0,
    ) -> VirtualToken:
        """A token as shipped: device identity (CC00, 2F02), no SO-PIN, no user PIN, no keys.
        `updates_used`: one with a history instead, as after that many firmware updates admitted
        only because its SO-PIN was blocked (R13: 5 per token), each of which gave it a new identity."""
        if not 0 <= updates_used <= protocol.FIRMWARE_UPDATES_WHILE_SO_BLOCKED:
            raise ValueError(f"a token has 0..{protocol.FIRMWARE_UPDATES_WHILE_SO_BLOCKED} SO-blocked updates, not {updates_used}")
        identity = manufacture_identity()
        base = CardState(profile=profile, device_chr=identity.chr, identity_generation=updates_used, so_blocked_updates=updates_used)
        state = with_identity(base, identity)
        return cls._create(state, state_path, parse_faults(faults))

    @classmethod
    def _create(
        cls, state: CardState, state_path: Path | str | None, faults: frozenset[Fault]
    ) -> VirtualToken:
        if state_path is None:
            return cls(MemoryStore(state), faults, None)
        path = Path(state_path)
        if path.exists():
            raise FileExistsError(f"{path} already holds a token; use VirtualToken.open")
        store = FileStore(path)
        store.save(state)
        return cls(store, faults, path)

    @classmethod
    def open(
        cls, state_path: Path | str, faults: frozenset[Fault] | frozenset[str] | list[str] = frozenset()
    ) -> VirtualToken:
        """Load a persisted token; a corrupt or unknown file raises StateFileError."""
        path = Path(state_path)
        return cls(FileStore(path), parse_faults(faults), path)

    # --- power and transmission ------------------------------------------------------------------

    def power_on(self) -> bytes:
        """Cold start: a new card session. Returns the ATR."""
        survives = Fault.SESSION_SURVIVES_POWER_OFF in self._faults
        kept = (self._applet.session.selected, self._applet.session.authenticated)
        if not self._powered:
            self._applet.reload()
        self._applet.end_session()
        if survives:
            self._applet.session.selected, self._applet.session.authenticated = kept
        self._powered = True
        return self.atr

    def power_off(self) -> None:
        if Fault.SESSION_SURVIVES_POWER_OFF not in self._faults:
            self._applet.end_session()
        self._powered = False

    def reset(self) -> bytes:
        """Warm reset: ends the card session (authentication cleared, applet deselected)."""
        if not self._powered:
            return self.power_on()
        if Fault.SESSION_SURVIVES_WARM_RESET not in self._faults:
            self._applet.end_session()
        return self.atr

    @property
    def atr(self) -> bytes:
        """The ATR of the device model the token poses as (emulator.models)."""
        return self._applet.profile.device.atr

    @property
    def powered(self) -> bool:
        return self._powered

    def transmit(self, capdu: bytes) -> bytes:
        """Command APDU in, data||SW1SW2 out. An unpowered token is powered on first, as a
        PC/SC reader does on connect."""
        if not self._powered:
            self.power_on()
        try:
            return self._applet.process(bytes(capdu))
        except PowerLoss:
            self._powered = False
            self._applet.end_session()
            raise
        except Exception as exc:  # noqa: BLE001 - the contract: never raise on any input
            # The applet's state only changes after a successful write, so it still equals
            # the durable state: the card answers 6F00 and carries on.
            self.last_internal_error = exc
            return SW.NO_PRECISE_DIAGNOSIS.to_bytes(2, "big")

    # --- test hooks and views ---------------------------------------------------------------------

    def set_power_loss_hook(self, hook: PowerLossHook | None) -> None:
        """Install a hook called at every PowerEvent (see emulator.store); None removes it."""
        self._persistence.set_hook(hook)

    @property
    def writes(self) -> int:
        """Durable state writes done since this object was built."""
        return self._persistence.writes

    @property
    def faults(self) -> frozenset[Fault]:
        return self._faults

    @property
    def profile(self) -> Profile:
        return self._applet.state.profile

    @property
    def serial(self) -> str:
        """As OpenSC shows it: the device CHR minus its last 5 characters."""
        if Fault.SERIAL_IS_WHOLE_CHR in self._faults:
            return self._applet.state.device_chr  # the sequence number not cut off
        return self._applet.serial

    def firmware_update(self, *, counted: bool, keep_identity: bool = False) -> None:
        """What a firmware update does to the device (R14): as shipped, with a new identity
        under the same root. `counted`: the update was admitted only because the SO-PIN is
        blocked (R13). Whether to admit it is the portal's decision, not the token's.
        `keep_identity`: a faulty loader (the portal's identity-kept-on-update fault, R14)
        wipes everything but CC00 and 2F02."""
        old = self._applet.state
        shipped = CardState(
            profile=old.profile,
            device_chr=old.device_chr,
            identity_generation=old.identity_generation,
            so_blocked_updates=old.so_blocked_updates + int(counted),
        )
        if keep_identity:
            fresh = replace(
                shipped,
                files={protocol.FID_C_DEVAUT: old.files[protocol.FID_C_DEVAUT]},
                keys={protocol.FID_DEVICE_KEY: old.keys[protocol.FID_DEVICE_KEY]},
            )
        elif Fault.UPDATE_UNDER_OTHER_ROOT in self._faults:
            fresh = new_identity(shipped, Manufacturer.unpublished())
        else:
            fresh = new_identity(shipped)
        fresh = self._faulty_install(old, fresh)
        self._applet.commit(fresh, PersistencePoint.FIRMWARE_INSTALLED)
        self._applet.end_session()

    def _faulty_install(self, old: CardState, fresh: CardState) -> CardState:
        """What a faulty loader leaves of the old state (R14): the PINs, or the data objects."""
        if Fault.UPDATE_KEEPS_PINS in self._faults and old.initialized:
            fresh = replace(
                fresh,
                so_pin=old.so_pin,
                so_tries=old.so_tries,
                user_pin=old.user_pin,
                user_tries=old.user_tries,
                user_max=old.user_max,
                options=old.options,
                transport_pin=old.transport_pin,
            )
        if Fault.UPDATE_KEEPS_DATA_OBJECTS in self._faults:
            kept = (protocol.FID_PREFIX_EE_CERT, protocol.FID_PREFIX_PROTECTED_DATA, protocol.FID_PREFIX_READABLE_DATA)
            fresh = replace(fresh, files={**fresh.files, **{f: b for f, b in old.files.items() if f >> 8 in kept}})
        return fresh

    def status(self) -> TokenStatus:
        state, session = self._applet.state, self._applet.session
        return TokenStatus(
            initialized=state.initialized,
            so_tries=state.so_tries,
            user_tries=state.user_tries,
            user_max=state.user_max,
            options=state.options,
            transport_pin=state.transport_pin,
            authenticated=session.authenticated,
            selected=session.selected,
            files=tuple(sorted(state.files)),
            keys=tuple(sorted(state.keys)),
            serial=self._applet.serial,
            device_chr=state.device_chr,
            identity_generation=state.identity_generation,
            so_blocked_updates=state.so_blocked_updates,
            storage_used=self._applet.keys.storage_used(state),
            storage_bytes=state.profile.storage_bytes,
        )
