"""Proof of strength: for every fault switch of the emulator and its portal, the conformance
check the fault breaks fails, its rule fails, and the fault does not simply make every check
fail. The table (fault -> check) is bench/fault_matrix.py's BREAKS; `python -m bench.fault_matrix`
writes the full matrix with the spillover to docs/fault-matrix.md."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.fault_matrix import ALSO_BREAKS, BREAKS, PER_RULE_TESTS, every_fault
from hsm_lifecycle.conformance.trace import read_trace
from hsm_lifecycle.model.checks import BY_ID, CHECKS

# Checks no fault switch is held to break, each with the reason it cannot be (none today).
UNBROKEN: dict[str, str] = {}


def test_every_fault_has_a_check_of_the_catalog():
    assert sorted(BREAKS) == sorted(every_fault()), "a fault switch without a row in bench/fault_matrix.py BREAKS"
    assert set(BREAKS.values()) <= set(BY_ID)
    assert set(ALSO_BREAKS) <= set(BREAKS) and {c for cs in ALSO_BREAKS.values() for c in cs} <= set(BY_ID)


def test_every_check_is_broken_by_a_fault():
    """A check no fault is held to break has never been seen able to fail: the suite could
    pass a device that breaks it. Every check of the catalog is some fault's BREAKS (or
    ALSO_BREAKS) target, or is listed in UNBROKEN with the reason."""
    broken = set(BREAKS.values()) | {c for cs in ALSO_BREAKS.values() for c in cs}
    missing = [c.id for c in CHECKS if c.id not in broken and c.id not in UNBROKEN]
    assert not missing, f"checks no fault switch breaks (add one to bench/fault_matrix.py BREAKS): {missing}"
    assert set(UNBROKEN) <= set(BY_ID) and not set(UNBROKEN) & broken, "UNBROKEN lists a check that is broken or unknown"
    assert all(reason.strip() for reason in UNBROKEN.values())


def test_clean_emulator_passes_every_checked_rule(run_suite):
    run = run_suite(select=PER_RULE_TESTS)
    assert run.rc == 0, run.output
    assert run.summary["verdict"] == "pass"
    checks = {c["id"]: c["verdict"] for r in run.summary["rules"] for c in r["checks"]}
    assert all(checks[c] == "pass" for c in BREAKS.values())


@pytest.mark.parametrize("fault", sorted(BREAKS), ids=str)
def test_fault_fails_its_rule_through_its_check(run_suite, fault):
    check = BREAKS[fault]
    rule = BY_ID[check].rule
    run = run_suite("--hsm-emulator-fault", fault, select=PER_RULE_TESTS)
    assert run.rc == 1, run.output
    doc = run.summary
    verdicts = {r["id"]: r for r in doc["rules"]}
    assert doc["verdict"] == "fail"
    assert verdicts[rule]["verdict"] == "fail", f"{fault} should break {rule}: {verdicts[rule]['why']}"
    failed = {c["id"]: c for c in verdicts[rule]["checks"] if c["verdict"] == "fail"}
    assert check in failed, f"{fault} should fail {check}; failed: {sorted(failed)}"
    every_failed = {c["id"] for r in doc["rules"] for c in r["checks"] if c["verdict"] == "fail"}
    shared = set(ALSO_BREAKS.get(fault, ()))
    assert shared <= every_failed, f"{fault} should also fail {sorted(shared - every_failed)}"
    survivors = sorted(r for r, v in verdicts.items() if v["verdict"] == "pass")
    assert survivors, f"{fault} made every rule fail"
    # The failing check names the trace that decided it, and that trace holds APDU exchanges.
    traces = failed[check]["traces"]
    assert traces, f"{check} failed without a trace"
    for rel in traces:
        lines = read_trace(Path(run.evidence) / rel)
        assert any(line.cmd and not line.is_control and line.sw for line in lines), f"{rel} holds no APDU exchange"
