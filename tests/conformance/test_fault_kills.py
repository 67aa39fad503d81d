"""Proof of strength: for every emulator fault, the conformance check of the rule the fault breaks
fails, and the fault does not simply make every check fail.

The fault list is the emulator's `Fault` enum (docs/emulator.md). The table below says which
rule each fault breaks; a new fault without a row here fails `test_every_fault_has_a_rule`.
The faults for R12–R15 are the portal's (`emulator.portal.PortalFault`): their kills are in
tests/portal/test_portal_fault_kills.py.
"""

from __future__ import annotations

import pytest

from hsm_lifecycle.emulator import Fault

BREAKS: dict[Fault, str] = {
    Fault.INITIALIZE_IGNORES_SO_PIN: "R01",
    Fault.SO_COUNTER_NOT_SPENT: "R02",
    Fault.SO_UNBLOCKABLE: "R03",
    Fault.USER_COUNTER_NOT_RESTORED: "R04",
    Fault.USER_BLOCK_IGNORED: "R05",
    Fault.RRC_IGNORES_OPTION: "R06",
    Fault.REINIT_KEEPS_KEYS: "R07",
    Fault.IDENTITY_CHANGES_ON_INIT: "R08",
    Fault.SO_PIN_AUTHORIZES_KEYS: "R09",
    Fault.KEY_USE_WITHOUT_LOGIN: "R10",
    Fault.SESSION_SURVIVES_RESELECT: "R10",
    Fault.TRANSPORT_PIN_IGNORED: "R11",
    Fault.WRONG_LENGTH_SPENDS_TRY: "R16",
    Fault.TEAR_REFUNDS_TRY: "R17",
    Fault.QUERY_SPENDS_TRY: "R19",
    Fault.UNINITIALIZED_ACCEPTS_PIN: "R20",
    Fault.FIRST_INIT_SETS_WRONG_TRIES: "R21",
    Fault.INCOMPLETE_DKEK_USED: "R23",
    Fault.WRAP_UNDER_FIXED_KEY: "R23",
    Fault.DKEK_SURVIVES_INIT: "R23",
}
PER_RULE_TESTS = "test_r0 or test_r1 or test_r2"  # the per-rule checks (not the tour, not the stateful test)


def test_every_fault_has_a_rule():
    assert set(BREAKS) == set(Fault), f"faults without a rule here: {sorted(f.value for f in set(Fault) - set(BREAKS))}"


def test_clean_emulator_passes_every_checked_rule(run_suite):
    run = run_suite(select=PER_RULE_TESTS)
    verdicts = run.verdicts()
    assert run.rc == 0, run.output
    assert {r for r, v in verdicts.items() if v == "fail"} == set()
    assert {r for r, v in verdicts.items() if v == "pass"} >= set(BREAKS.values()) | {"R18"}


@pytest.mark.parametrize("fault", sorted(BREAKS, key=lambda f: f.value), ids=lambda f: f.value)
def test_fault_fails_its_rule_and_not_everything(run_suite, fault):
    rule = BREAKS[fault]
    run = run_suite("--hsm-emulator-fault", fault.value, select=PER_RULE_TESTS)
    verdicts = run.verdicts()
    assert run.rc == 1, run.output
    assert verdicts[rule] == "fail", f"{fault.value} should break {rule}: {verdicts}"
    survivors = sorted(r for r, v in verdicts.items() if v == "pass" and r != rule)
    assert survivors, f"{fault.value} made every rule check fail: {verdicts}"
    failed = [r for r in run.records if r.outcome == "failed" and rule in r.rules]
    assert all("APDU trace" in r.why or r.trace for r in failed)
