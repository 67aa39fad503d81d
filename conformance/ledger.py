"""What one test did to the device, for its evidence record: the states and transitions it
walked, the tries it spent, the open behaviours it saw and the checks it decided."""

from __future__ import annotations

from dataclasses import dataclass, field

from hsm_lifecycle.conformance.judging import CheckLog
from hsm_lifecycle.conformance.trace import TraceRecorder
from hsm_lifecycle.model.checks import BY_ID
from hsm_lifecycle.model.oracle import Outcome


@dataclass
class Ledger:
    """What one test did to the device, for its evidence record."""

    transitions: list[str] = field(default_factory=list)
    states: list[str] = field(default_factory=list)
    user_tries_spent: int = 0
    so_tries_spent: int = 0
    observations: dict[str, str] = field(default_factory=dict)
    so_tries_left: int | None = None
    observed_note: str = ""  # set when the test reports an open behaviour instead of a verdict
    rules: list[str] = field(default_factory=list)  # rules the accepted steps exercised (coverage only)
    failed_rules: tuple[str, ...] = ()  # rules of the checks that failed
    failure_trace: TraceRecorder | None = None  # the trace of the last device that failed
    checks: CheckLog = field(default_factory=CheckLog)  # the checks this test decided

    def record_rules(self, failed: bool) -> tuple[str, ...]:
        """For a test without a rule marker (tour, stateful): the rules of the checks it decided
        (failed ones when it failed); a step merely tagged with a rule gives it no credit."""
        decided = {BY_ID[c].rule for c, r in self.checks.results.items() if r.verdict == "fail" or not failed}
        return tuple(sorted(decided))

    def note(self, outcome: Outcome, output: str | None) -> None:
        """A step the device took; `output` None: it never answered (power cut)."""
        for name in (outcome.before.abstract, outcome.next.abstract):
            if name not in self.states:
                self.states.append(name)
        if outcome.transition not in self.transitions:
            self.transitions.append(outcome.transition)
        before, after = outcome.before, outcome.next
        if before.so_tries is not None and after.so_tries is not None and after.so_tries < before.so_tries:
            self.so_tries_spent += before.so_tries - after.so_tries
        if before.is_initialized and after.is_initialized and after.user_tries < before.user_tries:
            self.user_tries_spent += before.user_tries - after.user_tries
        if after.so_tries is not None:
            self.so_tries_left = after.so_tries
        if outcome.open is not None and output is not None:
            from hsm_lifecycle.conformance.observe import normalize

            self.observations[outcome.open] = normalize(outcome.open, output)
