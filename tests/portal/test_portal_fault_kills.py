"""Proof of strength for R12–R15 (as tests/conformance/test_fault_kills.py does for the token's
faults): on the clean emulator the portal checks pass; each portal fault switch makes the check
of the rule it breaks fail, and leaves the other portal checks passing."""

from __future__ import annotations

import pytest

from hsm_lifecycle.emulator.portal import PortalFault

BREAKS: dict[PortalFault, str] = {
    PortalFault.UPDATE_WITH_KEYS: "R12",
    PortalFault.UNLIMITED_UPDATES: "R13",
    PortalFault.IDENTITY_KEPT_ON_UPDATE: "R14",
    PortalFault.BLOCKED_HSM_LOGS_IN: "R15",
    PortalFault.SO_BLOCK_NOT_ADMITTED: "R12",
    PortalFault.USER_BLOCKED_NOT_ADMITTED: "R12",
    PortalFault.EMPTY_UPDATE_COUNTED: "R13",
    PortalFault.UNINITIALIZED_LOGS_IN: "R15",
    PortalFault.BLOCKED_DEVICE_NEEDS_OWN_LOGIN: "R15",
    PortalFault.FOUR_UPDATES_ONLY: "R13",
    PortalFault.TRANSPORT_HSM_LOGS_IN: "R15",
    PortalFault.SO_BLOCKED_HSM_REFUSED: "R15",
}
PORTAL_RULES = ("R12", "R13", "R14", "R15")
PORTAL_TESTS = "test_r12 or test_r13 or test_r14 or test_r15"


def test_every_portal_fault_has_a_rule():
    assert set(BREAKS) == set(PortalFault)


def test_clean_portal_passes_r12_to_r15(run_suite):
    run = run_suite(select=PORTAL_TESTS)
    assert run.rc == 0, run.output
    for rule in PORTAL_RULES:
        assert run.outcomes(rule) == {"passed"}, (rule, run.outcomes(rule))


@pytest.mark.parametrize("fault", sorted(BREAKS, key=lambda f: f.value), ids=lambda f: f.value)
def test_portal_fault_fails_its_rule_and_not_the_others(run_suite, fault):
    rule = BREAKS[fault]
    run = run_suite("--hsm-emulator-fault", fault.value, select=PORTAL_TESTS)
    assert run.rc == 1, run.output
    failed = [r for r in run.records if r.outcome == "failed"]
    assert failed and all(rule in r.rules for r in failed), [(r.nodeid, r.rules) for r in failed]
    assert all("update-" in r.why or "login-" in r.why or "EF.C_DevAut" in r.why for r in failed)
    assert all(r.trace for r in failed)  # each failure comes with its APDU trace
    for other in set(PORTAL_RULES) - {rule} - {r for f in failed for r in f.rules}:
        assert run.outcomes(other) == {"passed"}, (other, run.outcomes(other))
