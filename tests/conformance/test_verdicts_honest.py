"""The verdicts an evaluator reads: PASS only when every rule's every check ran against the
device and passed; selections and unconsented real-token runs are partial; the suite's own
breakage is an error, never the device's failure and never a pass."""

from __future__ import annotations

import pytest

from hsm_lifecycle.model.catalog import RULES
from hsm_lifecycle.model.checks import CHECKS


def test_clean_emulator_passes_every_rule_and_every_check(run_suite):
    run = run_suite()
    assert run.rc == 0, run.output
    doc = run.summary
    assert doc["verdict"] == "pass", [(r["id"], r["verdict"], r["why"]) for r in doc["rules"] if r["verdict"] != "pass"]
    assert {r["id"] for r in doc["rules"]} == set(RULES)
    checks = {c["id"]: c for r in doc["rules"] for c in r["checks"]}
    assert set(checks) == {c.id for c in CHECKS}
    assert {c["verdict"] for c in checks.values()} == {"pass"}
    assert all(c["traces"] for c in checks.values())  # every check names the trace that decided it


@pytest.mark.parametrize("select", ["test_r18", "test_r10 or test_r19", "test_tour", "test_random"])
def test_a_selection_is_partial_never_pass(run_suite, select):
    run = run_suite(select=select)
    doc = run.summary
    assert doc["verdict"] == "partial", (doc["verdict"], run.output)
    assert any(r["verdict"] == "not-run" for r in doc["rules"])


def test_the_tour_and_random_walks_credit_no_rule_by_their_tags(run_suite):
    doc = run_suite(select="test_tour or test_random").summary
    assert {r["verdict"] for r in doc["rules"]} == {"not-run"}
    assert {c["verdict"] for r in doc["rules"] for c in r["checks"]} == {"not-run"}


def test_real_token_without_consent_is_partial_never_pass(run_suite):
    run = run_suite("--hsm-emulator-as-real", "--hsm-pin", "648219", select="test_r")
    doc = run.summary
    assert doc["verdict"] == "partial", (doc["verdict"], [(r["id"], r["verdict"]) for r in doc["rules"]])
    verdicts = {r["id"]: r["verdict"] for r in doc["rules"]}
    assert verdicts["R17"] != "pass"  # no power cut ever happened on a "real" token
    assert "fail" not in verdicts.values()


def test_a_device_that_keeps_the_session_after_a_wrong_pin_still_passes(run_suite):
    run = run_suite("--hsm-emulator-profile", "wrong_pin_ends_session=false")
    doc = run.summary
    assert doc["open_behaviours"]["wrong-pin-ends-session"] == "false"
    assert doc["verdict"] == "pass", [(r["id"], r["verdict"], r["why"]) for r in doc["rules"] if r["verdict"] != "pass"]


def test_a_crash_while_planning_is_an_error_not_a_device_failure(run_suite, monkeypatch):
    import hsm_lifecycle.conformance.tour as tour

    def broken(*args, **kwargs):
        raise RuntimeError("planning crashed")

    monkeypatch.setattr(tour, "_Graph", broken)  # inside plan_tour, whoever imported plan_tour
    run = run_suite(select="test_tour or test_r19")
    doc = run.summary
    assert doc["verdict"] == "error", doc["verdict"]
    assert "fail" not in {r["verdict"] for r in doc["rules"]}
    (record,) = [r for r in run.records if "test_tour" in r.nodeid]
    assert record.outcome == "error" and "planning crashed" in record.why and not record.rules


def test_a_hypothesis_error_is_the_suites(run_suite, monkeypatch):
    import hsm_lifecycle.conformance.stateful as stateful
    from hypothesis.errors import FailedHealthCheck

    def unhealthy(*args, **kwargs):
        raise FailedHealthCheck("Inconsistent data generation")

    monkeypatch.setattr(stateful, "run_state_machine_as_test", unhealthy)  # looked up at call time
    doc = run_suite(select="test_random").summary
    assert doc["verdict"] == "error"


def test_run_k_test_r18_ends_partial_exit_4(tmp_path, capsys):
    from hsm_lifecycle.conformance import cli

    code = cli.main(["run", "--out", str(tmp_path / "ev"), "--plain", "-k", "test_r18"])
    out = capsys.readouterr().out
    assert code == 4, out
    assert "PARTIAL" in out and "rules not fully judged" in out


@pytest.mark.parametrize("accepted, seen", [("true", "accepted (9000)"), ("false", "refused (6700)")])
def test_case3_le_is_reported_and_r22_holds_either_way(run_suite, accepted, seen):
    """Open behaviour case3-le (VERIFY with a trailing Le): observed and reported in the
    evidence, never judged; R22's checks pass on a device answering either way."""
    run = run_suite("--hsm-emulator-profile", f"case3_le_accepted={accepted}", select="test_r22 or test_open_behaviours")
    doc = run.summary
    assert doc["open_behaviours"]["case3-le"] == seen
    r22 = next(r for r in doc["rules"] if r["id"] == "R22")
    assert r22["verdict"] == "pass" and all(c["verdict"] == "pass" for c in r22["checks"]), r22
