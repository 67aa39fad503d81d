"""The planner places R17's checks only when a power cut can happen: the in-process emulator's
tear hook, or a power-cut rig (--hsm-power-rig / run --power-rig). Without one the plan says
R17 is not run and which option of the command the user ran would run it."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from hsm_lifecycle.conformance.commands.run import _consent_args, add_arguments
from hsm_lifecycle.conformance.options import TargetSpec
from hsm_lifecycle.conformance.targets import AsRealTarget
from hsm_lifecycle.emulator import VirtualToken
from hsm_lifecycle.model.plan import NEED_POWER_RIG, CheckSpec, PlanConsent, plan_campaign
from hsm_lifecycle.model.profiles import SMARTCARD_HSM
from hsm_lifecycle.model.states import ExtState

OWNER_PINS = ("--hsm-pin", "648219", "--hsm-so-pin", "3537363231383830")
R17 = CheckSpec("r17", ("R17",), "tries", needs=frozenset({NEED_POWER_RIG}))
R04 = CheckSpec("r04", ("R04",), "tries")
HELD = dict(user_pin=True, so_pin=True)


def test_a_check_that_needs_a_rig_is_placed_only_with_one():
    owned = ExtState.initialized()
    without = plan_campaign(owned, [R04, R17], PlanConsent(**HELD), SMARTCARD_HSM)
    assert without.order == ("r04",)
    (miss,) = without.not_run
    assert miss.check == "r17" and miss.allowed_by == (NEED_POWER_RIG,) and "power-cut rig" in miss.why
    with_rig = plan_campaign(owned, [R04, R17], PlanConsent(**HELD, capabilities=frozenset({NEED_POWER_RIG})), SMARTCARD_HSM)
    assert set(with_rig.order) == {"r04", "r17"} and not with_rig.not_run


def _owned(path: Path) -> VirtualToken:
    token = VirtualToken.manufacture(state_path=path)
    AsRealTarget.set_up_as_owner(token)
    token.power_off()
    return token


def test_the_plan_on_a_token_without_a_rig_names_the_option(run_suite, tmp_path: Path):
    state = tmp_path / "owned.json"
    _owned(state)
    run = run_suite("--hsm-emulator-as-real", "--hsm-emulator-state", str(state), *OWNER_PINS, "--hsm-plan")
    assert run.rc == 0, run.output
    assert "test_r17_power_cut_after_comparison_keeps_the_try_spent (R17): cuts the token's power in the middle of a " \
           "PIN check, which needs a power-cut rig — would run with --hsm-power-rig SOCKET" in run.output  # fmt: skip
    plan = json.loads((run.evidence / "plan.json").read_text())
    (r17,) = [n for n in plan["not_run"] if "test_r17" in n["check"]]
    assert r17["allowed_by"] == [NEED_POWER_RIG]


def test_under_run_the_reason_names_runs_option(run_suite, tmp_path: Path):
    state = tmp_path / "owned.json"
    _owned(state)
    run = run_suite("--hsm-emulator-as-real", "--hsm-emulator-state", str(state), *OWNER_PINS, "--hsm-option-names=run",
                    "--hsm-plan")  # fmt: skip
    assert run.rc == 0, run.output
    assert "would run with --power-rig SOCKET" in run.output and "--hsm-power-rig" not in run.output


def test_the_in_process_emulator_places_r17_without_a_rig(run_suite):
    run = run_suite("--hsm-plan", select="test_r17")
    assert run.rc == 0, run.output
    assert "test_r17_power_cut" in run.output and "power-cut rig" not in run.output


def test_a_rig_for_the_in_process_emulator_is_refused_in_one_sentence(run_suite, tmp_path: Path):
    run = run_suite("--hsm-power-rig", str(tmp_path / "rig.sock"), "--hsm-plan")
    assert run.rc == 4 and "--hsm-power-rig needs a token served through PC/SC" in run.output
    assert "Traceback" not in run.output


def test_run_passes_its_power_rig_to_the_suite(tmp_path: Path):
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--reader", "Virtual PCD", "--power-rig", str(tmp_path / "rig.sock")])
    argv = _consent_args(args, tmp_path, TargetSpec("pcsc", "Virtual PCD"))
    assert f"--hsm-power-rig={tmp_path / 'rig.sock'}" in argv
