"""The project as a user gets it: its wheel installed (not editable) in a fresh virtual environment,
used from an empty folder. scripts/test.sh builds that environment and names it in HSM_WHEEL_VENV;
in CI (CI=true) these tests must run, elsewhere they are skipped without it."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

GENERIC_NAMES = ("model", "emulator", "conformance")


@pytest.fixture(scope="module")
def venv() -> Path:
    given = os.environ.get("HSM_WHEEL_VENV")
    if not given:
        if os.environ.get("CI") == "true":
            pytest.fail("HSM_WHEEL_VENV is not set: in CI, scripts/test.sh must build the wheel's virtual environment")
        pytest.skip("HSM_WHEEL_VENV is not set (scripts/test.sh builds the wheel's virtual environment)")
    path = Path(given)
    assert (path / "bin" / "python").is_file(), f"HSM_WHEEL_VENV={given} is not a virtual environment"
    return path


def _env() -> dict[str, str]:
    """The caller's environment minus what would let the checkout leak into the venv."""
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}


def _run(argv: list[str], cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def _site_packages(venv: Path) -> Path:
    found = sorted(venv.glob("lib/python3*/site-packages"))
    assert len(found) == 1, found
    return found[0]


def _dist_info(venv: Path) -> Path:
    found = sorted(_site_packages(venv).glob("hsm_lifecycle-*.dist-info"))
    assert len(found) == 1, f"the project is not installed from a wheel in {venv}: {found}"
    return found[0]


def _assert_bundle(folder: Path) -> dict:
    """A complete bundle whose manifest verifies with the tool the README names."""
    check = subprocess.run(["sha256sum", "--check", "--strict", "--quiet", "MANIFEST.sha256"], cwd=folder, capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    listed = {line.split(maxsplit=1)[1].lstrip("*") for line in (folder / "MANIFEST.sha256").read_text().splitlines()}
    assert {"summary.json", "report.html", "records.jsonl"} <= listed, listed
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["complete"] is True
    return summary


def test_the_wheel_installs_only_hsm_lifecycle(venv):
    dist_info = _dist_info(venv)
    assert not (dist_info / "direct_url.json").exists() or '"editable": true' not in (dist_info / "direct_url.json").read_text()
    assert (dist_info / "top_level.txt").read_text().split() == ["hsm_lifecycle"]
    tops = set()
    for line in (dist_info / "RECORD").read_text().splitlines():
        path = line.rsplit(",", 2)[0]
        if path.startswith("../") or path.startswith(dist_info.name + "/"):
            continue  # the console script in bin/, the metadata
        tops.add(path.split("/")[0])
    assert tops == {"hsm_lifecycle"}
    for name in GENERIC_NAMES:
        assert not (_site_packages(venv) / name).exists(), name


@pytest.mark.parametrize("name", GENERIC_NAMES)
def test_generic_names_are_not_importable(venv, tmp_path, name):
    ours = _run([str(venv / "bin" / "python"), "-c", f"import hsm_lifecycle.{name}"], tmp_path)
    assert ours.returncode == 0, ours.stderr
    bare = _run([str(venv / "bin" / "python"), "-c", f"import {name}"], tmp_path)
    assert bare.returncode != 0 and f"No module named '{name}'" in bare.stderr, bare.stderr


def test_run_from_an_empty_folder_writes_a_bundle_that_verifies(venv, tmp_path):
    proc = _run([str(venv / "bin" / "hsm-lifecycle"), "run", "--out", "evidence"], tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert (tmp_path / "evidence").is_dir()
    assert _assert_bundle(tmp_path / "evidence")["verdict"] == "pass"


def test_the_pytest_form_from_an_empty_folder_writes_a_bundle(venv, tmp_path):
    proc = _run([str(venv / "bin" / "pytest"), "--hsm-suite", "--hsm-evidence", "evidence", "-p", "no:cacheprovider", "-q"], tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = _assert_bundle(tmp_path / "evidence")
    assert summary["verdict"] == "pass"
    # every rule the catalog has was judged (the suite was collected, not an empty selection)
    assert {r["id"] for r in summary["rules"] if r["verdict"] != "not-run"} >= {"R01", "R02", "R04", "R10", "R19"}


def test_pytest_pyargs_collects_the_same_suite(venv, tmp_path):
    def collected(*args: str) -> list[str]:
        proc = _run([str(venv / "bin" / "pytest"), *args, "--collect-only", "-q", "-p", "no:cacheprovider"], tmp_path, timeout=120)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        return [line for line in proc.stdout.splitlines() if "::" in line]

    by_option = collected("--hsm-suite")
    assert len(by_option) > 20
    # The suite folder is a namespace package (no __init__.py), which pytest resolves on request.
    by_pyargs = collected("--pyargs", "hsm_lifecycle.conformance.suite", "-o", "consider_namespace_packages=true")
    assert [n.split("/")[-1] for n in by_pyargs] == [n.split("/")[-1] for n in by_option]
    assert list(tmp_path.iterdir()) == []


def test_collecting_nothing_leaves_nothing_behind(venv, tmp_path):
    pytest_form = _run([str(venv / "bin" / "pytest"), "--hsm-suite", "--hsm-evidence", "evidence", "-k", "nomatch", "-p", "no:cacheprovider"], tmp_path)
    assert pytest_form.returncode == 5, pytest_form.stdout + pytest_form.stderr
    assert list(tmp_path.iterdir()) == []
    run_form = _run([str(venv / "bin" / "hsm-lifecycle"), "run", "--out", "evidence", "-k", "nomatch"], tmp_path)
    assert run_form.returncode == 2, run_form.stdout + run_form.stderr
    assert "no test matches -k 'nomatch'" in run_form.stderr
    assert list(tmp_path.iterdir()) == []
