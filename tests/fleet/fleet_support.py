"""Running the conformance suite under pytest-xdist as its own process, and reading a fleet's
evidence back. A module of its own (not conftest.py) so test modules can import it by a name
no other test directory uses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from hsm_lifecycle.conformance.evidence.manifest import verify_manifest
from hsm_lifecycle.conformance.transport.pcsc import list_readers
from hsm_lifecycle.emulator.vpcd import vpcd_readers

ROOT = Path(__file__).resolve().parents[2]
SUITE = ROOT / "conformance" / "suite"
# No plugin from the environment that could change the outcome or the output.
ISOLATED = ("-p", "no:cacheprovider", "-p", "no:randomly", "-p", "no:benchmark", "-o", "addopts=")
RUN_TIMEOUT_S = 240


@dataclass
class SuiteProcess:
    rc: int
    output: str
    evidence: Path

    def combined(self) -> dict:
        return json.loads((self.evidence / "combined-summary.json").read_text())

    def bundle(self, entry: dict) -> Path:
        return self.evidence / entry["bundle"]

    def summary(self, entry: dict) -> dict:
        return json.loads((self.bundle(entry) / "summary.json").read_text())

    def records(self, entry: dict) -> list[dict]:
        return [json.loads(line) for line in (self.bundle(entry) / "records.jsonl").read_text().splitlines() if line]

    def outcome(self, entry: dict, test: str) -> tuple[str, str]:
        found = [(r["outcome"], r["why"]) for r in self.records(entry) if r["nodeid"].endswith("::" + test)]
        assert len(found) == 1, (test, found)
        return found[0]


def run_suite_process(evidence: Path, *args: str) -> SuiteProcess:
    """`python -m pytest conformance/suite ARGS --hsm-evidence EVIDENCE` in a child process."""
    argv = [sys.executable, "-m", "pytest", str(SUITE), *ISOLATED, "-rA", "--hsm-evidence", str(evidence), *args]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_XDIST")}
    done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    return SuiteProcess(done.returncode, done.stdout + done.stderr, evidence)


def assert_manifest_ok(directory: Path) -> None:
    check = verify_manifest(directory)
    assert check.ok, (directory, check)


def need_vpcd_readers(count: int) -> None:
    """A fleet of `count` emulators needs as many vpcd readers (scripts/pcscd.sh offers 8):
    fail where pcscd.sh vouched for pcscd (HSM_PCSCD), skip with the reason elsewhere."""
    present = len(set(vpcd_readers().values()) & set(list_readers()))
    if present >= count:
        return
    message = f"pcscd offers {present} vpcd readers, this test needs {count} (scripts/pcscd.sh starts 8)"
    if os.environ.get("HSM_PCSCD"):
        pytest.fail(message)
    pytest.skip(message)
