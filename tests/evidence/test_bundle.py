"""write_bundle: every file of architecture.md's bundle, consistent with the records."""

from __future__ import annotations

import json
import re
from pathlib import Path

from hsm_lifecycle.conformance.evidence.bundle import rebuild_bundle, read_summary, write_bundle
from hsm_lifecycle.conformance.evidence.manifest import verify_manifest
from hsm_lifecycle.conformance.evidence.modelview import ModelView
from hsm_lifecycle.conformance.evidence.records import append_record, load_evidence_records, records_file

TARGET = {"kind": "emulator", "reader": "", "serial": "UTCC0000001", "version": "3.2", "profile": "smartcard-hsm"}


def _records(record):
    return [
        record("suite/test_so.py::test_init_wrong_so", ("R01", "R02"), trace="traces/so_wrong.jsonl", apdus=12,
               so_tries_spent=1, so_tries_left=14, transitions=("T2",), states=("initialized",)),
        record("suite/test_so.py::test_block", ("R03",), "failed", why="INITIALIZE answered 9000 at 0 SO tries",
               trace="traces/block.jsonl", apdus=40, so_tries_spent=15, transitions=("T3",),
               states=("initialized", "so-blocked")),
        record("suite/test_user.py::test_retry", ("R04",), "observed", observations={"last-wrong-try-sw": "63C0"},
               trace="traces/user retry.jsonl"),
    ]


def _write(tmp_path: Path, view, records, **kw):
    for rec in records:
        if rec.trace:
            (tmp_path / rec.trace).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / rec.trace).write_text('{"i": 0, "cmd": "00A4040C", "sw": "9000"}\n')
    kw.setdefault("open_behaviours", {"last-wrong-try-sw": "63C0"})
    return write_bundle(tmp_path, records, target=TARGET, started="2025-01-01T00:00:00+00:00", duration_s=2.0,
                        view=view, **kw)


def test_writes_every_file_and_the_manifest_checks(tmp_path, small_view, record):
    _write(tmp_path, small_view, _records(record))
    for name in ("summary.json", "report.html", "lifecycle.svg", "records.jsonl", "MANIFEST.sha256", "traces"):
        assert (tmp_path / name).exists(), name
    assert verify_manifest(tmp_path).ok
    listed = (tmp_path / "MANIFEST.sha256").read_text()
    assert "traces/user retry.jsonl" in listed and "summary.json" in listed


def test_summary_json_carries_the_derived_verdicts(tmp_path, small_view, record):
    _write(tmp_path, small_view, _records(record))
    doc = read_summary(tmp_path)
    assert {r["id"]: r["verdict"] for r in doc["rules"]} == {"R01": "pass", "R02": "pass", "R03": "fail", "R04": "observed"}
    assert doc["verdict"] == "fail" and doc["complete"] is True
    assert doc["rules"][0]["traces"] == ["traces/so_wrong.jsonl"]
    assert doc["coverage"]["transitions"] == {"covered": 2, "applicable": 4, "total": 4}
    assert doc["cost"] == {"apdus": 52, "user_tries_spent": 0, "so_tries_spent": 16, "so_tries_left_end": 14, "measured_from": "suite steps"}


def test_diagram_marks_the_covered_transitions(tmp_path, small_view, record):
    _write(tmp_path, small_view, _records(record))
    svg = (tmp_path / "lifecycle.svg").read_text()
    assert "<text>T2</text>" in svg and "<text>T3</text>" in svg and "<text>T1</text>" not in svg


def test_report_has_a_matrix_row_per_rule_and_relative_trace_links(tmp_path, small_view, record):
    _write(tmp_path, small_view, _records(record))
    html = (tmp_path / "report.html").read_text()
    for rid in ("R01", "R02", "R03", "R04"):
        assert f"id='rule-{rid}'" in html
    assert "href='traces/user%20retry.jsonl'" in html
    assert "proposed mapping" in html and "not a quotation of a certified Security Target" in html
    assert "FMT_SMF.1" in html and "INITIALIZE answered 9000 at 0 SO tries" in html
    # The inlined diagram lost graphviz's prolog and external DTD.
    assert "<?xml" not in html and "<!DOCTYPE svg" not in html and "svg11.dtd" not in html
    assert 'id="overall-verdict">FAIL' in html


def test_staged_worker_records_are_merged_into_records_jsonl(tmp_path, small_view, record):
    recs = _records(record)
    append_record(records_file(tmp_path, "gw0"), recs[0])
    append_record(records_file(tmp_path, "gw1"), recs[1])
    append_record(records_file(tmp_path, "gw1"), recs[2])
    loaded = load_evidence_records(tmp_path)
    assert sorted(r.nodeid for r in loaded) == sorted(r.nodeid for r in recs)
    _write(tmp_path, small_view, loaded)
    assert not list(tmp_path.glob("records-*.jsonl"))
    assert len((tmp_path / "records.jsonl").read_text().splitlines()) == 3


def test_rebuild_marks_an_interrupted_run_incomplete(tmp_path, small_view, record):
    recs = [r for r in _records(record) if r.outcome != "failed"]
    recs.append(record("t::all", ("R01", "R02", "R03", "R04")))
    _write(tmp_path, small_view, recs)
    assert read_summary(tmp_path)["verdict"] == "pass"
    rebuild_bundle(tmp_path, complete=False, view=small_view)
    doc = read_summary(tmp_path)
    assert doc["complete"] is False and doc["verdict"] == "partial"
    assert doc["cost"]["so_tries_left_end"] == 14 and doc["open_behaviours"] == {"last-wrong-try-sw": "63C0"}
    assert "INCOMPLETE" in (tmp_path / "report.html").read_text()
    assert verify_manifest(tmp_path).ok


def test_rebuild_lists_a_file_added_after_the_bundle(tmp_path, small_view, record):
    _write(tmp_path, small_view, _records(record))
    (tmp_path / "junit.xml").write_text("<testsuites/>")
    assert verify_manifest(tmp_path).unlisted == ("junit.xml",)
    rebuild_bundle(tmp_path, view=small_view)
    assert verify_manifest(tmp_path).ok and read_summary(tmp_path)["complete"] is True


def test_a_diagram_that_cannot_be_drawn_costs_only_the_diagram(tmp_path, small_view, record):
    def broken(path, covered):
        raise RuntimeError("dot not found")

    view = ModelView(small_view.rules, small_view.transitions, small_view.states, render_diagram=broken)
    _write(tmp_path, view, _records(record))
    html = (tmp_path / "report.html").read_text()
    assert "No diagram: the diagram could not be drawn (RuntimeError: dot not found)" in html
    assert read_summary(tmp_path)["schema"] == "hsm-lifecycle/evidence/2"


def test_untrusted_text_is_escaped(tmp_path, small_view, record):
    recs = [record("t::x", ("R01",), "failed", why="<script>alert(1)</script>")]
    _write(tmp_path, small_view, recs)
    html = (tmp_path / "report.html").read_text()
    assert "<script>" not in html and "&lt;script&gt;" in html


def test_bundle_against_the_real_model(tmp_path, record):
    view = ModelView.load()
    first = view.transitions[0]
    recs = [record("t::a", first.rules or ("R01",), transitions=(first.id,), states=(first.source, first.dest))]
    summary = _write(tmp_path, view, recs)
    ids = [r["id"] for r in read_summary(tmp_path)["rules"]]
    assert ids[:21] == [f"R{i:02d}" for i in range(1, 22)]
    assert summary.coverage.to_summary()["transitions"]["covered"] == 1
    assert re.search(r"<svg\b", (tmp_path / "report.html").read_text())
    assert json.loads((tmp_path / "summary.json").read_text())["coverage"]["states"]["total"] == 6
