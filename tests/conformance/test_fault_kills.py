"""Proof of strength: for every fault switch of the emulator and its portal, the conformance
check the fault breaks fails, its rule fails, and the fault does not simply make every check
fail. The table (fault -> check) is bench/fault_matrix.py's BREAKS; `python -m bench.fault_matrix`
writes the full matrix with the spillover to docs/fault-matrix.md."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.fault_matrix import BREAKS, PER_RULE_TESTS, every_fault
from hsm_lifecycle.conformance.trace import read_trace
from hsm_lifecycle.model.checks import BY_ID


def test_every_fault_has_a_check_of_the_catalog():
    assert sorted(BREAKS) == sorted(every_fault()), "a fault switch without a row in bench/fault_matrix.py BREAKS"
    assert set(BREAKS.values()) <= set(BY_ID)


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
    survivors = sorted(r for r, v in verdicts.items() if v["verdict"] == "pass")
    assert survivors, f"{fault} made every rule fail"
    # The failing check names the trace that decided it, and that trace holds APDU exchanges.
    traces = failed[check]["traces"]
    assert traces, f"{check} failed without a trace"
    for rel in traces:
        lines = read_trace(Path(run.evidence) / rel)
        assert any(line.cmd and not line.is_control and line.sw for line in lines), f"{rel} holds no APDU exchange"
