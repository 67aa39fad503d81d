"""Running the conformance suite against a misbehaving device, in this process.

`HostileDevice` is a pytest plugin object: while the inner run is configured, every in-process
token the suite makes (conformance.targets.InProcessTransport) sits behind a HostileTransport
sharing one sabotage plan, optionally behind a per-APDU deadline. `run_suite` runs a selection
of conformance/suite with it and reads back what the run left: exit status, output, records,
traces, summary.json.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from hsm_lifecycle.conformance import targets
from hsm_lifecycle.conformance.evidence.records import TestRecord, load_evidence_records
from hsm_lifecycle.conformance.trace import TraceLine, read_trace
from hsm_lifecycle.conformance.transport.base import DeadlineTransport, Transport
from hsm_lifecycle.conformance.transport.hostile import HostileTransport, Sabotage
from hsm_lifecycle.conformance.transport.inprocess import InProcessTransport

SUITE = Path(__file__).resolve().parents[2] / "conformance" / "suite"


class TimedTransport(DeadlineTransport):
    """The deadline wrapper, still offering the emulator's `token` to the in-process target."""

    @property
    def token(self) -> Any:
        return getattr(self.inner, "token")


class HostileDevice:
    """pytest plugin: the suite's in-process tokens answer through `sabotage`."""

    def __init__(self, sabotage: Sabotage, deadline: float | None = None, in_test: int | None = None) -> None:
        """`in_test`: instead of `sabotage.after`, strike at that many APDUs into the first
        test's body (the session set-up, however long it gets, stays clean)."""
        self.sabotage = sabotage
        self.deadline = deadline
        self.in_test = in_test
        self.transports: list[Transport] = []
        self._patch = pytest.MonkeyPatch()
        if in_test is not None:
            sabotage.after = 1 << 30

    def make(self, token: Any, **kwargs: Any) -> Transport:
        hostile: Transport = HostileTransport(InProcessTransport(token, **kwargs), self.sabotage)
        made = TimedTransport(hostile, self.deadline) if self.deadline is not None else hostile
        self.transports.append(made)
        return made

    def pytest_configure(self, config: pytest.Config) -> None:
        self._patch.setattr(targets, "InProcessTransport", self.make)

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_call(self, item: pytest.Item) -> None:
        if self.in_test is not None and self.sabotage.after == 1 << 30:
            self.sabotage.after = self.sabotage.seen + self.in_test

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        self._patch.undo()
        for transport in self.transports:  # let go of anything still blocked
            transport.close()


@dataclass
class HostileRun:
    rc: int
    output: str
    evidence: Path
    seconds: float

    @property
    def records(self) -> list[TestRecord]:
        bundled = self.evidence / "records.jsonl"
        if bundled.exists():
            return [TestRecord.from_json(line) for line in bundled.read_text().splitlines() if line.strip()]
        return load_evidence_records(self.evidence)

    @property
    def summary(self) -> dict[str, Any]:
        return json.loads((self.evidence / "summary.json").read_text())

    def verdicts(self) -> dict[str, str]:
        return {r["id"]: r["verdict"] for r in self.summary["rules"]}

    def trace(self, record: TestRecord) -> list[TraceLine]:
        assert record.trace, f"{record.nodeid} kept no trace"
        return list(read_trace(self.evidence / record.trace))


def run_suite(tmp: Path, capfd: pytest.CaptureFixture[str], device: Any, select: str, *options: str) -> HostileRun:
    evidence = tmp / "evidence"
    argv = [str(SUITE), "-q", "-p", "no:cacheprovider", "-p", "no:randomly", "-p", "no:xdist", "-p", "no:benchmark",
            "--hsm-evidence", str(evidence), "-k", select, *options]
    began = time.monotonic()
    rc = int(pytest.main(argv, plugins=[device]))
    return HostileRun(rc, capfd.readouterr().out, evidence, time.monotonic() - began)
