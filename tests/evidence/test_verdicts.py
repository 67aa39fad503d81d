"""Per-rule verdicts: derived from the records of the tests marked with each rule."""

from __future__ import annotations

from hsm_lifecycle.conformance.evidence.verdicts import rule_verdict, rule_verdicts


def test_any_failure_fails_the_rule(record):
    v = rule_verdict(
        "R02",
        "so-retry-15",
        [
            record("t::a", ("R02",)),
            record("t::b", ("R02",), "failed", why="expected 63CE, got 63CF\nmore lines"),
        ],
    )
    assert v.verdict == "fail"
    assert "1 of 2 tests failed" in v.why
    assert "t::b: expected 63CE, got 63CF" in v.why
    assert "more lines" not in v.why


def test_an_error_fails_the_rule_like_a_failure(record):
    v = rule_verdict("R02", "x", [record("t::a", ("R02",)), record("t::e", ("R02",), "error", why="boom")])
    assert v.verdict == "fail"


def test_all_passed_is_pass_with_no_why(record):
    v = rule_verdict("R04", "user-retry", [record("t::a", ("R04",)), record("t::b", ("R04",))])
    assert (v.verdict, v.why, v.tests) == ("pass", "", ("t::a", "t::b"))


def test_pass_with_skipped_tests_says_it_was_partly_checked(record):
    v = rule_verdict(
        "R01", "x", [record("t::a", ("R01",)), record("t::w", ("R01",), "skipped", why="wipes needs --hsm-serial")]
    )
    assert v.verdict == "pass"
    assert v.why.startswith("partly checked: 1 of 2 tests skipped")
    assert "wipes needs --hsm-serial" in v.why


def test_only_observations_is_observed_and_names_what_was_seen(record):
    v = rule_verdict(
        "R05",
        "x",
        [record("t::o", ("R05",), "observed", observations={"last-wrong-try-sw": "6983"})],
    )
    assert v.verdict == "observed"
    assert "last-wrong-try-sw: 6983" in v.why


def test_observation_next_to_a_pass_is_pass(record):
    v = rule_verdict("R05", "x", [record("t::o", ("R05",), "observed"), record("t::p", ("R05",))])
    assert v.verdict == "pass"


def test_all_skipped_is_not_run_with_the_reasons(record):
    v = rule_verdict(
        "R03",
        "x",
        [record(f"t::s{i}", ("R03",), "skipped", why="needs --hsm-allow-irreversible") for i in range(5)],
    )
    assert v.verdict == "not-run"
    assert v.why.startswith("all 5 tests skipped")
    assert "needs --hsm-allow-irreversible" in v.why
    assert "and 2 more" in v.why


def test_no_test_is_not_run(record):
    v = rule_verdict("R12", "fw-update-gate", [])
    assert v.verdict == "not-run"
    assert v.why == "no test of this run checks this rule"


def test_traces_are_listed_once_in_order(record):
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
