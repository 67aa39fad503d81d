"""MANIFEST.sha256: sha256sum-compatible, lists every file, catches any change."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from hsm_lifecycle.conformance.evidence.manifest import MANIFEST_NAME, verify_manifest, write_manifest


@pytest.fixture
def bundle(tmp_path):
    (tmp_path / "traces").mkdir()
    (tmp_path / "summary.json").write_text("{}\n")
    (tmp_path / "traces" / "t 1.jsonl").write_text('{"i": 0}\n')
    (tmp_path / "report.html").write_text("<html></html>\n")
    write_manifest(tmp_path)
    return tmp_path


def test_lists_every_file_sorted_but_itself(bundle):
    names = [line.split("  ", 1)[1] for line in (bundle / MANIFEST_NAME).read_text().splitlines()]
    assert names == ["report.html", "summary.json", "traces/t 1.jsonl"]


@pytest.mark.skipif(shutil.which("sha256sum") is None, reason="coreutils sha256sum is not installed")
def test_sha256sum_dash_c_accepts_it_and_rejects_a_change(bundle):
    ok = subprocess.run(["sha256sum", "-c", "--strict", MANIFEST_NAME], cwd=bundle, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    (bundle / "summary.json").write_text('{"verdict": "pass"}\n')
    bad = subprocess.run(["sha256sum", "-c", MANIFEST_NAME], cwd=bundle, capture_output=True, text=True)
    assert bad.returncode != 0
    assert "summary.json: FAILED" in bad.stdout


def test_verify_names_changed_missing_and_unlisted_files(bundle):
    assert verify_manifest(bundle).ok
    (bundle / "summary.json").write_text("{}\n ")
    (bundle / "report.html").unlink()
    (bundle / "traces" / "added.jsonl").write_text("")
    check = verify_manifest(bundle)
    assert not check.ok
    assert check.changed == ("summary.json",)
    assert check.missing == ("report.html",)
    assert check.unlisted == ("traces/added.jsonl",)
