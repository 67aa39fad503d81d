"""The state file: every damage is detected at open with a StateFileError naming the file and
the problem, nothing is ever reset to a fresh token, a crash inside a save leaves the old state
whole, and `hsm-lifecycle emulate` turns a bad file into one sentence and a non-zero exit."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from hsm_lifecycle.conformance.fuzz.grammar import SELECT_APPLET, init_apdu, raw_apdu, write_apdu
from hsm_lifecycle.conformance import cli
from hsm_lifecycle.emulator import StateFileError, VirtualToken
from hsm_lifecycle.emulator.store import FileStore
from hsm_lifecycle.protocol import DEFAULT_USER_PIN

VERIFY_WRONG = raw_apdu(0x00, 0x20, 0x00, 0x81, b"000000")
VERIFY_RIGHT = raw_apdu(0x00, 0x20, 0x00, 0x81, DEFAULT_USER_PIN)


def used_token(path: Path) -> bytes:
    """A token with some history (initialized, a wrong try, a file), saved at `path`."""
    token = VirtualToken.manufacture(state_path=path)
    for capdu in (SELECT_APPLET, init_apdu(b""), VERIFY_WRONG, VERIFY_RIGHT, write_apdu(0xC401, b"data")):
        assert token.transmit(capdu)[-2:] == b"\x90\x00" or capdu == VERIFY_WRONG
    return path.read_bytes()


def refused(path: Path) -> str:
    """Open must refuse with a StateFileError naming the file, and leave the file as it was."""
    before = path.read_bytes()
    siblings = sorted(path.parent.iterdir())
    with pytest.raises(StateFileError) as caught:
        VirtualToken.open(path)
    assert path.read_bytes() == before, "a refused file was modified"
    assert sorted(path.parent.iterdir()) == siblings, "opening a bad file created files"
    message = str(caught.value)
    assert str(path) in message, f"the error does not name the file: {message}"
    return message


def rechecksum(path: Path, change: Callable[[dict[str, Any]], None]) -> None:
    """Edit the state and recompute the checksum, as a careful forger (or a foreign tool) would."""
    document = json.loads(path.read_bytes())
    change(document["state"])
    body = json.dumps(document["state"], sort_keys=True, separators=(",", ":")).encode()
    document["sha256"] = hashlib.sha256(body).hexdigest()
    path.write_text(json.dumps(document))


# --- every byte, every length ------------------------------------------------------------------


@pytest.mark.parametrize("mask", [0x01, 0x80], ids=["low-bit", "high-bit"])
def test_every_single_byte_flip_is_detected(state_dir: Path, mask: int) -> None:
    path = state_dir / "token.json"
    good = used_token(path)
    kinds: set[str] = set()
    for at in range(len(good)):
        path.write_bytes(good[:at] + bytes([good[at] ^ mask]) + good[at + 1 :])
        kinds.add(refused(path).split(str(path))[-1][:20])
    # A low-bit flip meets each check (JSON, schema, version, checksum); a high-bit one breaks UTF-8.
    assert len(kinds) >= 3 if mask == 0x01 else kinds == {" is not valid JSON: "}, kinds


def test_every_truncation_is_detected(state_dir: Path) -> None:
    path = state_dir / "token.json"
    good = used_token(path)
    for length in range(len(good)):
        path.write_bytes(good[:length])
        assert "not valid JSON" in refused(path) or length > len(good) - 2


# --- named damages -------------------------------------------------------------------------------

DAMAGES: dict[str, tuple[Callable[[bytes], bytes], str]] = {
    "empty": (lambda raw: b"", "not valid JSON"),
    "whitespace": (lambda raw: b"  \n", "not valid JSON"),
    "not UTF-8": (lambda raw: b"\xff\xfe" + raw, "not valid JSON"),
    "JSON null": (lambda raw: b"null", "not an hsm-lifecycle emulator state file"),
    "a list": (lambda raw: b"[]", "not an hsm-lifecycle emulator state file"),
    "another schema": (lambda raw: raw.replace(b"hsm-lifecycle/emulator-state", b"hsm-lifecycle/other"), "not an hsm-lifecycle"),
    "version 2": (lambda raw: raw.replace(b'"version":1', b'"version":2'), "schema version 2"),
    "version as text": (lambda raw: raw.replace(b'"version":1', b'"version":"1"'), "schema version '1'"),
    "no version": (lambda raw: json.dumps({k: v for k, v in json.loads(raw).items() if k != "version"}).encode(),
                   "schema version None"),
    "edited, checksum kept": (lambda raw: raw.replace(b'"so_tries":15', b'"so_tries":14'), "checksum"),
    "checksum removed": (lambda raw: json.dumps({k: v for k, v in json.loads(raw).items() if k != "sha256"}).encode(), "checksum"),
    "no state": (lambda raw: json.dumps({k: v for k, v in json.loads(raw).items() if k != "state"}).encode(), "checksum"),
}


@pytest.mark.parametrize("name", DAMAGES)
def test_damaged_file_is_refused_with_its_problem_named(state_dir: Path, name: str) -> None:
    path = state_dir / "token.json"
    damage, problem = DAMAGES[name]
    path.write_bytes(damage(used_token(path)))
    assert problem in refused(path)


IMPOSSIBLE: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
    "SO tries 16": (lambda s: s.update(so_tries=16), "so_tries 16"),
    "user tries above max": (lambda s: s.update(user_tries=4), "user_tries 4 / max 3"),
    "user max 11": (lambda s: s.update(user_max=11, user_tries=11), "max 11"),
    "options beyond 16 bits": (lambda s: s.update(options=0x10000), "options"),
    "no user PIN, initialized": (lambda s: s.update(user_pin=None), "user PIN"),
    "5-byte user PIN": (lambda s: s.update(user_pin=b"12345".hex()), "user PIN"),
    "7-byte SO-PIN": (lambda s: s.update(so_pin=b"1234567".hex()), "SO-PIN"),
    "counters, uninitialized": (lambda s: s.update(so_pin=None), "uninitialized"),
    "transport PIN, option off": (lambda s: s.update(transport_pin=True), "transport"),
    "negative identity": (lambda s: s.update(identity_generation=-1), "identity generation"),
    "negative updates": (lambda s: s.update(so_blocked_updates=-1), "SO-blocked updates"),
    "FID 10000": (lambda s: s["files"].update({"10000": "00"}), "file identifier"),
    "negative FID": (lambda s: s["files"].update({"-001": "00"}), "file identifier"),
    "key outside CCxx": (lambda s: s["keys"].update({"C401": s["keys"]["CC00"]}), "CCxx"),
    "DKEK outstanding > shares": (lambda s: s.update(dkek={"shares": 1, "outstanding": 5, "kcv": "00" * 8, "key": "00" * 32}), "DKEK"),
    "3-byte DKEK": (lambda s: s.update(dkek={"shares": 0, "outstanding": 0, "kcv": "00" * 8, "key": "0000"}), "DKEK"),
    "key domains 300": (lambda s: s.update(key_domains=300), "key_domains"),
    "SO tries as text": (lambda s: s.update(so_tries="15"), "expected an integer"),
    "SO tries as float": (lambda s: s.update(so_tries=1.5), "expected an integer"),
    "SO tries as boolean": (lambda s: s.update(so_tries=True), "expected an integer"),
    "transport as 0": (lambda s: s.update(transport_pin=0), "expected true or false"),
    "CHR as number": (lambda s: s.update(device_chr=1234567890123), "expected a string"),
    "unknown profile field": (lambda s: s["profile"].update(extra=1), "malformed"),
    "impossible profile SW": (lambda s: s["profile"].update(last_wrong_try_sw="9000"), "last_wrong_try_sw"),
    "missing field": (lambda s: s.pop("user_max"), "malformed"),
    "CC00 not a key": (lambda s: s["keys"].update({"CC00": "3000"}), "unusable key"),
    "no 2F02": (lambda s: s["files"].pop("2F02"), "identity incomplete"),
    "CHR too short": (lambda s: s.update(device_chr="UTEM1"), "CHR"),
}


@pytest.mark.parametrize("name", IMPOSSIBLE)
def test_checksummed_impossible_values_are_refused(state_dir: Path, name: str) -> None:
    path = state_dir / "token.json"
    used_token(path)
    change, problem = IMPOSSIBLE[name]
    rechecksum(path, change)
    assert problem in refused(path)


def test_the_unchanged_file_reopens(state_dir: Path) -> None:
    """Control for the tests above: the rechecksummed but unchanged file opens."""
    path = state_dir / "token.json"
    used_token(path)
    rechecksum(path, lambda s: None)
    status = VirtualToken.open(path).status()
    assert (status.initialized, status.user_tries, 0xC401 in status.files) == (True, 3, True)


# --- crashes inside a save ---------------------------------------------------------------------


class HostCrash(Exception):
    """The host died in the middle of a save (a different thing from a card's power loss)."""


def crash(*_: object) -> Any:
    raise HostCrash("the host died here")


def half_write(real: Callable[[int, bytes], int]) -> Callable[[int, Any], int]:
    def write(fd: int, data: Any) -> int:
        real(fd, bytes(data)[: max(1, len(data) // 2)])
        raise HostCrash("the host died half-way through the write")

    return write


# where -> (the os function that fails, its replacement given the real one)
CRASH_POINTS: dict[str, tuple[str, Callable[[Any], Any]]] = {
    "inside the tmp write": ("write", half_write),
    "at the tmp fsync": ("fsync", lambda real: crash),
    "at the rename": ("replace", lambda real: crash),
    # The directory is opened read-only only to fsync the rename: by then the new file is in place.
    "at the directory fsync": ("open", lambda real: lambda path, flags, *mode: crash() if flags == os.O_RDONLY else real(path, flags, *mode)),
}


@pytest.mark.parametrize("where", CRASH_POINTS)
def test_a_crash_inside_a_save_keeps_the_old_state_whole(state_dir: Path, where: str) -> None:
    path = state_dir / "token.json"
    used_token(path)
    token = VirtualToken.open(path)
    token.transmit(SELECT_APPLET)
    before = path.read_bytes()
    name, replacement = CRASH_POINTS[where]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(os, name, replacement(getattr(os, name)))
        answer = token.transmit(VERIFY_WRONG)  # its first act is a durable write (R17)
    assert answer == b"\x6f\x00" and isinstance(token.last_internal_error, HostCrash)
    token.last_internal_error = None
    stored = FileStore(path).load().user_tries
    assert path.read_bytes() == before if stored == 3 else stored == 2  # the old state or the new, whole
    assert token.status().user_tries == stored  # and the live token goes on from what is stored
    # The card carries on: the next save replaces any stale temporary file.
    assert token.transmit(VERIFY_WRONG)[-2:] == bytes([0x63, 0xC0 | (stored - 1)])
    assert VirtualToken.open(path).status().user_tries == stored - 1
    assert sorted(p.name for p in state_dir.iterdir()) == ["token.json"]


# --- the command line ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["empty", "edited, checksum kept", "version 2", "not UTF-8"])
def test_emulate_names_a_bad_state_file_in_one_sentence(state_dir: Path, name: str, capsys: pytest.CaptureFixture[str]) -> None:
    path = state_dir / "corrupt.json"
    damage, problem = DAMAGES[name]
    path.write_bytes(damage(used_token(path)))
    before = path.read_bytes()
    rc = cli.main(["emulate", "--vpcd", "127.0.0.1:1", "--state", str(path)])
    err = capsys.readouterr().err.strip()
    assert rc != 0
    assert err.count("\n") == 0 and str(path) in err and problem in err, err
    assert path.read_bytes() == before  # not replaced by a fresh token


def test_emulate_on_impossible_values_from_a_real_process(state_dir: Path) -> None:
    """The installed command line, in its own process: exit status and stderr as a user sees them."""
    path = state_dir / "corrupt.json"
    used_token(path)
    rechecksum(path, lambda s: s.update(so_tries=16))
    command = shutil.which("hsm-lifecycle")
    if command is None:
        pytest.skip("the hsm-lifecycle console script is not installed (pip install -e .)")
    done = subprocess.run([command, "emulate", "--vpcd", "127.0.0.1:1", "--state", str(path)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert str(path) in lines[0] and "so_tries 16" in lines[0], lines[0]
