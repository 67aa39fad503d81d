"""What each conformance test costs on a fresh emulated token: APDUs by INS, tries spent, and
the checks it decided.

The campaign planner (conformance.campaign) prices each planned check with these figures and the
per-command latency table (docs/latency.md) to estimate a run on a Nitrokey HSM 2. The stateful
test runs as many examples as on a real token (10). `python -m bench.check_costs` rewrites
conformance/data/check-costs.json.
"""

from __future__ import annotations

import contextlib
import io
import json
import tempfile
import time
from pathlib import Path

import pytest

from hsm_lifecycle.conformance.campaign import COSTS_EXAMPLES, COSTS_FILE, ins_histogram, test_name

SUITE = Path(__file__).resolve().parents[1] / "conformance" / "suite"
QUIET = ("-p", "no:cacheprovider", "-p", "no:terminal", "-o", "addopts=")
REAL_TOKEN_EXAMPLES = COSTS_EXAMPLES


def measure(work: Path) -> dict:
    evidence = work / "evidence"
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        rc = int(pytest.main([str(SUITE), *QUIET, "--hsm-evidence", str(evidence), f"--hsm-examples={REAL_TOKEN_EXAMPLES}"]))
    tests = {}
    for line in (evidence / "records.jsonl").read_text().splitlines():
        if not line.strip():
            continue
        record = json.loads(line)
        trace = evidence / record["trace"] if record.get("trace") else None
        lines = [json.loads(t) for t in trace.read_text().splitlines() if t.strip()] if trace and trace.exists() else []
        tests[test_name(record["nodeid"])] = {
            "apdus": record["apdus"],
            "user_tries": record["user_tries_spent"],
            "so_tries": record["so_tries_spent"],
            "ins": ins_histogram(lines),
            # The checks it decided on a fresh token: where a test has no walk(decides=...) the
            # planner places these checks with it.
            "checks": sorted(record.get("checks", {})),
        }
    return {"exit_status": rc, "tests": dict(sorted(tests.items()))}


def main() -> None:
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-check-costs-") as tmp:
        figures = measure(Path(tmp))
    doc = {
        "what": "per test on a fresh in-process emulated token: APDUs, tries spent, command APDUs by INS "
        "('20q': VERIFY without data); made by python -m bench.check_costs",
        "tests": figures["tests"],
    }
    COSTS_FILE.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    print(f"{len(doc['tests'])} tests measured in {time.perf_counter() - began:.1f} s (suite exit {figures['exit_status']}) -> {COSTS_FILE}")


if __name__ == "__main__":
    main()
