"""Per-rule verdicts, derived from the records of the tests marked with each rule.

A rule fails if any of its tests failed or errored; passes if at least one test passed and none
failed; is `observed` if its tests only reported observations (open behaviours); is `not-run`
if no test ran it (none exists, or all were skipped: `why` says which).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from hsm_lifecycle.conformance.evidence.modelview import ModelView
from hsm_lifecycle.conformance.evidence.records import TestRecord

Verdict = Literal["pass", "fail", "not-run", "observed"]
VERDICTS: tuple[Verdict, ...] = ("pass", "fail", "not-run", "observed")

# How many failing/skipped tests a `why` names before it summarizes the rest.
_WHY_NAMES = 3


@dataclass(frozen=True)
class RuleVerdict:
    id: str
    title: str
    verdict: Verdict
    why: str
    tests: tuple[str, ...]
    traces: tuple[str, ...]

    def to_summary(self) -> dict[str, object]:
        """The rule entry of summary.json (architecture.md, exactly these keys)."""
        return {
            "id": self.id,
            "title": self.title,
            "verdict": self.verdict,
            "why": self.why,
            "tests": list(self.tests),
            "traces": list(self.traces),
        }


def rule_verdict(rule_id: str, title: str, records: Sequence[TestRecord]) -> RuleVerdict:
    """The verdict of one rule from the records of the tests that check it."""
    tests = tuple(r.nodeid for r in records)
    traces = tuple(dict.fromkeys(r.trace for r in records if r.trace))
    by_outcome = {o: [r for r in records if r.outcome == o] for o in ("passed", "failed", "error", "skipped", "observed")}
    broken = by_outcome["failed"] + by_outcome["error"]
    skipped = by_outcome["skipped"]

    if broken:
        verdict: Verdict = "fail"
        why = _list_why(f"{len(broken)} of {len(records)} tests failed", broken)
    elif by_outcome["passed"]:
        verdict = "pass"
        why = _list_why(f"partly checked: {len(skipped)} of {len(records)} tests skipped", skipped) if skipped else ""
    elif by_outcome["observed"]:
        verdict = "observed"
        seen = sorted({f"{k}: {v}" for r in by_outcome["observed"] for k, v in r.observations.items()})
        why = "open behaviour, reported not judged" + (f" ({'; '.join(seen)})" if seen else "")
    elif skipped:
        verdict = "not-run"
        why = _list_why(f"all {len(skipped)} tests skipped", skipped)
    else:
        verdict = "not-run"
        why = "no test of this run checks this rule"
    return RuleVerdict(id=rule_id, title=title, verdict=verdict, why=why, tests=tests, traces=traces)


def rule_verdicts(view: ModelView, records: Iterable[TestRecord]) -> list[RuleVerdict]:
    """One verdict per rule of the catalog, in catalog order; rule ids the catalog does not know
    (a suite marked with a typo) come last and fail, so they cannot go unnoticed."""
    records = list(records)
    known = [r.id for r in view.rules]
    unknown = sorted({rid for rec in records for rid in rec.rules if rid not in known})
    verdicts = []
    for rule in view.rules:
        verdicts.append(rule_verdict(rule.id, rule.title, [r for r in records if rule.id in r.rules]))
    for rid in unknown:
        mine = [r for r in records if rid in r.rules]
        verdicts.append(
            RuleVerdict(
                id=rid,
                title="",
                verdict="fail",
                why=f"tests are marked with {rid}, which is not in the model's rule catalog",
                tests=tuple(r.nodeid for r in mine),
                traces=tuple(dict.fromkeys(r.trace for r in mine if r.trace)),
            )
        )
    return verdicts


def _list_why(head: str, records: Sequence[TestRecord]) -> str:
    parts = [f"{r.nodeid}: {_first_line(r.why) or r.outcome}" for r in records[:_WHY_NAMES]]
    more = len(records) - _WHY_NAMES
    if more > 0:
        parts.append(f"and {more} more")
    return f"{head} ({'; '.join(parts)})"


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else ""
