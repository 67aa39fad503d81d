"""Per-rule verdicts: judged only through the rule's checks (model.checks), from the checks each
test record says it decided."""

from __future__ import annotations

from hsm_lifecycle.conformance.evidence.verdicts import rule_verdict, rule_verdicts, tool_errors
from hsm_lifecycle.model.checks import checks_of


def test_any_failed_check_fails_the_rule_and_names_it(record, decided):
    v = rule_verdict(
        "R02",
        "so-retry-15",
        [
            record("t::a", ("R02",)),
            record("t::b", ("R02",), "failed", why="expected 63CE, got 63CF\nmore lines",
                   checks=decided({"R02.change-so-wrong-spends-one": "fail"})),
        ],
    )
    assert v.verdict == "fail"
    assert f"1 of {len(checks_of('R02'))} checks failed" in v.why
    assert "R02.change-so-wrong-spends-one" in v.why
    failed = {c.id: c for c in v.checks}["R02.change-so-wrong-spends-one"]
    assert failed.verdict == "fail" and failed.tests == ("t::b",)


def test_a_passing_test_gives_no_credit_without_decided_checks(record):
    v = rule_verdict("R04", "user-retry", [record("t::a", ("R04",), checks={})])
    assert v.verdict == "not-run"
    assert all(c.verdict == "not-run" for c in v.checks)


def test_every_check_passed_is_pass_with_no_why(record):
    v = rule_verdict("R04", "user-retry", [record("t::a", ("R04",)), record("t::b", ("R04",))])
    assert (v.verdict, v.why, v.tests) == ("pass", "", ("t::a", "t::b"))
    assert {c.verdict for c in v.checks} == {"pass"}


def test_some_checks_not_run_is_partial_and_names_them_with_the_skip_reasons(record, decided):
    first, *rest = checks_of("R01")
    v = rule_verdict(
        "R01",
        "x",
        [record("t::a", ("R01",), checks=decided({first.id: "pass"})),
         record("t::w", ("R01",), "skipped", why="wipes needs --serial", checks={})],
    )
    assert v.verdict == "partial"
    assert v.why.startswith(f"{len(rest)} of {len(rest) + 1} checks not run")
    assert rest[0].id in v.why and "wipes needs --serial" in v.why


def test_an_error_decides_nothing_and_is_the_suites(record):
    records = [record("t::a", ("R02",)), record("t::e", ("R02",), "error", why="boom")]
    v = rule_verdict("R02", "x", records)
    assert v.verdict == "pass"  # the device's checks all passed in t::a
    assert [r.nodeid for r in tool_errors(records)] == ["t::e"]


def test_only_observations_is_observed_and_names_what_was_seen(record):
    v = rule_verdict("R05", "x", [record("t::o", ("R05",), "observed", observations={"last-wrong-try-sw": "6983"})])
    assert v.verdict == "observed"
    assert "last-wrong-try-sw: 6983" in v.why


def test_all_skipped_is_not_run_with_the_reasons(record):
    v = rule_verdict(
        "R03", "x", [record(f"t::s{i}", ("R03",), "skipped", why="needs --allow-irreversible") for i in range(5)]
    )
    assert v.verdict == "not-run"
    assert "needs --allow-irreversible" in v.why
    assert "and 2 more" in v.why


def test_no_test_is_not_run(record):
    v = rule_verdict("R12", "fw-update-gate", [])
    assert v.verdict == "not-run"
    assert v.why.endswith("no test of this run checks this rule")


def test_a_check_decided_by_another_rules_test_counts(small_view, record, decided):
    # The tour (no rule marker) failed R02's check: R02 fails although no R02 test ran.
    verdicts = {v.id: v for v in rule_verdicts(small_view, [
        record("t::tour", (), "failed", checks=decided({"R02.rrc-wrong-spends-one": "fail"}))])}
    assert verdicts["R02"].verdict == "fail"


def test_traces_come_from_the_deciding_records(record):
    v = rule_verdict(
        "R02",
        "x",
        [
            record("t::a", ("R02",), trace="traces/a.jsonl"),
            record("t::b", ("R02",), trace="traces/a.jsonl"),
            record("t::c", ("R02",), trace="traces/c.jsonl"),
            record("t::d", ("R02",)),
        ],
    )
    assert v.traces == ("traces/a.jsonl", "traces/c.jsonl")


def test_every_catalog_rule_gets_a_verdict_in_catalog_order(small_view, record):
    verdicts = rule_verdicts(small_view, [record("t::a", ("R04", "R02"))])
    assert [v.id for v in verdicts] == ["R01", "R02", "R03", "R04"]
    assert {v.id: v.verdict for v in verdicts} == {"R01": "not-run", "R02": "pass", "R03": "not-run", "R04": "pass"}
    assert verdicts[1].title == "so-retry-15"


def test_a_rule_id_the_catalog_lacks_fails_visibly(small_view, record):
    verdicts = rule_verdicts(small_view, [record("t::typo", ("R99",))])
    assert verdicts[-1].id == "R99"
    assert verdicts[-1].verdict == "fail"
    assert "not in the model's rule catalog" in verdicts[-1].why
