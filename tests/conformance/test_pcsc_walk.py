"""The campaign as one walk on one persistent token, over the real PC/SC path: the emulator
served through pcscd (`emulate`, with its portal and its power-cut rig), set up by its owner with
OpenSC's tools only, and driven as `pcsc:READER` with the owner's consent; or kept persistent
as `emulator:vpcd --hsm-persistent`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hsm_lifecycle.emulator import VirtualToken

from opensc_owner import PIN, SO_PIN, owned_token
from test_pcsc_campaign import _no_vpcd

pytestmark = [pytest.mark.pcscd, pytest.mark.skipif(_no_vpcd() is not None, reason=f"no pcscd with vpcd readers: {_no_vpcd()}")]
PINS = ("--hsm-pin", PIN, "--hsm-so-pin", SO_PIN)
# R17 is judged through the power-cut rig `emulate --power-rig` serves beside the token.
ALL_RULES = {f"R{n:02d}" for n in range(1, 24)}
NO_OPERATOR = ALL_RULES - {"R12", "R13", "R14", "R15"}


def campaign(run_suite, tmp_path: Path, owned: bool, *args: str, used: int | None = None):
    """Serve a token (set up by its owner with OpenSC when `owned`; `used` firmware updates in
    its history) and run the suite on it, with the scripted portal and the power-cut rig. The
    token's end state is read from its state file once the emulator has stopped (for the test's
    own assertions only)."""
    with owned_token(tmp_path, owned=owned, used=used) as token:
        argv = [a.replace("SERIAL", token.serial) for a in args]
        run = run_suite("--hsm-target", f"pcsc:{token.reader}", *argv, "--hsm-portal", str(token.portal),
                        "--hsm-power-rig", str(token.rig), isolated=True)  # fmt: skip
    after = VirtualToken.open(token.state)
    after.power_on()
    return run, json.loads((run.evidence / "plan.json").read_text()), after.status()


def judged(run) -> dict[str, str]:
    return {rule: verdict for rule, verdict in run.verdicts().items() if verdict != "not-run"}


def assert_all_judged(run, *partial: str) -> None:
    """Every rule judged and passing, except those named (their checks say why)."""
    verdicts = judged(run)
    assert set(verdicts) == ALL_RULES, sorted(verdicts.items())
    assert {r: v for r, v in verdicts.items() if v != "pass"} == {r: "partial" for r in partial}, sorted(verdicts.items())


@pytest.mark.parametrize("owned", [False, True], ids=["from-shipped", "from-initialized"])
def test_full_consent_judges_every_rule_it_can_and_blocks_the_so_pin_once_at_the_end(run_suite, tmp_path, owned):
    run, plan, end = campaign(run_suite, tmp_path, owned, "--hsm-serial", "SERIAL", "--hsm-allow-irreversible", *PINS)
    assert run.rc == 0, run.output
    expected = NO_OPERATOR - ({"R20", "R21"} if owned else set())  # from initialized only an update gets back there
    # From initialized, R02's first count (15 after the first INITIALIZE) needs a shipped token too.
    partial = {"R02"} if owned else set()
    verdicts = judged(run)
    assert set(verdicts) == expected, sorted(verdicts.items())
    assert {r for r, v in verdicts.items() if v != "pass"} == partial and verdicts.get("R02") == ("partial" if owned else "pass"), sorted(verdicts.items())
    steps = [s for seg in plan["segments"] for s in seg["steps"]]
    assert [s["so_blocks"] for s in steps].count(1) == 1 and steps[-1]["so_blocks"] == 1
    assert end.so_tries == 0 and plan["firmware_updates"] == 0
    assert run.summary["cost"]["apdus"] <= 1500  # the plan fits the stateful examples to the budget
    assert not plan["changed_by_device"], plan["changes"]


def test_with_the_scripted_operator_every_rule_is_judged(run_suite, tmp_path):
    run, plan, end = campaign(run_suite, tmp_path, True, "--hsm-serial", "SERIAL", "--hsm-allow-irreversible",
                              "--hsm-allow-operator", *PINS)  # fmt: skip
    assert run.rc == 0, run.output
    assert_all_judged(run)
    # From a token with no update history R13 needs its 5 SO-blocked updates and one without
    # keys; R12's, R14's and R15's update checks ride on those, so no other update is made.
    assert plan["firmware_updates"] == 6 and plan["so_blocked_updates"] == 5 and end.so_blocked_updates == 5
    assert run.summary["cost"]["apdus"] <= 1500
    assert run.summary["plan"]["firmware_updates"] == 6  # summary.json carries the plan


def test_a_token_with_four_updates_used_gets_every_rule_in_two_updates(run_suite, tmp_path):
    run, plan, end = campaign(run_suite, tmp_path, True, "--hsm-serial", "SERIAL", "--hsm-allow-irreversible",
                              "--hsm-allow-operator", *PINS, used=4)  # fmt: skip
    assert run.rc == 0, run.output
    assert_all_judged(run)  # R17 apart: a power cut needs a rig
    assert plan["firmware_updates"] == 2 and end.so_blocked_updates == 5
    assert "SO-blocked" not in run.output or plan["updates_used_before"] == 4
    assert not plan["changed_by_device"], plan["changes"]


def test_max_updates_leaves_r13_out_and_says_how_many_it_needs(run_suite, tmp_path):
    run, plan, end = campaign(run_suite, tmp_path, True, "--hsm-serial", "SERIAL", "--hsm-allow-irreversible",
                              "--hsm-allow-operator", *PINS, "--hsm-max-updates", "2")  # fmt: skip
    assert run.rc == 0, run.output
    assert plan["firmware_updates"] <= 2 and end.so_blocked_updates == 0
    (r13,) = [n for n in plan["not_run"] if "test_r13" in n["check"]]
    assert "needs 6 firmware updates (5 admitted only for a blocked SO-PIN)" in r13["why"]
    assert "R13" not in judged(run)  # its only test does not run: R13 is not judged at all


def test_a_serial_without_pins_fails_nothing_and_spends_no_try(run_suite, tmp_path):
    run, plan, end = campaign(run_suite, tmp_path, True, "--hsm-serial", "SERIAL")
    assert run.rc == 0, run.output
    assert "fail" not in judged(run).values()
    assert (end.so_tries, end.user_tries) == (15, 3) and len(end.keys) == 2  # the owner's key and the device key
    assert {s["cost"] for seg in plan["segments"] for s in seg["steps"]} == {"free"}


def test_persistent_vpcd_emulator_runs_the_walk_with_its_portal(run_suite):
    run = run_suite("--hsm-target", "emulator:vpcd", "--hsm-persistent", isolated=True)
    assert run.rc == 0, run.output
    assert_all_judged(run, "R18")  # no --hsm-serial: the CHR has no serial to be compared with
    plan = json.loads((run.evidence / "plan.json").read_text())
    assert plan["segments"][0]["starts_in"] == "shipped" and plan["segments"][0]["steps"][0]["check"].endswith(
        "test_r20_uninitialized_token_refuses_pin_and_key_commands")
