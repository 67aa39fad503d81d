"""R17 over PC/SC: the emulator served through pcscd (`emulate --power-rig SOCKET`), set up by its
owner with OpenSC's tools, driven as `pcsc:READER`; the power-cut rig takes the token's power
away in the middle of each PIN check and the suite judges R17 from the token's answers after it
comes back. A token whose cut refunds the try (fault switch) fails R17; without a rig R17 is not
run, with a reason naming the option."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hsm_lifecycle.conformance.power_rig import CutMoment, PowerRig, RigState, RigStatus, RigError
from opensc_owner import PIN, SO_PIN, owned_token
from test_pcsc_campaign import _no_vpcd

needs_pcscd = pytest.mark.skipif(_no_vpcd() is not None, reason=f"no pcscd with vpcd readers: {_no_vpcd()}")
PINS = ("--hsm-pin", PIN, "--hsm-so-pin", SO_PIN)
R17_CHECKS = {"R17.verify-user-tear", "R17.change-user-tear", "R17.change-so-tear", "R17.rrc-tear"}


class Removals:
    """Counts the times pcscd saw the token leave the reader while the block runs, from pcsc-lite's
    per-reader event counter (the high 16 bits of the reader's event state count every card
    removal and insertion), so no removal is missed between two polls."""

    def __init__(self, reader: str) -> None:
        self.reader, self.removals, self._start = reader, 0, 0

    def _events(self) -> int:
        from smartcard import scard

        rv, context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
        assert rv == scard.SCARD_S_SUCCESS, rv
        try:
            rv, states = scard.SCardGetStatusChange(context, 0, [(self.reader, scard.SCARD_STATE_UNAWARE)])
            assert rv == scard.SCARD_S_SUCCESS, rv
            return states[0][1] >> 16
        finally:
            scard.SCardReleaseContext(context)

    def __enter__(self) -> "Removals":
        self._start = self._events()
        return self

    def __exit__(self, *exc: object) -> None:
        self.removals = ((self._events() - self._start) & 0xFFFF) // 2  # each cut: one removal, one insertion


def r17(run) -> dict:
    return next(r for r in run.summary["rules"] if r["id"] == "R17")


# A fault switch of the served token -> the check it must fail (the checks before it pass).
REFUNDS = {"tear-refunds-try": "R17.verify-user-tear", "tear-refunds-change-user": "R17.change-user-tear",
           "tear-refunds-rrc": "R17.rrc-tear"}


@pytest.mark.pcscd
@needs_pcscd
@pytest.mark.parametrize("fault", [None, *REFUNDS], ids=["conforming", *REFUNDS])
def test_r17_is_judged_over_pcsc_through_the_power_rig(run_suite, tmp_path, fault):
    with owned_token(tmp_path, owned=True, faults=(fault,) if fault else ()) as token, Removals(token.reader) as seen:
        # --hsm-serial: the token is at 15 SO tries, so whether a right SO-PIN gives a spent SO try
        # back is learned at the price of one try only with the consent to wipe (docs/custody.md).
        run = run_suite("--hsm-target", f"pcsc:{token.reader}", *PINS, "--hsm-serial", token.serial,
                        "--hsm-power-rig", str(token.rig), select="test_r17", isolated=True)  # fmt: skip
        cuts = token.emulator.log().count("power cut: the token is off vpcd")
    verdict = r17(run)
    if fault is None:
        assert run.rc == 0, run.output
        assert verdict["verdict"] == "pass", verdict
        assert cuts == 4, cuts  # one real cut per check
        assert seen.removals == 4, seen.removals  # pcscd saw the token leave and come back each time
        assert run.summary["cost"]["apdus"] > 0
    else:
        assert verdict["verdict"] == "fail", (verdict, run.output[-3000:])
        checks = {c["id"]: c["verdict"] for c in verdict["checks"]}
        assert {c for c, v in checks.items() if v == "fail"} == {REFUNDS[fault]}, checks
        assert "after a power cut" in next(c["why"] for c in verdict["checks"] if c["id"] == REFUNDS[fault])


@pytest.mark.pcscd
@needs_pcscd
def test_without_serial_the_so_tears_wait_and_no_so_try_is_lost(run_suite, tmp_path):
    """At 15 SO tries, without --hsm-serial, the SO-PIN tears are not run (whether the token gives
    a spent SO try back is not known), the user-PIN tears are; the rig is armed only after the
    SO-PIN's proof, so no cut ever lands on it."""
    with owned_token(tmp_path, owned=True) as token:
        run = run_suite("--hsm-target", f"pcsc:{token.reader}", *PINS, "--hsm-power-rig", str(token.rig),
                        select="test_r17", isolated=True)  # fmt: skip
        cuts = token.emulator.log().count("power cut: the token is off vpcd")
    checks = {c["id"]: c for c in r17(run)["checks"]}
    assert r17(run)["verdict"] == "partial" and cuts == 2, (cuts, checks)
    assert {i for i, c in checks.items() if c["verdict"] == "pass"} == {"R17.verify-user-tear", "R17.change-user-tear"}
    assert "SO-PIN 15 -> 15" in run.output and "--hsm-serial" in run.output


@pytest.mark.pcscd
@needs_pcscd
def test_without_a_rig_r17_is_not_run_and_says_which_option_would_run_it(run_suite, tmp_path):
    with owned_token(tmp_path, owned=True) as token:
        run = run_suite("--hsm-target", f"pcsc:{token.reader}", *PINS, select="test_r17", isolated=True)
    assert r17(run)["verdict"] == "not-run"
    assert "--hsm-power-rig SOCKET" in json.dumps(verdict := r17(run)), verdict


@pytest.mark.pcscd
@needs_pcscd
@pytest.mark.parametrize("rig", [True, False], ids=["with-rig", "without"])
def test_hsm_lifecycle_run_judges_r17_with_its_power_rig_option(tmp_path, rig):
    with owned_token(tmp_path, owned=True) as token:
        argv = [str(Path(sys.executable).parent / "hsm-lifecycle"), "run", "--reader", token.reader, "--pin", PIN,
                "--so-pin", SO_PIN, "--serial", token.serial, "--out", str(tmp_path / "out"), "--plain", "-k", "test_r17"]  # fmt: skip
        if rig:
            argv += ["--power-rig", str(token.rig)]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=300, env={**os.environ, "HOME": str(tmp_path)})
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    verdict = next(r for r in summary["rules"] if r["id"] == "R17")
    output = done.stdout + done.stderr
    if rig:
        assert verdict["verdict"] == "pass", (verdict, output[-2000:])
        assert "user PIN 3 -> 3, SO-PIN 15 -> 15" in output  # every try the cuts spent was given back
    else:
        assert verdict["verdict"] == "not-run" and "--power-rig SOCKET" in json.dumps(verdict), verdict
        assert "--hsm-power-rig" not in json.dumps(verdict)


@pytest.mark.pcscd
@needs_pcscd
def test_the_vpcd_emulator_target_judges_r17_through_its_own_rig(run_suite):
    run = run_suite("--hsm-target", "emulator:vpcd", select="test_r17", isolated=True)
    assert run.rc == 0, run.output
    assert r17(run)["verdict"] == "pass", r17(run)


def test_emulator_vpcd_refuses_a_rig_of_the_users(run_suite, tmp_path):
    run = run_suite("--hsm-target", "emulator:vpcd", "--hsm-power-rig", str(tmp_path / "rig.sock"), "--hsm-plan")
    assert run.rc == 4 and "starts its emulator with a power-cut rig of its own" in run.output


# -- the client, against the rig's protocol (no pcscd needed) -----------------------------------


def test_rig_status_words_are_parsed_strictly():
    assert RigStatus.parse("idle") == RigStatus(RigState.IDLE)
    assert RigStatus.parse("cut pin-check").cut_at is CutMoment.PIN_CHECK
    assert RigStatus.parse("armed apdu").cut_at is None
    for bad in ("", "cut", "idle pin-check", "armed now", "cut pin-check extra", "off"):
        with pytest.raises(RigError):
            RigStatus.parse(bad)


def test_a_missing_rig_is_one_sentence(tmp_path):
    with pytest.raises(RigError, match="does not answer"):
        PowerRig(tmp_path / "nobody.sock", timeout_s=1.0).ping()
