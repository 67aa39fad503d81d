"""summary.json: the machine-readable verdicts of a campaign (architecture.md, "Evidence bundle").

The keys are exactly the schema's, plus `complete`: false when the run was interrupted, and then
the overall verdict is never "pass" (a partial run proves nothing about the rules it did not reach).

Overall verdict: `fail` if any rule failed; else `error` if the suite itself broke (a test that
failed without failing a check of the catalog, an exception in the suite); else `pass` only if
the run completed and every rule of the catalog was judged and passed; else `partial`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from hsm_lifecycle.conformance.evidence.modelview import ModelView
from hsm_lifecycle.conformance.evidence.records import TestRecord
from hsm_lifecycle.conformance.evidence.verdicts import RuleVerdict, rule_verdicts, tool_errors
from hsm_lifecycle.model.applicability import out_of_scope, resolved_from_report

SCHEMA = "hsm-lifecycle/evidence/2"
TARGET_KEYS = ("kind", "reader", "serial", "version", "profile")
# Kept when present: a fleet run (one token per xdist worker) names the worker that drove it.
OPTIONAL_TARGET_KEYS = ("worker",)


@dataclass(frozen=True)
class Coverage:
    covered_states: tuple[str, ...]
    missed_states: tuple[str, ...]
    covered_transitions: tuple[str, ...]
    missed_transitions: tuple[str, ...]
    # Transitions the device's observed profile rules out -> why (model.applicability).
    out_of_scope: tuple[tuple[str, str], ...] = ()

    @classmethod
    def of(cls, view: ModelView, records: Sequence[TestRecord], open_behaviours: Mapping[str, object] | None = None) -> "Coverage":
        seen_states = {s for r in records for s in r.states}
        seen_transitions = {t for r in records for t in r.transitions}
        scope = out_of_scope(resolved_from_report({str(k): str(v) for k, v in (open_behaviours or {}).items()}))
        # Only what the model knows counts: a state name the model lacks is not coverage of it.
        return cls(
            covered_states=tuple(s for s in view.states if s in seen_states),
            missed_states=tuple(s for s in view.states if s not in seen_states),
            covered_transitions=tuple(t.id for t in view.transitions if t.id in seen_transitions),
            missed_transitions=tuple(t.id for t in view.transitions if t.id not in seen_transitions and t.id not in scope),
            out_of_scope=tuple((t.id, scope[t.id]) for t in view.transitions if t.id in scope and t.id not in seen_transitions),
        )

    def to_summary(self) -> dict[str, dict[str, int]]:
        return {
            "states": {"covered": len(self.covered_states), "total": len(self.covered_states) + len(self.missed_states)},
            "transitions": {
                "covered": len(self.covered_transitions),
                "applicable": len(self.covered_transitions) + len(self.missed_transitions),
                "total": len(self.covered_transitions) + len(self.missed_transitions) + len(self.out_of_scope),
            },
        }


@dataclass(frozen=True)
class RunCost:
    """What the run cost the device (summary.json "cost"): APDUs, tries spent, SO tries left."""

    apdus: int
    user_tries_spent: int
    so_tries_spent: int
    so_tries_left_end: int | None  # None: nobody asked the device at the end
    fresh_per_test: bool = False  # the in-process emulator: no device lives to "the end"
    custody: Mapping[str, Any] | None = None  # a guarded token's counters before/after (conformance.custody)

    @classmethod
    def of(cls, records: Sequence[TestRecord], so_tries_left_end: int | None = None, *, fresh_per_test: bool = False,
           custody: Mapping[str, Any] | None = None) -> "RunCost":
        if fresh_per_test:
            so_tries_left_end = None  # each test had a token of its own: no count is the run's
        elif so_tries_left_end is None:
            known = [r.so_tries_left for r in records if r.so_tries_left is not None]
            so_tries_left_end = known[-1] if known else None
        return cls(
            apdus=sum(r.apdus for r in records),
            user_tries_spent=sum(r.user_tries_spent for r in records),
            so_tries_spent=sum(r.so_tries_spent for r in records),
            so_tries_left_end=so_tries_left_end,
            fresh_per_test=fresh_per_test,
            custody=custody,
        )

    def to_summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "apdus": self.apdus,
            "user_tries_spent": self.user_tries_spent,
            "so_tries_spent": self.so_tries_spent,
            "so_tries_left_end": self.so_tries_left_end,
            "measured_from": "suite steps (a fresh token per test)" if self.fresh_per_test else "suite steps",
        }
        before = (self.custody or {}).get("before")
        after = (self.custody or {}).get("after")
        if before and after:
            # What the token itself says it lost, from its counters (free queries) before and after;
            # what the tests spent on the way, and the custody gave back, is kept beside it.
            def lost(key: str) -> int | None:
                b, a = before.get(key), after.get(key)
                return max(0, b - a) if b is not None and a is not None else None

            out.update(
                user_tries_spent=lost("user_tries"),
                so_tries_spent=lost("so_tries"),
                so_tries_left_end=after.get("so_tries"),
                measured_from="device counters",
                tries_spent_and_restored={"user": self.user_tries_spent, "so": self.so_tries_spent},
                counters={"before": dict(before), "after": dict(after)},
                owner_pins_in_place=bool(self.custody.get("owner_pins_in_place")),  # type: ignore[union-attr]
            )
        if self.custody is not None and self.custody.get("message"):
            out["custody"] = str(self.custody["message"])
        elif self.custody is not None:
            out.update(measured_from="unknown: the token's counters could not be read at the end",
                       owner_pins_in_place=bool(self.custody.get("owner_pins_in_place")))
        return out


@dataclass(frozen=True)
class Summary:
    target: dict[str, str]
    started: str
    duration_s: float
    rules: tuple[RuleVerdict, ...]
    coverage: Coverage
    cost: RunCost
    open_behaviours: dict[str, str]
    complete: bool
    errors: tuple[str, ...] = ()  # tests that broke on the suite's side: "nodeid: why"
    plan: Mapping[str, Any] | None = None  # the campaign plan on a persistent token, with what the device changed

    @property
    def verdict(self) -> str:
        """fail > error > partial > pass (module docstring)."""
        if any(r.verdict == "fail" for r in self.rules):
            return "fail"
        if self.errors:
            return "error"
        if self.complete and self.rules and all(r.verdict == "pass" for r in self.rules):
            return "pass"
        return "partial"

    @property
    def headline(self) -> str:
        return headline_of(self.to_json_dict(), errors=len(self.errors))

    def to_json_dict(self) -> dict[str, object]:
        return {
            "schema": SCHEMA,
            "target": dict(self.target),
            "started": self.started,
            "duration_s": round(self.duration_s, 3),
            "rules": [r.to_summary() for r in self.rules],
            "coverage": self.coverage.to_summary(),
            "cost": self.cost.to_summary(),
            "plan": dict(self.plan) if self.plan else {"segments": [], "firmware_updates": 0, "changed_by_device": False},
            "open_behaviours": dict(self.open_behaviours),
            "verdict": self.verdict,
            "complete": self.complete,
        }


def build_summary(
    view: ModelView,
    records: Sequence[TestRecord],
    *,
    target: Mapping[str, object],
    started: datetime | str,
    duration_s: float,
    open_behaviours: Mapping[str, object],
    complete: bool = True,
    so_tries_left_end: int | None = None,
    custody: Mapping[str, Any] | None = None,
    plan: Mapping[str, Any] | None = None,
) -> Summary:
    return Summary(
        target=normalize_target(target),
        started=iso_time(started),
        duration_s=float(duration_s),
        rules=tuple(rule_verdicts(view, records)),
        coverage=Coverage.of(view, records, open_behaviours),
        cost=RunCost.of(records, so_tries_left_end, fresh_per_test=fresh_token_per_test(target), custody=custody),
        open_behaviours={str(k): str(v) for k, v in sorted(open_behaviours.items())},
        complete=complete,
        errors=tuple(f"{r.nodeid}: {r.why.strip().splitlines()[0] if r.why.strip() else 'error'}" for r in tool_errors(records)),
        plan=plan,
    )


def headline_of(doc: Mapping[str, object], errors: int | None = None) -> str:
    """One line from a summary.json document: the verdict and what keeps it from `pass`."""
    rules = [r for r in doc.get("rules", ()) if isinstance(r, Mapping)]  # type: ignore[union-attr]
    verdict = str(doc.get("verdict", "error"))
    parts = [verdict.upper()]
    failed = [str(r.get("id")) for r in rules if r.get("verdict") == "fail"]
    if failed:
        parts.append(f"{len(failed)} of {len(rules)} rules failed ({', '.join(failed)})")
    if verdict == "error" or errors:
        parts.append(f"{errors or 'some'} test(s) broke on the suite's side, not the device's (see the report)")
    rest = [r for r in rules if r.get("verdict") not in ("pass", "fail")]
    if rest:
        checks = sum(1 for r in rules for c in r.get("checks", ()) if c.get("verdict") == "not-run")  # type: ignore[union-attr]
        parts.append(f"{len(rest)} of {len(rules)} rules not fully judged, {checks} checks not run")
    if doc.get("complete") is False:
        parts.append("the run did not reach its end")
    return "; ".join(parts)


def fresh_token_per_test(target: Mapping[str, object]) -> bool:
    """The in-process emulator (a fresh token for every test), told by how it describes itself."""
    from hsm_lifecycle.conformance.transport.inprocess import READER

    return target.get("kind") == "emulator" and target.get("reader") == READER


def normalize_target(target: Mapping[str, object]) -> dict[str, str]:
    """Exactly the schema's five target keys, empty when unknown, plus the fleet worker when there
    is one (the plugin's session notes in the bundle keep whatever else the transport said)."""
    out = {key: "" if target.get(key) is None else str(target.get(key)) for key in TARGET_KEYS}
    out.update({key: str(target[key]) for key in OPTIONAL_TARGET_KEYS if target.get(key)})
    return out


def iso_time(value: datetime | str) -> str:
    if isinstance(value, str):
        return value
    if value.tzinfo is None:
        value = value.astimezone()  # a naive time is the local clock's
    return value.astimezone(timezone.utc).isoformat(timespec="seconds")
