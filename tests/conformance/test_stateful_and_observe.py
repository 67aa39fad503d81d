"""The stateful test shrinks a failure to a short sequence and shows its APDU trace; the open
behaviours are found by observation, whatever the emulator was built with."""

from __future__ import annotations

import json

PROFILE = {
    "so_success_restores": "false",
    "auth_after_init": "true",
    "auth_after_change": "true",
    "rrc_disabled_spends_so_try": "true",
    "last_wrong_try_sw": "6983",
    "init_wrong_so_sw": "6982",
    "wrong_length_pin_sw": "6700",
    "rrc_disabled_sw": "6985",
}


def test_stateful_failure_is_shrunk_and_shown_as_an_apdu_trace(run_suite):
    run = run_suite("--hsm-emulator-fault", "so-counter-not-spent", "--hsm-examples", "100", select="test_random_sequences")
    assert run.rc == 1
    assert "Falsifying example" in run.output or "state.step(" in run.output
    assert "APDU trace" in run.output and "query_so" in run.output
    record = run.record("test_random_sequences_match_the_model")
    assert record.outcome == "failed" and "R02" in record.rules
    steps = [line for line in run.output.splitlines() if line.lstrip("E ").startswith("state.step(")]
    assert 0 < len(steps) <= 6, "shrunk to a few steps"


def test_suite_passes_on_an_emulator_with_other_open_behaviours(run_suite):
    args = [a for name, value in PROFILE.items() for a in ("--hsm-emulator-profile", f"{name}={value}")]
    run = run_suite(*args, select="test_r0 or test_r1 or test_r2 or test_open")
    assert run.rc == 0, run.output
    seen = run.summary["open_behaviours"]
    assert seen["so-success-restores"] == "false" and seen["auth-after-init"] == "true"
    assert seen["auth-after-change"] == "true" and seen["last-wrong-try-sw"] == "6983"
    assert seen["init-wrong-so-sw"] == "6982" and seen["wrong-length-pin-sw"] == "6700"
    assert seen["rrc-disabled"].startswith("6985") and "spends SO try" in seen["rrc-disabled"]


def test_open_behaviours_are_observed_not_judged(run_suite):
    run = run_suite(select="test_open_behaviours")
    record = run.record("test_open_behaviours_observed")
    assert record.outcome == "observed" and record.rules == ()
    assert set(json.loads(json.dumps(record.observations))) >= {"so-success-restores", "auth-after-init", "rrc-disabled"}
