"""Crash-safe persistence of a token's state, with power-loss injection for tear tests.

One file per token: JSON `{"schema", "version", "sha256", "state"}`, the checksum over the
canonical JSON of `state`. A write goes to a temporary file beside it, is fsynced, replaces the
old file with os.replace and fsyncs the directory, so after a crash the file holds either the old
or the new state, never a mix. A bad file raises `StateFileError`; nothing ever resets silently.

Power-loss injection: every command step where a real card could lose power is a
`PowerEvent` (a `PersistencePoint` and a `Stage`): just before a write reaches storage, just
after it did (reply not yet sent), and the instant a PIN comparison has decided. A test installs
a hook (`VirtualToken.set_power_loss_hook`); if the hook raises `PowerLoss`, the command stops
there, the token drops its volatile state and, at the next power-on, continues from what the
store holds. `PowerCut` is a ready-made hook: with `at=None` it only records the events of a
command (a dry run to count them); with `at=n` it cuts the power at the n-th event.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Protocol

from hsm_lifecycle.emulator.state import CardState, StateFileError, from_json, to_json

SCHEMA = "hsm-lifecycle/emulator-state"
SCHEMA_VERSION = 1


class PersistencePoint(Enum):
    """Where in a command the token writes its state (or, for PIN_COMPARED, decides)."""

    USER_TRY_SPENT = "user-try-spent"  # user counter -1, written BEFORE the comparison (R17)
    USER_TRY_RESTORED = "user-try-restored"  # right user PIN: counter back to max
    USER_PIN_CHANGED = "user-pin-changed"  # right CHANGE 81: new PIN, counter back to max
    SO_TRY_SPENT = "so-try-spent"  # SO counter -1, written BEFORE the comparison (R17)
    SO_TRY_RESTORED = "so-try-restored"  # right SO-PIN in VERIFY 88
    SO_PIN_CHANGED = "so-pin-changed"  # right CHANGE 88
    USER_PIN_RESET = "user-pin-reset"  # right RESET RETRY COUNTER
    DEVICE_INITIALIZED = "device-initialized"  # INITIALIZE accepted: PINs set, objects wiped
    PIN_COMPARED = "pin-compared"  # no write: the instant a PIN comparison has decided
    FILE_WRITTEN = "file-written"  # UPDATE BINARY (also the create with 53 00)
    OBJECT_DELETED = "object-deleted"  # DELETE FILE
    KEY_GENERATED = "key-generated"  # GENERATE ASYMMETRIC KEY PAIR: key and CV request
    DKEK_SHARE_IMPORTED = "dkek-share-imported"  # IMPORT DKEK SHARE
    KEY_UNWRAPPED = "key-unwrapped"  # UNWRAP KEY: the key from a DKEK blob
    FIRMWARE_INSTALLED = "firmware-installed"  # a firmware update: new identity, uninitialized


class Stage(Enum):
    BEFORE = "before"  # the write has not reached storage
    AFTER = "after"  # the write is durable; the reply has not been sent
    INSTANT = "instant"  # no write at this point


@dataclass(frozen=True)
class PowerEvent:
    seq: int  # 0-based count of events since the hook was installed
    point: PersistencePoint
    stage: Stage


class PowerLoss(Exception):
    """Raised by a power-loss hook to cut the power; `VirtualToken.transmit` lets it through."""


PowerLossHook = Callable[[PowerEvent], None]


@dataclass
class PowerCut:
    """A hook that records every event and raises PowerLoss at event number `at` (0-based)."""

    at: int | None = None
    events: list[PowerEvent] = field(default_factory=list)

    def __call__(self, event: PowerEvent) -> None:
        self.events.append(event)
        if self.at is not None and event.seq == self.at:
            raise PowerLoss(f"power cut at {event.point.value} ({event.stage.value})")

    @property
    def fired(self) -> bool:
        return self.at is not None and len(self.events) > self.at


class Store(Protocol):
    """Where a token's durable state lives."""

    def load(self) -> CardState: ...

    def save(self, state: CardState) -> None: ...


class MemoryStore:
    """Durable state in memory: keeps the last saved (immutable) state object."""

    def __init__(self, state: CardState) -> None:
        self._state = state

    def load(self) -> CardState:
        return self._state

    def save(self, state: CardState) -> None:
        self._state = state


def encode(state: CardState) -> bytes:
    body = to_json(state)
    return json.dumps(
        {"schema": SCHEMA, "version": SCHEMA_VERSION, "sha256": _digest(body), "state": body},
        sort_keys=True,
        separators=(",", ":"),
    ).encode()


def decode(raw: bytes, where: str = "state file") -> CardState:
    try:
        document = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise StateFileError(f"{where} is not valid JSON: {exc}") from exc
    if not isinstance(document, dict) or document.get("schema") != SCHEMA:
        raise StateFileError(f"{where} is not an hsm-lifecycle emulator state file")
    if document.get("version") != SCHEMA_VERSION:
        raise StateFileError(
            f"{where} has schema version {document.get('version')!r}; this emulator reads "
            f"version {SCHEMA_VERSION} only"
        )
    body = document.get("state")
    if not isinstance(body, dict) or document.get("sha256") != _digest(body):
        raise StateFileError(f"{where} fails its SHA-256 checksum (corrupt or edited)")
    try:
        return from_json(body)
    except StateFileError as exc:
        raise StateFileError(f"{where}: {exc}") from exc  # name the file, as every other refusal does


def _digest(body: dict[str, object]) -> str:
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(canonical).hexdigest()


class FileStore:
    """Durable state in one file, replaced atomically at every save."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def load(self) -> CardState:
        try:
            raw = self.path.read_bytes()
        except OSError as exc:
            raise StateFileError(f"cannot read state file {self.path}: {exc}") from exc
        return decode(raw, str(self.path))

    def save(self, state: CardState) -> None:
        data = encode(state)
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.path)
        # The rename itself must be durable before the reply leaves the card.
        dir_fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


class Persistence:
    """The applet's only way to make state durable; fires the power-loss hook around writes."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.hook: PowerLossHook | None = None
        self._seq = 0
        self.writes = 0  # durable writes done (for benchmarks and tests)

    def set_hook(self, hook: PowerLossHook | None) -> None:
        self.hook = hook
        self._seq = 0

    def commit(self, state: CardState, point: PersistencePoint) -> None:
        self._fire(point, Stage.BEFORE)
        self.store.save(state)
        self.writes += 1
        self._fire(point, Stage.AFTER)

    def instant(self, point: PersistencePoint) -> None:
        self._fire(point, Stage.INSTANT)

    def _fire(self, point: PersistencePoint, stage: Stage) -> None:
        if self.hook is None:
            return
        event = PowerEvent(self._seq, point, stage)
        self._seq += 1
        self.hook(event)
