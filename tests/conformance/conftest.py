"""Running the conformance suite from the project's own tests, in-process (like pytester's
runpytest_inprocess), and reading back what it recorded: exit status, records, traces."""

from __future__ import annotations

import subprocess
import sys

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest

from hsm_lifecycle.conformance.evidence.records import TestRecord
from hsm_lifecycle.conformance.trace import TraceLine, read_trace

SUITE = Path(__file__).resolve().parents[2] / "conformance" / "suite"


@dataclass
class SuiteRun:
    rc: int
    output: str
    evidence: Path

    @property
    def records(self) -> list[TestRecord]:
        path = self.evidence / "records.jsonl"
        return [TestRecord.from_json(line) for line in path.read_text().splitlines()] if path.exists() else []

    def record(self, name: str) -> TestRecord:
        found = [r for r in self.records if r.nodeid.endswith("::" + name)]
        assert found, f"no record for {name}"
        return found[0]

    @property
    def summary(self) -> dict:
        return json.loads((self.evidence / "summary.json").read_text())

    def verdicts(self) -> dict[str, str]:
        return {r["id"]: r["verdict"] for r in self.summary["rules"]}

    def trace_lines(self) -> list[TraceLine]:
        lines: list[TraceLine] = []
        for path in sorted((self.evidence / "traces").glob("*.jsonl")):
            lines.extend(read_trace(path))
        return lines


@pytest.fixture
def run_suite(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> Callable[..., SuiteRun]:
    """run_suite(*pytest_args, select="...") runs conformance/suite in this process."""
    counter = iter(range(1000))

    def run(*args: str, select: str | None = None, isolated: bool = False) -> SuiteRun:
        evidence = tmp_path / f"evidence-{next(counter)}"
        argv = [str(SUITE), "-q", "-p", "no:cacheprovider", "-p", "no:randomly", "--hsm-evidence", str(evidence), *args]
        if select:
            argv += ["-k", select]
        if isolated:
            # A run against a PC/SC reader goes to its own process: whatever PC/SC handle the
            # inner session may leave open (an early pytest.exit, say) dies with that process
            # instead of holding the reader for every later test of this run.
            done = subprocess.run([sys.executable, "-m", "pytest", *argv], capture_output=True, text=True)
            return SuiteRun(done.returncode, done.stdout + done.stderr, evidence)
        rc = int(pytest.main(argv))
        captured = capfd.readouterr()
        return SuiteRun(rc, captured.out + captured.err, evidence)

    return run
