"""The verdict API a test speaks through its device: `checking`, `check`, `decided`,
`precondition`, `fail`, and the open behaviours it reports instead of judging.

A `Judge` is a view over one test's ledger (whose check log holds the verdicts) and its trace
recorder; the device makes one per call, so it always sees the ledger the test run hands it.
Which checks a failure decides is conformance.judging's business.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import NoReturn

from hsm_lifecycle.conformance.judging import checks_to_fail
from hsm_lifecycle.conformance.ledger import Ledger
from hsm_lifecycle.conformance.trace import TraceRecorder
from hsm_lifecycle.model.divergence import Blame
from hsm_lifecycle.model.states import ExtState


class ConformanceFailure(AssertionError):
    """The device answered something the model does not accept (or an invariant broke)."""


@dataclass(frozen=True)
class Judge:
    ledger: Ledger
    recorder: TraceRecorder
    state: ExtState  # the model state a failure is reported in

    def checking(self, ids: tuple[str, ...]) -> AbstractContextManager[None]:
        return self.ledger.checks.scope(ids)

    def fail(self, message: str, checks: tuple[str, ...] = (), blame: Blame | None = None) -> NoReturn:
        """The device broke `checks` (or, from a step, what `blame` and the open scopes decide)."""
        log = self.ledger.checks
        failed = checks_to_fail(log.known(tuple(checks)), blame, log.scoped())
        why = message.strip().splitlines()[0] if message.strip() else message
        for cid in failed:
            log.failed(cid, why)
        self.ledger.failed_rules = log.failed_rules
        self.ledger.failure_trace = self.recorder  # hypothesis runs the minimal failing example last
        raise ConformanceFailure(f"{message}\nmodel state: {self.state}\nAPDU trace (last 40 exchanges):\n{self.recorder.render(40)}")

    def decided(self, checks: tuple[str, ...]) -> None:
        """Every observation that decides `checks` was made and matched: they pass."""
        for cid in self.ledger.checks.known(checks):
            self.ledger.checks.passed(cid)

    def precondition(self, condition: bool, message: str, checks: tuple[str, ...]) -> None:
        """What `checks` build on held (else they fail); decides nothing by itself."""
        if not condition:
            self.fail(message, checks)

    def check(self, condition: bool, message: str, checks: tuple[str, ...]) -> None:
        """Decide `checks` on a condition read from the device: pass now, or fail them."""
        self.precondition(condition, message, checks)
        self.decided(checks)

    def observe(self, behaviour: str, value: str) -> None:
        """An open behaviour seen on the device: recorded, never judged."""
        self.ledger.observations[behaviour] = value

    def observed(self, note: str) -> None:
        """The test reports what it saw (outcome "observed") instead of a pass/fail verdict."""
        self.ledger.observed_note = note
