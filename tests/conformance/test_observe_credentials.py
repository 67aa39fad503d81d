"""Observation on a real token presents only the PINs its owner gave: a guessed "right" PIN
that is not the token's would spend a try."""

from __future__ import annotations

from pathlib import Path

from hsm_lifecycle.conformance.trace import read_trace
from test_interlocks import own_token

CHANGE_USER = "00240081"
CHANGE_SO = "00240088"


def setup_commands(run) -> list[str]:
    return [line.cmd for line in read_trace(run.evidence / "traces" / "session-setup.jsonl") if not line.is_control]


def test_without_pins_no_pin_is_presented_while_observing(run_suite, tmp_path: Path):
    path, _ = own_token(tmp_path / "token.json")
    run = run_suite("--hsm-emulator-as-real", "--hsm-emulator-state", str(path), select="r18")
    assert run.rc == 0, run.output
    sent = setup_commands(run)
    assert not [c for c in sent if c.startswith((CHANGE_USER, CHANGE_SO))], sent
    behaviours = run.summary["open_behaviours"]
    assert "--hsm-pin" in behaviours["auth-after-change"] and "--hsm-so-pin" in behaviours["so-success-restores"]


def test_with_the_owners_pins_they_are_probed(run_suite, tmp_path: Path):
    path, _ = own_token(tmp_path / "token.json")
    run = run_suite("--hsm-emulator-as-real", "--hsm-emulator-state", str(path), "--hsm-pin", "648219", "--hsm-so-pin", "3537363231383830", select="r18")
    assert run.rc == 0, run.output
    sent = setup_commands(run)
    assert any(c.startswith(CHANGE_USER) for c in sent)
    # At 15 SO tries, seeing whether a right SO-PIN gives a try back spends one for good on a token
    # that does not: not without consent to lose it, so nothing here needed the SO-PIN at all.
    assert not any(c.startswith(CHANGE_SO) for c in sent), sent
    assert "--hsm-serial" in run.summary["open_behaviours"]["so-success-restores"]


def test_with_consent_to_lose_an_so_try_so_success_restores_is_seen(run_suite, tmp_path: Path):
    path, serial = own_token(tmp_path / "token.json")
    run = run_suite("--hsm-emulator-as-real", "--hsm-emulator-state", str(path), "--hsm-pin", "648219",
                    "--hsm-so-pin", "3537363231383830", "--hsm-serial", serial, select="r18")
    assert run.rc == 0, run.output
    assert any(c.startswith(CHANGE_SO) for c in setup_commands(run))
    assert run.summary["open_behaviours"]["so-success-restores"] == "true"
