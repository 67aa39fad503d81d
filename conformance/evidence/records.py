"""What the conformance plugin records about each test, for the evidence bundle.

The plugin (conformance.plugin) fills one `TestRecord` per test; the bundle writer
(conformance.evidence.bundle) turns the list into summary.json and report.html.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Literal

Outcome = Literal["passed", "failed", "skipped", "observed", "error"]


@dataclass
class TestRecord:
    __test__ = False  # a record, not a pytest test class, whatever its name

    nodeid: str
    rules: tuple[str, ...]  # rule IDs the test checks ("R01", ...)
    cost: str  # a CostClass value (hsm_lifecycle.model.cost); a plain str when read back
    outcome: Outcome
    why: str = ""  # failure message, skip reason, or what was observed
    trace: str | None = None  # path of the JSON Lines trace, relative to the bundle
    apdus: int = 0
    user_tries_spent: int = 0
    so_tries_spent: int = 0
    transitions: tuple[str, ...] = ()  # model transition ids taken
    states: tuple[str, ...] = ()  # abstract states visited
    observations: dict[str, str] = field(default_factory=dict)  # open behaviour -> what was seen
    duration_s: float = 0.0
    # SO tries the device had left after this test (None: not queried). The bundle reports the
    # last known value as cost.so_tries_left_end: on a real token that is what the run cost.
    so_tries_left: int | None = None
    # The checks (model.checks) the test decided from the device's answers: id -> {verdict, why}.
    checks: dict[str, dict[str, str]] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, line: str) -> "TestRecord":
        raw = json.loads(line)
        for key in ("rules", "transitions", "states"):
            raw[key] = tuple(raw.get(key, ()))
        known = {f.name for f in fields(cls)}
        # Ignore keys a newer writer added, so an older reader still loads the bundle.
        return cls(**{k: v for k, v in raw.items() if k in known})


def append_record(path: Path, record: TestRecord) -> None:
    """Append one record (one JSON line); safe across xdist workers writing their own files."""
    with path.open("a", encoding="utf-8") as fh:
        fh.write(record.to_json() + "\n")


def load_records(path: Path) -> list[TestRecord]:
    if not path.exists():
        return []
    return [TestRecord.from_json(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


RECORDS_PREFIX = "records"


def records_file(evidence_dir: Path, worker: str = "main") -> Path:
    """Where a pytest process (one per xdist worker: gw0, gw1, ...) appends its records."""
    return evidence_dir / f"{RECORDS_PREFIX}-{worker}.jsonl"


def load_evidence_records(evidence_dir: Path) -> list[TestRecord]:
    """Every record the plugin wrote into `evidence_dir`, whatever the worker."""
    records: list[TestRecord] = []
    for path in sorted(evidence_dir.glob(f"{RECORDS_PREFIX}-*.jsonl")):
        records.extend(load_records(path))
    return records
