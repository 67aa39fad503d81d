"""Per-rule verdicts, judged only through the rule's checks (model.checks).

Each test record says which checks the test decided from the device's answers and how. Across
the run a check is `fail` if any test failed it, `pass` if some test passed it and none failed
it, `not-run` otherwise. A rule is:

- `pass`     every one of its checks ran and passed;
- `partial`  some ran, none failed, some did not run (`why` names them);
- `fail`     any check failed;
- `observed` none ran, and its tests only reported what the device does (an open behaviour);
- `not-run`  none ran (`why` says whether its tests were skipped, errored or do not exist).

A test marked with a rule gives that rule no credit by itself: only decided checks count.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from hsm_lifecycle.conformance.evidence.modelview import ModelView
from hsm_lifecycle.conformance.evidence.records import TestRecord
from hsm_lifecycle.model.checks import Check, checks_of

Verdict = Literal["pass", "partial", "fail", "not-run", "observed"]
VERDICTS: tuple[Verdict, ...] = ("pass", "partial", "fail", "not-run", "observed")
CheckVerdictName = Literal["pass", "fail", "not-run"]

# How many failing/skipped tests or checks a `why` names before it summarizes the rest.
_WHY_NAMES = 3


@dataclass(frozen=True)
class CheckVerdict:
    id: str
    part: str
    observation: str
    verdict: CheckVerdictName
    why: str
    traces: tuple[str, ...]
    tests: tuple[str, ...]

    def to_summary(self) -> dict[str, object]:
        return {"id": self.id, "verdict": self.verdict, "why": self.why, "traces": list(self.traces)}


@dataclass(frozen=True)
class RuleVerdict:
    id: str
    title: str
    verdict: Verdict
    why: str
    tests: tuple[str, ...]
    traces: tuple[str, ...]
    checks: tuple[CheckVerdict, ...] = ()

    def to_summary(self) -> dict[str, object]:
        """The rule entry of summary.json (architecture.md, exactly these keys)."""
        return {
            "id": self.id,
            "title": self.title,
            "verdict": self.verdict,
            "why": self.why,
            "tests": list(self.tests),
            "traces": list(self.traces),
            "checks": [c.to_summary() for c in self.checks],
        }

    @property
    def judged(self) -> bool:
        return self.verdict in ("pass", "fail")


def check_verdict(check: Check, records: Sequence[TestRecord], rule_records: Sequence[TestRecord]) -> CheckVerdict:
    """One check across every record of the run (a check may be decided by any test)."""
    deciding = [r for r in records if check.id in r.checks]
    failed = [r for r in deciding if r.checks[check.id].get("verdict") == "fail"]
    passed = [r for r in deciding if r.checks[check.id].get("verdict") == "pass"]
    if failed:
        verdict: CheckVerdictName = "fail"
        chosen = failed
        why = "; ".join(dict.fromkeys(f"{r.nodeid}: {r.checks[check.id].get('why', '')}" for r in failed[:_WHY_NAMES]))
    elif passed:
        verdict, chosen, why = "pass", passed, ""
    else:
        verdict, chosen, why = "not-run", [], _not_run_why(rule_records)
    return CheckVerdict(
        id=check.id,
        part=check.part,
        observation=check.observation,
        verdict=verdict,
        why=why,
        traces=tuple(dict.fromkeys(r.trace for r in chosen if r.trace)),
        tests=tuple(dict.fromkeys(r.nodeid for r in chosen)),
    )


def _not_run_why(rule_records: Sequence[TestRecord]) -> str:
    """Why nothing decided a check: what happened to the tests marked with its rule."""
    stopped = [r for r in rule_records if r.outcome in ("skipped", "error", "failed")]
    if stopped:
        return _list_why("not decided", stopped)
    if rule_records:
        return "not decided: no test of this run reached it"
    return "not decided: no test of this run checks this rule"


def rule_verdict(rule_id: str, title: str, records: Sequence[TestRecord], all_records: Sequence[TestRecord] | None = None) -> RuleVerdict:
    """The verdict of one rule from its checks; `records` are the tests marked with the rule
    (or that decided one of its checks), `all_records` every record of the run."""
    everything = list(all_records if all_records is not None else records)
    checks = tuple(check_verdict(c, everything, records) for c in checks_of(rule_id))
    tests = tuple(r.nodeid for r in records)
    traces = tuple(dict.fromkeys(t for c in checks for t in c.traces)) or tuple(dict.fromkeys(r.trace for r in records if r.trace))
    by = {v: [c for c in checks if c.verdict == v] for v in ("pass", "fail", "not-run")}
    if by["fail"]:
        verdict: Verdict = "fail"
        why = _checks_why(f"{len(by['fail'])} of {len(checks)} checks failed", by["fail"])
    elif checks and not by["not-run"]:
        verdict, why = "pass", ""
    elif by["pass"]:
        verdict = "partial"
        why = _checks_why(f"{len(by['not-run'])} of {len(checks)} checks not run", by["not-run"])
    elif records and all(r.outcome == "observed" for r in records):
        verdict = "observed"
        seen = sorted({f"{k}: {v}" for r in records for k, v in r.observations.items()})
        why = "open behaviour, reported not judged" + (f" ({'; '.join(seen)})" if seen else "")
    else:
        verdict = "not-run"
        why = f"none of its {len(checks)} checks ran: " + (_not_run_why(records).removeprefix("not decided: ") if records else "no test of this run checks this rule")
    return RuleVerdict(id=rule_id, title=title, verdict=verdict, why=why, tests=tests, traces=traces, checks=checks)


def rule_verdicts(view: ModelView, records: Iterable[TestRecord]) -> list[RuleVerdict]:
    """One verdict per rule of the catalog, in catalog order; rule ids the catalog does not know
    (a suite marked with a typo) come last and fail, so they cannot go unnoticed."""
    records = list(records)
    known = [r.id for r in view.rules]
    unknown = sorted({rid for rec in records for rid in rec.rules if rid not in known})
    verdicts = []
    for rule in view.rules:
        mine = [r for r in records if rule.id in r.rules or any(c.partition(".")[0] == rule.id for c in r.checks)]
        verdicts.append(rule_verdict(rule.id, rule.title, mine, records))
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


def tool_errors(records: Iterable[TestRecord]) -> list[TestRecord]:
    """Records of tests that broke on the suite's side (an exception that is not a device's
    rule failure, a crash while planning, a Hypothesis health or consistency error)."""
    return [r for r in records if r.outcome == "error"]


def _checks_why(head: str, checks: Sequence[CheckVerdict]) -> str:
    parts = [f"{c.id}: {_first_line(c.why) or c.verdict}" for c in checks[:_WHY_NAMES]]
    more = len(checks) - _WHY_NAMES
    if more > 0:
        parts.append(f"and {more} more")
    return f"{head} ({'; '.join(parts)})"


def _list_why(head: str, records: Sequence[TestRecord]) -> str:
    parts = [f"{r.nodeid}: {_first_line(r.why) or r.outcome}" for r in records[:_WHY_NAMES]]
    more = len(records) - _WHY_NAMES
    if more > 0:
        parts.append(f"and {more} more")
    return f"{head} ({'; '.join(parts)})"


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else ""
