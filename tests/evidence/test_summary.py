"""summary.json: exactly architecture.md's schema, plus the completeness marker."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from hsm_lifecycle.conformance.evidence.summary import SCHEMA, build_summary

TARGET = {"kind": "emulator", "reader": "", "serial": "UTCC0000001", "version": "3.2", "profile": "smartcard-hsm"}


def _summary(view, records, **kw):
    kw.setdefault("target", TARGET)
    kw.setdefault("started", "2025-01-01T00:00:00+00:00")
    kw.setdefault("duration_s", 1.5)
    kw.setdefault("open_behaviours", {"last-wrong-try-sw": "63C0"})
    return build_summary(view, records, **kw)


def test_keys_are_exactly_the_schema_plus_complete(small_view, record):
    doc = _summary(small_view, [record("t::a", ("R01",))]).to_json_dict()
    assert list(doc) == [
        "schema", "target", "started", "duration_s", "rules", "coverage", "cost", "plan", "open_behaviours", "verdict", "complete",
    ]
    assert doc["schema"] == SCHEMA == "hsm-lifecycle/evidence/2"
    assert set(doc["rules"][0]) == {"id", "title", "verdict", "why", "tests", "traces", "checks"}
    assert set(doc["rules"][0]["checks"][0]) == {"id", "verdict", "why", "traces"}
    assert set(doc["coverage"]) == {"states", "transitions"}
    assert set(doc["coverage"]["states"]) == {"covered", "total"}
    assert set(doc["coverage"]["transitions"]) == {"covered", "applicable", "total"}
    assert set(doc["cost"]) == {"apdus", "user_tries_spent", "so_tries_spent", "so_tries_left_end", "measured_from"}
    assert set(doc["plan"]) == {"segments", "firmware_updates", "changed_by_device"}
    assert doc["open_behaviours"] == {"last-wrong-try-sw": "63C0"}


def test_coverage_counts_only_what_the_model_knows(small_view, record):
    records = [
        record("t::a", ("R02",), states=("shipped", "initialized", "nonsense"), transitions=("T1", "T2", "T9")),
        record("t::b", ("R04",), states=("initialized",), transitions=("T2",)),
    ]
    s = _summary(small_view, records)
    assert s.to_json_dict()["coverage"] == {
        "states": {"covered": 2, "total": 3},
        "transitions": {"covered": 2, "applicable": 4, "total": 4},
    }
    assert s.coverage.missed_states == ("so-blocked",)
    assert s.coverage.missed_transitions == ("T3", "T4")


def test_cost_sums_the_records_and_takes_the_last_known_so_tries(small_view, record):
    records = [
        record("t::a", ("R02",), apdus=10, so_tries_spent=2, so_tries_left=13),
        record("t::b", ("R04",), apdus=5, user_tries_spent=3),
        record("t::c", ("R02",), apdus=1, so_tries_spent=1, so_tries_left=12),
        record("t::d", ("R04",), apdus=2),
    ]
    assert _summary(small_view, records).to_json_dict()["cost"] == {
        "apdus": 18, "user_tries_spent": 3, "so_tries_spent": 3, "so_tries_left_end": 12, "measured_from": "suite steps",
    }


def test_so_tries_left_end_given_by_the_caller_wins_and_unknown_is_null(small_view, record):
    rec = [record("t::a", ("R02",), so_tries_left=13)]
    assert _summary(small_view, rec, so_tries_left_end=9).cost.so_tries_left_end == 9
    assert _summary(small_view, [record("t::a", ("R02",))]).to_json_dict()["cost"]["so_tries_left_end"] is None


def test_pass_only_when_every_rule_was_judged_and_passed(small_view, record):
    every = [record("t::a", ("R01", "R02", "R03", "R04"))]
    assert _summary(small_view, every).verdict == "pass"
    some = _summary(small_view, [record("t::a", ("R01",)), record("t::o", ("R02",), "observed")])
    assert some.verdict == "partial"  # not-run and observed rules are not judged
    assert some.headline.startswith("PARTIAL; 3 of 4 rules not fully judged")
    bad = _summary(small_view, [*every, record("t::b", ("R02",), "failed")])
    assert bad.verdict == "fail"


def test_a_suite_error_is_error_never_pass_and_a_device_failure_wins(small_view, record):
    every = [record("t::a", ("R01", "R02", "R03", "R04"))]
    broken = _summary(small_view, [*every, record("t::tour", (), "error", why="planning crashed")])
    assert broken.verdict == "error" and broken.errors == ("t::tour: planning crashed",)
    assert "broke on the suite's side" in broken.headline
    both = _summary(small_view, [*every, record("t::tour", (), "error"), record("t::b", ("R02",), "failed")])
    assert both.verdict == "fail"


def test_an_incomplete_run_is_never_pass(small_view, record):
    doc = _summary(small_view, [record("t::a", ("R01", "R02", "R03", "R04"))], complete=False).to_json_dict()
    assert doc["complete"] is False
    assert doc["verdict"] == "partial"


def test_target_has_exactly_the_five_schema_keys(small_view):
    target = {"kind": "pcsc", "reader": "Nitrokey", "serial": None, "atr": "3BFE18"}
    doc = _summary(small_view, [], target=target).to_json_dict()
    assert doc["target"] == {"kind": "pcsc", "reader": "Nitrokey", "serial": "", "version": "", "profile": ""}


def test_started_datetime_becomes_iso_8601_utc(small_view):
    started = datetime(2025, 3, 1, 12, 0, 5, tzinfo=timezone(timedelta(hours=1)))
    assert _summary(small_view, [], started=started).started == "2025-03-01T11:00:05+00:00"


def test_a_run_that_checked_no_rule_is_not_a_pass(small_view, record):
    s = _summary(small_view, [record("t::s", ("R01",), "skipped", why="needs --hsm-serial")])
    assert {r.verdict for r in s.rules} == {"not-run"}
    assert s.verdict == "partial"
