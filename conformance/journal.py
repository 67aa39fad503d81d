"""The custody journal: what a token's PINs, counters and objects will be if the run is lost
right now, written before every APDU that changes a PIN or spends a try and again after it.

One file per token serial in the user's state directory:
`$HSM_LIFECYCLE_STATE_DIR` if set, else `$XDG_STATE_HOME/hsm-lifecycle/custody`, else
`~/.local/state/hsm-lifecycle/custody`; the file is `<serial>.json`. It must hold the owner's
PINs in clear (nothing else could put them back after a crash), so the folder is created 0700
and the file 0600, it is never written inside an evidence bundle, and it is removed as soon as
the token is back as its owner had it. Writes are atomic (temporary file, fsync, rename, fsync
of the folder): a crash leaves the previous journal or the new one, never half of one.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path

SCHEMA = "hsm-lifecycle/custody/1"
STATE_DIR_ENV = "HSM_LIFECYCLE_STATE_DIR"


class JournalError(Exception):
    """A journal that cannot be written or read (one sentence, for the command line)."""


def state_dir() -> Path:
    explicit = os.environ.get(STATE_DIR_ENV)
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "hsm-lifecycle" / "custody"


def journal_path(serial: str) -> Path:
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", serial or "unknown-serial")
    return state_dir() / f"{safe}.json"


@dataclass(frozen=True)
class Entry:
    """One journal state. PINs are hex. `user_pins` / `so_pins`: what the token's PIN may be
    now, most likely first (two candidates only while a change is in flight)."""

    serial: str
    reader: str
    owner_user_pin: str | None
    owner_so_pin: str | None
    user_pins: tuple[str, ...]
    so_pins: tuple[str, ...]
    user_tries_start: int | None
    so_tries_start: int | None
    objects_start: tuple[str, ...] | None  # FIDs (hex) the owner had; None: not read
    pending: str = ""  # the APDU in flight, for the one-sentence report
    wiped: bool = False  # the run re-initialized the token (consent): its objects are the suite's
    # The owner's consent to wipe (--serial) and what a re-initialization needs to give the owner
    # a usable token back with the owner's PINs: a blocked user PIN without RESET RETRY COUNTER.
    may_wipe: bool = False
    options_start: int | None = None
    user_max_start: int | None = None
    started: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))
    pid: int = field(default_factory=os.getpid)
    schema: str = SCHEMA

    def with_changes(self, **changes: object) -> "Entry":
        return replace(self, **changes)  # type: ignore[arg-type]

    def to_json(self) -> str:
        data = asdict(self)
        return json.dumps(data, indent=1, sort_keys=True)

    @classmethod
    def from_json(cls, text: str, where: Path) -> "Entry":
        try:
            data = json.loads(text)
            if data.get("schema") != SCHEMA:
                raise ValueError(f"schema {data.get('schema')!r}")
            for name in ("user_pins", "so_pins"):
                data[name] = tuple(data[name])
            if data.get("objects_start") is not None:
                data["objects_start"] = tuple(data["objects_start"])
            return cls(**data)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise JournalError(f"the custody journal {where} is not readable ({exc})") from None


class Journal:
    """The journal file of one token. `write` skips a state identical to the last one."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._last: str | None = None

    @classmethod
    def for_serial(cls, serial: str) -> "Journal":
        return cls(journal_path(serial))

    def exists(self) -> bool:
        return self.path.exists()

    def load(self) -> Entry:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise JournalError(f"there is no custody journal at {self.path}") from None
        except OSError as exc:
            raise JournalError(f"the custody journal {self.path} cannot be read: {exc.strerror}") from None
        return Entry.from_json(text, self.path)

    def write(self, entry: Entry) -> None:
        text = entry.to_json()
        if text == self._last:
            return
        folder = self.path.parent
        try:
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd, tmp = tempfile.mkstemp(prefix=".journal-", dir=folder)
            try:
                os.fchmod(fd, 0o600)
                os.write(fd, text.encode("utf-8"))
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, self.path)
            dfd = os.open(folder, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
        except OSError as exc:
            raise JournalError(f"the custody journal {self.path} cannot be written: {exc.strerror}") from None
        self._last = text

    def remove(self) -> None:
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass
        self._last = None
