"""Fixtures of the portal's tests, and an in-process run of the conformance suite (as
tests/conformance does) read back through its evidence records."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest

from hsm_lifecycle.conformance.evidence.records import TestRecord
from hsm_lifecycle.emulator.portal import Portal, PortalSession
from portal_helpers import Hsm, logged_in

SUITE = Path(__file__).resolve().parents[2] / "conformance" / "suite"


@pytest.fixture
def hsm() -> Callable[..., Hsm]:
    return Hsm.make


@pytest.fixture
def portal() -> Portal:
    return Portal()


@pytest.fixture
def session(portal: Portal) -> PortalSession:
    return logged_in(portal)


# -- the conformance suite, in this process -------------------------------------------------


@dataclass
class SuiteRun:
    rc: int
    output: str
    evidence: Path

    @property
    def records(self) -> list[TestRecord]:
        path = self.evidence / "records.jsonl"
        if not path.exists():  # the bundle writer did not run: the per-worker record files
            paths = sorted(self.evidence.glob("records-*.jsonl"))
        else:
            paths = [path]
        return [TestRecord.from_json(line) for p in paths for line in p.read_text().splitlines()]

    def outcomes(self, rule: str) -> set[str]:
        return {r.outcome for r in self.records if rule in r.rules}

    def record(self, name: str) -> TestRecord:
        found = [r for r in self.records if r.nodeid.endswith("::" + name)]
        assert found, f"no record for {name}: {[r.nodeid for r in self.records]}"
        return found[0]


@pytest.fixture
def run_suite(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> Callable[..., SuiteRun]:
    """run_suite(*pytest_args, select="...") runs conformance/suite in this process."""
    counter = iter(range(1000))

    def run(*args: str, select: str | None = None) -> SuiteRun:
        evidence = tmp_path / f"evidence-{next(counter)}"
        argv = [str(SUITE), "-q", "-p", "no:cacheprovider", "-p", "no:randomly", "--hsm-evidence", str(evidence), *args]
        if select:
            argv += ["-k", select]
        rc = int(pytest.main(argv))
        return SuiteRun(rc, capfd.readouterr().out, evidence)

    return run
