"""`hsm-lifecycle run` end to end on a tiny suite of our own (so these tests do not depend on the
size of conformance/suite), plus every refusal before the first APDU."""

from __future__ import annotations

import json
import subprocess
import textwrap
import xml.etree.ElementTree as ET

import pytest

from hsm_lifecycle.conformance import cli
from hsm_lifecycle.conformance.commands import run as run_cmd
from hsm_lifecycle.conformance.evidence.manifest import verify_manifest

TINY_SUITE = '''
import pytest
from hsm_lifecycle.model.commands import Command as C

@pytest.mark.rule("R04")
@pytest.mark.cost("tries")
def test_wrong_pin_spends_a_try(hsm):
    hsm.provision()
    with hsm.checking("R04.verify-wrong-spends-one"):
        hsm.steps(C.verify_user("wrong"), C.query_user())
    hsm.step(C.verify_user("right"))

@pytest.mark.rule("R19")
@pytest.mark.cost("free")
def test_queries_are_free(hsm):
    hsm.provision()
    with hsm.checking("R19.query-so-free", "R19.query-user-free"):
        hsm.steps(C.query_so(), C.query_so(), C.query_user(), C.query_user())
'''
FAILING = '''

@pytest.mark.rule("R05")
@pytest.mark.cost("free")
def test_a_broken_check(hsm):
    hsm.provision()
    hsm.check(False, "user PIN not blocked after 3 wrong tries", "R05.right-pin-refused")
'''
SUITE_BUG = '''

@pytest.mark.rule("R05")
@pytest.mark.cost("free")
def test_a_bug_in_the_suite(hsm):
    hsm.provision()
    assert False, "the suite's own assertion"
'''
INTERRUPTING = '''

@pytest.mark.rule("R05")
@pytest.mark.cost("free")
def test_ctrl_c(hsm):
    raise KeyboardInterrupt

@pytest.mark.rule("R10")
@pytest.mark.cost("free")
def test_never_reached(hsm):
    pass
'''
TERMINATED = '''
import os, signal

@pytest.mark.rule("R05")
@pytest.mark.cost("free")
def test_sigterm(hsm):
    os.kill(os.getpid(), signal.SIGTERM)

@pytest.mark.rule("R10")
@pytest.mark.cost("free")
def test_never_reached(hsm):
    pass
'''
STOPPING = '''

@pytest.mark.rule("R05")
@pytest.mark.cost("free")
def test_interlock_stops_the_run(hsm):
    pytest.exit("--hsm-serial X does not match the token in the reader (serial Y); nothing was changed on it.", returncode=3)
'''


@pytest.fixture
def suite(tmp_path, monkeypatch):
    """Points `run` at a suite written by the test; returns a function that writes it."""
    folder = tmp_path / "tiny_suite"
    folder.mkdir()
    monkeypatch.setattr(run_cmd, "suite_dir", lambda: folder)

    def write(extra: str = "") -> None:
        # A module name of its own: every run imports it into this same process.
        name = f"test_tiny_{tmp_path.name.replace('-', '_')}.py"
        (folder / name).write_text(textwrap.dedent(TINY_SUITE) + extra)

    return write


def _run(capsys, *argv):
    code = cli.main(["run", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_a_campaign_that_judges_only_some_checks_is_partial_exit_4(suite, tmp_path, capsys):
    suite()
    out_dir = tmp_path / "evidence"
    code, out, err = _run(capsys, "--out", str(out_dir))
    assert code == 4, out + err
    doc = json.loads((out_dir / "summary.json").read_text())
    assert doc["complete"] is True and doc["verdict"] == "partial"
    verdicts = {r["id"]: r["verdict"] for r in doc["rules"]}
    assert verdicts["R04"] == "partial" and verdicts["R19"] == "partial" and verdicts["R01"] == "not-run"
    checks = {c["id"]: c["verdict"] for r in doc["rules"] for c in r["checks"]}
    assert checks["R04.verify-wrong-spends-one"] == "pass" and checks["R04.right-restores"] == "not-run"
    assert doc["cost"]["apdus"] > 0 and doc["cost"]["user_tries_spent"] >= 1
    assert doc["coverage"]["transitions"]["covered"] > 0
    # junit.xml: written by pytest after the bundle, yet listed in the manifest; rule-id properties.
    cases = ET.parse(out_dir / "junit.xml").getroot().iter("testcase")
    props = {c.get("name"): [p.get("value") for p in c.iter("property") if p.get("name") == "rule-id"] for c in cases}
    assert props == {"test_wrong_pin_spends_a_try": ["R04"], "test_queries_are_free": ["R19"]}
    assert verify_manifest(out_dir).ok
    assert "junit.xml" in (out_dir / "MANIFEST.sha256").read_text()
    check = subprocess.run(["sha256sum", "-c", "--quiet", "MANIFEST.sha256"], cwd=out_dir)
    assert check.returncode == 0
    assert "PARTIAL" in out and "rules not fully judged" in out and "report.html" in out


def test_a_failed_rule_exits_1(suite, tmp_path, capsys):
    suite(FAILING)
    out_dir = tmp_path / "evidence"
    code, out, _ = _run(capsys, "--out", str(out_dir))
    assert code == 1
    doc = json.loads((out_dir / "summary.json").read_text())
    r05 = next(r for r in doc["rules"] if r["id"] == "R05")
    assert r05["verdict"] == "fail" and "user PIN not blocked after 3 wrong tries" in r05["why"]
    assert doc["verdict"] == "fail" and doc["complete"] is True
    assert "FAIL" in out


def test_a_bug_in_the_suite_is_an_error_exit_5_never_a_device_failure(suite, tmp_path, capsys):
    suite(SUITE_BUG)
    out_dir = tmp_path / "evidence"
    code, out, _ = _run(capsys, "--out", str(out_dir))
    assert code == 5, out
    doc = json.loads((out_dir / "summary.json").read_text())
    assert doc["verdict"] == "error"
    assert next(r for r in doc["rules"] if r["id"] == "R05")["verdict"] != "fail"
    assert "ERROR" in out and "suite's side" in out


def test_ctrl_c_leaves_a_partial_bundle_marked_incomplete(suite, tmp_path, capsys):
    suite(INTERRUPTING)
    out_dir = tmp_path / "evidence"
    code, out, _ = _run(capsys, "--out", str(out_dir))
    assert code == 130
    doc = json.loads((out_dir / "summary.json").read_text())
    assert doc["complete"] is False and doc["verdict"] in ("partial", "error")
    assert "Interrupted" in out and "marked incomplete" in out
    assert verify_manifest(out_dir).ok
    assert "INCOMPLETE" in (out_dir / "report.html").read_text()


def test_an_interlock_stop_is_one_sentence_and_exit_3(suite, tmp_path, capsys):
    suite(STOPPING)
    out_dir = tmp_path / "evidence"
    code, out, _ = _run(capsys, "--out", str(out_dir))
    assert code == 3
    assert "does not match the token in the reader" in out
    assert json.loads((out_dir / "summary.json").read_text())["complete"] is False


def test_a_selection_that_matches_nothing_is_a_usage_error(suite, tmp_path, capsys):
    suite()
    code, _, err = _run(capsys, "--out", str(tmp_path / "ev"), "-k", "no_such_test")
    assert code == 2 and "no test matches -k 'no_such_test'" in err
    assert not (tmp_path / "ev").exists(), "a usage mistake must leave nothing behind"


def test_a_usage_error_pytest_finds_leaves_nothing_behind(suite, tmp_path, capsys, monkeypatch):
    suite()
    monkeypatch.setenv("PYTEST_ADDOPTS", "--no-such-option")
    code, _, _ = _run(capsys, "--out", str(tmp_path / "ev"))
    assert code == 2 and not (tmp_path / "ev").exists()


def test_a_selection_that_matches_nothing_leaves_a_given_empty_folder_empty(suite, tmp_path, capsys):
    suite()
    (tmp_path / "ev").mkdir()
    code, _, _ = _run(capsys, "--out", str(tmp_path / "ev"), "-k", "no_such_test")
    assert code == 2 and list((tmp_path / "ev").iterdir()) == []


def test_out_folder_rules(suite, tmp_path, capsys):
    suite()
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "thesis.tex").write_text("precious")
    code, _, err = _run(capsys, "--out", str(busy))
    assert code == 2 and "exists and is not empty" in err and "--force" in err
    code, _, err = _run(capsys, "--out", str(busy), "--force")
    assert code == 2 and "not an evidence bundle" in err
    assert (busy / "thesis.tex").read_text() == "precious"

    bundle = tmp_path / "bundle"
    assert _run(capsys, "--out", str(bundle))[0] == 4  # partial: the tiny suite judges few checks
    (bundle / "traces" / "stale.jsonl").write_text("old")
    assert _run(capsys, "--out", str(bundle))[0] == 2
    assert _run(capsys, "--out", str(bundle), "--force")[0] == 4
    assert not (bundle / "traces" / "stale.jsonl").exists() and verify_manifest(bundle).ok

    a_file = tmp_path / "file"
    a_file.write_text("x")
    code, _, err = _run(capsys, "--out", str(a_file))
    assert code == 2 and "is a file, not a folder" in err


@pytest.mark.parametrize(
    "argv, says",
    [
        (["--target", "pcsc:Nitrokey", "--so-pin", "57621880"], "hex form is 3537363231383830"),
        (["--target", "pcsc:Nitrokey", "--pin", "12345"], "--pin must be 6..16 characters"),
        (["--so-pin", "3537363231383830", "--pin", "648219"], "the in-process emulator starts fresh"),
        (["--target", "pcsc:Nitrokey", "--allow-irreversible"], "--allow-irreversible needs --serial"),
        (["--target", "bogus"], "unknown --target 'bogus'"),
        (["--so-floor", "0"], "--so-floor must be at least 1"),
    ],
)
def test_bad_input_is_refused_before_any_apdu(argv, says, tmp_path, capsys, monkeypatch):
    def no_reader_check(substring: str) -> None:
        raise AssertionError("validation must come before looking for the reader")

    monkeypatch.setattr(run_cmd, "_check_reader", no_reader_check)
    out_dir = tmp_path / "ev"
    code, _, err = _run(capsys, "--out", str(out_dir), *argv)
    assert code == 2 and says in err, err
    assert err.count("\n") == 1
    assert not out_dir.exists()


def test_no_pcscd_is_one_sentence(tmp_path, capsys, monkeypatch):
    import hsm_lifecycle.conformance.transport.pcsc as pcsc
    from hsm_lifecycle.conformance.transport.base import TransportError

    def no_service() -> list[str]:
        raise TransportError("pcscd is not running: start it and retry")

    monkeypatch.setattr(pcsc, "list_readers", no_service)
    code, _, err = _run(capsys, "--out", str(tmp_path / "ev"), "--reader", "Nitrokey")
    assert (code, err) == (2, "hsm-lifecycle run: pcscd is not running: start it and retry\n")


def test_an_unknown_reader_is_named_with_the_readers_there_are(tmp_path, capsys, monkeypatch):
    import hsm_lifecycle.conformance.transport.pcsc as pcsc

    monkeypatch.setattr(pcsc, "list_readers", lambda: ["Virtual PCD 00 00", "Virtual PCD 00 01"])
    code, _, err = _run(capsys, "--out", str(tmp_path / "ev"), "--reader", "Nitrokey")
    assert code == 2 and "no reader matches 'Nitrokey'" in err and "Virtual PCD 00 00" in err


def test_a_refused_run_does_not_cost_the_earlier_bundle(suite, tmp_path, capsys, monkeypatch):
    import hsm_lifecycle.conformance.transport.pcsc as pcsc

    suite()
    bundle = tmp_path / "bundle"
    assert _run(capsys, "--out", str(bundle))[0] == 4
    monkeypatch.setattr(pcsc, "list_readers", lambda: ["Virtual PCD 00 00"])
    code, _, err = _run(capsys, "--out", str(bundle), "--force", "--reader", "Nitrokey")
    assert code == 2 and "no reader matches 'Nitrokey'" in err
    assert verify_manifest(bundle).ok and (bundle / "summary.json").exists()


def test_force_with_a_selection_that_matches_nothing_keeps_the_earlier_bundle(suite, tmp_path, capsys):
    suite()
    bundle = tmp_path / "bundle"
    assert _run(capsys, "--out", str(bundle))[0] == 4
    before = sorted(p.relative_to(bundle).as_posix() for p in bundle.rglob("*"))
    summary = (bundle / "summary.json").read_bytes()
    code, _, err = _run(capsys, "--out", str(bundle), "--force", "-k", "no_such_test")
    assert code == 2 and "no test matches" in err
    assert sorted(p.relative_to(bundle).as_posix() for p in bundle.rglob("*")) == before
    assert (bundle / "summary.json").read_bytes() == summary and verify_manifest(bundle).ok
    assert not any(p.name.endswith("earlier-bundle") for p in tmp_path.iterdir())
    assert _run(capsys, "--out", str(bundle), "--force")[0] == 4  # a run that collects replaces it
    assert not any(p.name.endswith("earlier-bundle") for p in tmp_path.iterdir())


def test_sigterm_stops_the_run_exit_3_with_a_partial_bundle(suite, tmp_path, capsys):
    suite(TERMINATED)
    out_dir = tmp_path / "evidence"
    code, out, _ = _run(capsys, "--out", str(out_dir))
    assert code == 3, out  # architecture.md: 3 stopped before its end; 130 is Ctrl-C only
    doc = json.loads((out_dir / "summary.json").read_text())
    assert doc["complete"] is False
    assert "Stopped" in out and "SIGTERM" in out
    assert verify_manifest(out_dir).ok
