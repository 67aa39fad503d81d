"""report.html names the status words it shows; summary.json keeps them as hex."""

from __future__ import annotations

from hsm_lifecycle.conformance.evidence.bundle import read_summary, write_bundle

TARGET = {"kind": "emulator", "reader": "", "serial": "UTCC0000001", "version": "3.2", "profile": "smartcard-hsm"}


def test_an_observed_status_word_is_named_in_the_report_only(tmp_path, small_view, record):
    records = [record("suite/test_user.py::test_retry", ("R04",), "observed", observations={"last-wrong-try-sw": "6983"})]
    write_bundle(tmp_path, records, target=TARGET, started="2025-01-01T00:00:00+00:00", duration_s=1.0, view=small_view,
                 open_behaviours={"last-wrong-try-sw": "6983", "retries-by-pin-length": "true"})
    html = (tmp_path / "report.html").read_text()
    assert "<code>6983</code> auth method blocked" in html
    assert "<code>true</code></td>" in html  # not a status word: shown as it is
    assert read_summary(tmp_path)["open_behaviours"] == {"last-wrong-try-sw": "6983", "retries-by-pin-length": "true"}
