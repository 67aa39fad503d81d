"""Owner safety on a token over PC/SC: the emulator served through vpcd, set up only with
OpenSC's tools, driven by `hsm-lifecycle run --reader R` as its owner would. Each situation
ends with OpenSC saying the token is as it was: the same tries, the owner's PINs working, the
owner's key there and no object of the suite left.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from owner_token import PIN, SO_PIN, WRONG_PIN, WRONG_SO_PIN, OwnerToken, wait_signals_held
from hsm_lifecycle.conformance.journal import Entry, Journal
from hsm_lifecycle.emulator import Profile

pytestmark = [pytest.mark.pcscd, pytest.mark.opensc]

BOTH = ("--pin", PIN, "--so-pin", SO_PIN)


@pytest.fixture
def token(emulators, tmp_path) -> OwnerToken:
    tok = OwnerToken.start(emulators, tmp_path)
    tok.initialize()
    tok.keygen()
    return tok


def assert_as_owner_had_it(tok: OwnerToken, so: int = 15, user: int = 3, objects: list[str] | None = None) -> None:
    status = tok.status()
    assert (status.so_tries, status.user_tries) == (so, user), status.text
    if objects is not None:
        assert tok.objects() == objects
    if user:
        assert tok.user_pin_works(), "the owner's user PIN no longer works"
        assert tok.owner_key_present(), "the owner's key is gone"
    assert tok.so_pin_works(), "the owner's SO-PIN no longer works"
    status = tok.status()
    assert (status.so_tries, status.user_tries) == (so, 3 if user or status.user_tries else 0), status.text


def one_sentence_no_traceback(out: str) -> None:
    assert "Traceback" not in out and "INTERNALERROR" not in out, out


# Exit status of a run that did not reach its end (architecture.md): Ctrl-C 130, else 3.
STOP_EXIT = {"INT": 130, "TERM": 3}


def stopped_before_its_end(run, rc: int) -> None:
    """Every run that did not reach its end: its exit status, a bundle marked incomplete, and
    the custody's one sentence (what it put back, or which PIN is left where) on the terminal."""
    one_sentence_no_traceback(run.out)
    assert run.rc == rc, f"rc {run.rc}, not {rc}\n{run.out[-2000:]}"
    assert run.summary.get("complete") is False, run.out[-2000:]
    assert "custody:" in run.out, run.out[-2000:]


def test_a_run_without_pins_spends_nothing(token: OwnerToken) -> None:
    objects, files = token.objects(), token.files()
    run = token.run()
    one_sentence_no_traceback(run.out)
    cost = run.summary["cost"]
    assert cost["measured_from"] == "device counters"
    assert (cost["user_tries_spent"], cost["so_tries_spent"]) == (0, 0)
    assert cost["counters"]["before"] == cost["counters"]["after"] == {"user_tries": 3, "so_tries": 15}
    assert "user PIN 3 -> 3, SO-PIN 15 -> 15; owner's PINs in place" in " ".join(run.out.split())
    skipped = " ".join(r.get("why", "") for r in run.summary["rules"])
    assert "--hsm-" not in skipped and "--pin" in skipped  # reasons name `run`'s own options
    serial = run.summary["target"]["serial"]
    with_serial = token.run("--serial", serial)
    assert with_serial.summary["cost"]["so_tries_spent"] == 0, with_serial.out
    assert token.files() == files
    assert_as_owner_had_it(token, objects=objects)


def test_with_both_pins_every_try_comes_back_and_nothing_is_left(token: OwnerToken) -> None:
    objects, files = token.objects(), token.files()
    assert "CC01" in files and "2F02" in files
    run = token.run(*BOTH)
    one_sentence_no_traceback(run.out)
    # Without --serial the wiping checks do not run: nothing failed, but the verdict is partial.
    assert run.rc == 4 and run.summary["verdict"] == "partial", run.out[-3000:]
    assert run.summary["complete"] is True
    cost = run.summary["cost"]
    assert cost["measured_from"] == "device counters" and cost["owner_pins_in_place"] is True
    assert (cost["user_tries_spent"], cost["so_tries_spent"]) == (0, 0)
    assert cost["tries_spent_and_restored"]["user"] > 0  # it did test something that costs
    assert_as_owner_had_it(token, objects=objects)
    assert token.files() == files, "an object of the suite (key, CV request, certificate) was left"
    assert not list((token.tmp / "custody-state").glob("*.json"))  # the journal is gone
    secrets = (SO_PIN, PIN.encode().hex().upper(), PIN.encode().hex())
    for trace in (run.bundle / "traces").iterdir():  # the owner's PINs are masked in the evidence
        assert not any(s in trace.read_text() for s in secrets), trace.name


@pytest.mark.parametrize("flag,value,counter", [("--so-pin", WRONG_SO_PIN, "so"), ("--pin", WRONG_PIN, "user")])
def test_a_wrong_pin_costs_exactly_one_try_and_stops(token: OwnerToken, flag: str, value: str, counter: str) -> None:
    other = {"--so-pin": ("--pin", PIN), "--pin": ("--so-pin", SO_PIN)}[flag]
    run = token.run(flag, value, *other)
    stopped_before_its_end(run, 3)
    assert "refused" in run.out and flag in run.out
    assert "--hsm-" not in run.out
    status = token.status()
    expected = (14, 3) if counter == "so" else (15, 2)
    assert (status.so_tries, status.user_tries) == expected, status.text


def test_a_run_that_never_needs_the_so_pin_never_presents_it(token: OwnerToken) -> None:
    # R04 spends and restores user tries only; at 15 SO tries the open behaviour that a right
    # SO-PIN would show is not probed without --serial: the wrong SO-PIN is never presented.
    run = token.run("--pin", PIN, "--so-pin", WRONG_SO_PIN, "-k", "r04")
    one_sentence_no_traceback(run.out)
    assert run.rc in (0, 4) and run.summary["complete"] is True, run.out[-2000:]
    assert run.summary["cost"]["tries_spent_and_restored"]["user"] > 0, run.summary["cost"]
    status = token.status()
    assert (status.so_tries, status.user_tries) == (15, 3), status.text
    notes = json.loads((run.bundle / "session-main.json").read_text())
    assert notes["custody"]["so_pin_proven"].startswith("never presented"), notes["custody"]
    assert token.so_pin_works() and token.user_pin_works()


@pytest.mark.parametrize("mistyped", [10, 14, 15])  # SO tries 5 (the floor), 1, blocked
def test_so_tries_at_the_floor_at_one_or_blocked_spend_nothing(token: OwnerToken, mistyped: int) -> None:
    for _ in range(mistyped):  # the owner mistyped the SO-PIN
        token.sc_hsm_tool("--initialize", "--so-pin", WRONG_SO_PIN, "--pin", PIN)
    left = 15 - mistyped
    assert token.status().so_tries == left
    run = token.run(*BOTH)
    one_sentence_no_traceback(run.out)
    status = token.status()
    assert (status.so_tries, status.user_tries) == (left, 3), run.out[-2000:]
    assert run.summary["cost"]["so_tries_spent"] == 0 and run.summary["cost"]["user_tries_spent"] == 0
    assert token.user_pin_works() and token.owner_key_present()


def test_a_blocked_user_pin_is_left_to_its_owner(token: OwnerToken) -> None:
    for _ in range(3):
        token.pkcs11("--login", "--pin", WRONG_PIN, "--list-objects", check=False)
    assert token.status().user_tries == 0
    run = token.run(*BOTH)
    one_sentence_no_traceback(run.out)
    assert run.summary["cost"]["owner_pins_in_place"] is True, run.out[-2000:]
    status = token.status()
    assert (status.so_tries, status.user_tries) == (15, 0)
    # The owner unblocks it with the SO-PIN: the owner's PINs and key are all there.
    assert token.so_pin_works() and token.user_pin_works() and token.owner_key_present()


def test_bad_input_is_one_sentence_and_spends_nothing(token: OwnerToken, tmp_path) -> None:
    for args in (("--reader", ""), ("--serial", "")):
        run = token.run(*args)
        assert run.rc == 2 and "is empty" in run.out, run.out
        one_sentence_no_traceback(run.out)
    readonly = tmp_path / "ro"
    readonly.mkdir()
    readonly.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        if os.geteuid() != 0:  # root writes anywhere: only a non-root user meets a read-only folder
            run = token.run("--out", str(readonly / "bundle"))
            assert run.rc == 2 and "cannot" in run.out, run.out
            one_sentence_no_traceback(run.out)
    finally:
        readonly.chmod(stat.S_IRWXU)
    run = token.run("--out", "/proc/version/bundle")  # unwritable for anyone
    assert run.rc == 2 and "--out" in run.out, run.out
    one_sentence_no_traceback(run.out)
    assert (token.status().so_tries, token.status().user_tries) == (15, 3)


def test_two_runs_on_one_reader(token: OwnerToken) -> None:
    first = token.spawn(*BOTH)
    try:
        second = token.run(*BOTH)
    finally:
        out, _ = first.communicate(timeout=300)
    codes = sorted((first.returncode, second.rc))
    for text in (out, second.out):
        one_sentence_no_traceback(text)
    assert codes in ([3, 4], [4, 4]), (codes, out[-1500:], second.out[-1500:])  # 4: partial, no --serial
    if codes == [3, 4]:
        assert "in use by another program" in (out if first.returncode == 3 else second.out)
    assert_as_owner_had_it(token)


# ---------------------------------------------------------------------------------------------
# Interrupts: a signal at an APDU inside a PIN-change window, a token pulled mid-run


def change_windows(run) -> list[int]:
    """APDU numbers at which the token did not hold the owner's state (from the run's notes)."""
    notes = json.loads((run.bundle / "session-main.json").read_text())
    return [n for first, last in notes["custody"]["windows"] for n in range(first, last + 1)]


def interrupt_at(token: OwnerToken, n: int, what: str) -> None:
    run = token.run(*BOTH, inject=f"{n}:{what}")
    stopped_before_its_end(run, STOP_EXIT[what])
    assert run.summary["cost"].get("owner_pins_in_place") is True, run.out[-2000:]
    assert "owner's PINs are in place" in run.out, run.out[-2000:]


def pull_at(token: OwnerToken, n: int, then: str = "restore") -> None:
    run = token.run(*BOTH, inject=f"{n}:KILL={token.emulator_pid}")
    stopped_before_its_end(run, 3)
    token.served.emulator.proc.wait()
    from pcsc_support import wait_reader_empty

    wait_reader_empty(token.reader)
    assert "stopped answering" in run.out and "hsm-lifecycle restore" in run.out, run.out[-2000:]
    journals = list((token.tmp / "custody-state").glob("*.json"))
    assert journals and all(stat.S_IMODE(j.stat().st_mode) == 0o600 for j in journals)
    token.put_back()
    if then == "restore":
        restore = token.run("--reader", token.reader, "--journal", str(journals[0]), command="restore")
        one_sentence_no_traceback(restore.out)
        assert restore.rc == 0, restore.out
    else:  # the owner just runs again: the leftover journal is taken up first
        again = token.run(*BOTH)
        one_sentence_no_traceback(again.out)
        assert again.rc == 4 and "an earlier run" in again.out, again.out[-2000:]  # partial: no --serial
    assert not list((token.tmp / "custody-state").glob("*.json")), "the journal is removed once all is back"


def test_interrupts_inside_pin_change_windows_lose_nothing(token: OwnerToken) -> None:
    objects = token.objects()
    baseline = token.run(*BOTH)
    points = change_windows(baseline)
    assert len(points) > 10
    files = token.files()
    sample = [points[0], points[-1]]  # the full sweep: test_interrupt_sweep_... (-m slow)
    for n, what in zip(sample, ("INT", "TERM")):
        interrupt_at(token, n, what)
        assert_as_owner_had_it(token, objects=objects)
        assert token.files() == files
    pull_at(token, points[len(points) // 3])
    assert_as_owner_had_it(token, objects=objects)
    pull_at(token, points[2 * len(points) // 3], then="run")
    assert_as_owner_had_it(token, objects=objects)


@pytest.mark.slow
def test_interrupt_sweep_every_apdu_of_every_pin_change_window(token: OwnerToken) -> None:
    """The full sweep: SIGINT and SIGTERM at every APDU inside every window where the token
    does not hold its owner's state, and the token pulled at every 10th of those APDUs. Each
    next run proves both PINs first (a PIN left changed would stop it with exit 3), sc-hsm-tool
    checks the counters after every point, OpenSC checks PINs and key at the end."""
    objects = token.objects()
    points = change_windows(token.run(*BOTH))
    tried, losses = 0, []
    for n in points:
        for what in ("INT", "TERM"):
            run = token.run(*BOTH, inject=f"{n}:{what}")
            status = token.status()
            tried += 1
            if run.rc != STOP_EXIT[what] or (status.so_tries, status.user_tries) != (15, 3) or "Traceback" in run.out:
                losses.append((n, what, run.rc, status.so_tries, status.user_tries, run.out[-300:]))
    pulled = points[::10]
    for n in pulled:
        pull_at(token, n)
        status = token.status()
        tried += 1
        if (status.so_tries, status.user_tries) != (15, 3):
            losses.append((n, "pull", status.so_tries, status.user_tries))
    report = {"window_apdus": len(points), "signal_points": 2 * len(points), "pull_points": len(pulled),
              "tried": tried, "losses": losses}
    (token.tmp.parent / "custody-sweep.json").write_text(json.dumps(report, indent=1))
    print(json.dumps(report))
    assert not losses, losses
    assert_as_owner_had_it(token, objects=objects)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_during_start_up_leaves_a_bundle_or_nothing(token: OwnerToken, sig: int) -> None:
    # From the moment the run holds its stop signals (before that the signal meets Python's own
    # interpreter start-up, before any line of the project runs), and again while it loads.
    for delay in (0.0, 0.9):
        proc = token.spawn(*BOTH)
        bundle = token.tmp / f"bundle{token.runs}"
        wait_signals_held(proc)
        time.sleep(delay)
        proc.send_signal(sig)
        out, _ = proc.communicate(timeout=120)
        one_sentence_no_traceback(out)
        assert proc.returncode in (130 if sig == signal.SIGINT else 3, -sig), (delay, proc.returncode, out[-1500:])
        summary = bundle / "summary.json"
        if proc.returncode > 0 and summary.exists():
            assert json.loads(summary.read_text())["complete"] is False
        status = token.status()
        assert (status.so_tries, status.user_tries) == (15, 3), (delay, status.text, out[-1500:])
    assert token.user_pin_works() and token.so_pin_works()


# ---------------------------------------------------------------------------------------------
# so-success-restores: never learned with a try that nothing gives back


def test_a_token_that_keeps_a_spent_so_try_loses_none_without_serial(emulators, tmp_path) -> None:
    tok = OwnerToken.start(emulators, tmp_path, profile=Profile(so_success_restores=False))
    tok.initialize()
    tok.keygen()
    run = tok.run(*BOTH)
    one_sentence_no_traceback(run.out)
    assert run.summary["complete"] is True, run.out[-2000:]
    assert (run.summary["cost"]["so_tries_spent"], run.summary["cost"]["user_tries_spent"]) == (0, 0)
    seen = run.summary["open_behaviours"]["so-success-restores"]
    assert seen.startswith("not observed") and "--serial" in seen and "--hsm-" not in seen, seen
    # The checks that present a wrong SO-PIN wait for it, and say which option would allow them.
    skipped = " ".join(c.get("why", "") for r in run.summary["rules"] for c in r.get("checks", []))
    assert "a wrong SO-PIN spends an SO try" in skipped and "pass --serial" in skipped and "--hsm-serial" not in skipped
    assert_as_owner_had_it(tok)
    # Below its maximum the first right SO-PIN shows it for free: the token keeps the spent try.
    tok.sc_hsm_tool("--initialize", "--so-pin", WRONG_SO_PIN, "--pin", PIN)  # the owner mistyped it once
    assert tok.status().so_tries == 14
    run = tok.run(*BOTH)
    one_sentence_no_traceback(run.out)
    assert run.summary["open_behaviours"]["so-success-restores"].startswith("false"), run.summary["open_behaviours"]
    assert run.summary["cost"]["so_tries_spent"] == 0
    assert_as_owner_had_it(tok, so=14)


# ---------------------------------------------------------------------------------------------
# A user PIN blocked by an interrupted --serial run on a token without RESET RETRY COUNTER


@pytest.mark.parametrize("consented", [True, False])
def test_a_blocked_user_pin_without_rrc_after_a_serial_run(emulators, tmp_path, consented: bool) -> None:
    """The journal an interrupted `--serial` run leaves when it stopped with the user PIN blocked
    (the custody let it block only because --serial allows INITIALIZE as the way back)."""
    tok = OwnerToken.start(emulators, tmp_path)
    tok.initialize_without_rrc()
    status = tok.status()
    assert not status.rrc and (status.so_tries, status.user_tries) == (15, 3), status.text
    for _ in range(3):
        tok.pkcs11("--login", "--pin", WRONG_PIN, "--list-objects", check=False)
    assert tok.status().user_tries == 0
    serial = json.loads(tok.run().bundle.joinpath("summary.json").read_text())["target"]["serial"]
    journal = Journal.for_serial(serial)
    journal.path = tmp_path / "custody-state" / journal.path.name
    journal.write(Entry(serial, tok.reader, PIN.encode().hex().upper(), SO_PIN, (PIN.encode().hex().upper(),), (SO_PIN,),
                        3, 15, None, pending="VERIFY 00 81", may_wipe=consented, options_start=0, user_max_start=3, pid=1 << 22))
    restore = tok.run("--reader", tok.reader, command="restore")
    one_sentence_no_traceback(restore.out)
    status = tok.status()
    if consented:
        assert restore.rc == 0 and "re-initialized" in restore.out and "--serial" in restore.out, restore.out
        assert not status.rrc and (status.so_tries, status.user_tries) == (15, 3), status.text
        assert tok.user_pin_works() and not journal.path.exists()
    else:
        assert restore.rc == 3 and "option 0x0001" in restore.out and "--serial" in restore.out, restore.out
        assert (status.so_tries, status.user_tries) == (15, 0), status.text  # nothing presented, nothing spent
        assert journal.path.exists()


# ---------------------------------------------------------------------------------------------
# --out that cannot be written, also for root (who ignores mode bits)


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("unshare"), reason="needs root for a private read-only bind mount")
def test_an_unwritable_out_as_root_is_one_sentence_and_spends_nothing(token: OwnerToken, tmp_path) -> None:
    readonly = tmp_path / "ro"
    readonly.mkdir()
    hl = str(Path(sys.executable).parent / "hsm-lifecycle")
    base = [hl, "run", "--reader", token.reader, "--plain", *BOTH]
    cases = {
        "read-only bind mount": ["unshare", "--mount", "sh", "-c",
                                 f'mount --bind "{readonly}" "{readonly}" && mount -o remount,bind,ro "{readonly}" && exec "$@"',
                                 "sh", *base, "--out", str(readonly / "bundle")],
        "empty read-only folder": ["unshare", "--mount", "sh", "-c",
                                   f'mount --bind "{readonly}" "{readonly}" && mount -o remount,bind,ro "{readonly}" && exec "$@"',
                                   "sh", *base, "--out", str(readonly)],
        "a file in place of a folder": [*base, "--out", str(tmp_path / "afile" / "bundle")],
    }
    (tmp_path / "afile").write_text("not a folder")
    for what, argv in cases.items():
        done = subprocess.run(argv, capture_output=True, text=True, timeout=120, env=token.env)
        out = done.stdout + done.stderr
        one_sentence_no_traceback(out)
        assert done.returncode == 2 and "--out" in out, (what, done.returncode, out)
        assert len([line for line in out.splitlines() if line.strip()]) == 1, (what, out)
    assert not list(readonly.iterdir())
    status = token.status()
    assert (status.so_tries, status.user_tries) == (15, 3), status.text


def test_an_interrupted_serial_run_on_a_token_without_rrc_gives_the_owner_a_usable_token(emulators, tmp_path) -> None:
    """The same end to end: a `--serial` run on a token initialized without option 0x0001,
    stopped while a check has the user PIN blocked (SIGINT, SIGTERM, a pulled token). The owner
    gets the token back with the owner's PINs, options and tries (its keys: consented lost)."""
    tok = OwnerToken.start(emulators, tmp_path)
    tok.initialize_without_rrc()
    tok.keygen()
    serial = tok.run().summary["target"]["serial"]
    serial_run = ("--pin", PIN, "--so-pin", SO_PIN, "--serial", serial)
    baseline = tok.run(*serial_run)
    notes = json.loads((baseline.bundle / "session-main.json").read_text())
    blocked = notes["custody"]["user_blocked"]
    assert blocked, notes["custody"]  # the run does block the user PIN (the point of this test)
    points = [(blocked[0][0] + 1, "INT"), (blocked[len(blocked) // 2][0] + 1, "TERM"), (blocked[-1][0] + 1, "KILL")]
    for n, what in points:
        if what == "KILL":
            run = tok.run(*serial_run, inject=f"{n}:KILL={tok.emulator_pid}")
            stopped_before_its_end(run, 3)
            tok.served.emulator.proc.wait()
            from pcsc_support import wait_reader_empty

            wait_reader_empty(tok.reader)
            tok.put_back()
            restore = tok.run("--reader", tok.reader, command="restore")
            one_sentence_no_traceback(restore.out)
            assert restore.rc == 0, restore.out
        else:
            run = tok.run(*serial_run, inject=f"{n}:{what}")
            stopped_before_its_end(run, STOP_EXIT[what])
            assert "owner's PINs are in place" in run.out, run.out[-2000:]
        status = tok.status()
        assert (status.so_tries, status.user_tries, status.rrc) == (15, 3, False), (n, what, status.text, run.out[-1500:])
        assert tok.user_pin_works() and tok.so_pin_accepted(), (n, what, run.out[-1500:])
        assert not list((tok.tmp / "custody-state").glob("*.json")), (n, what)
