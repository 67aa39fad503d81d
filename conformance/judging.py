"""Which checks (model.checks) a test decided, and how: the record behind every rule verdict.

A test opens a scope naming the checks its next steps decide (`with hsm.checking("R02.x"):`).
The scope passes its checks when every step in it got the answer the model expects; a step whose
answer differs fails checks chosen by what diverged (model.divergence): the blamed checks, or the
scope's own checks of the same rule, or, when only the status word differs, the scope's checks.
A check nobody decided stays `not-run`: no rule gets credit from a step merely tagged with it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Literal

from hsm_lifecycle.model.checks import BY_ID, unknown_check
from hsm_lifecycle.model.divergence import STATUS_WORD, Blame

CheckVerdict = Literal["pass", "fail"]


class UnknownCheck(Exception):
    """A test names a check the catalog does not have: a suite bug, reported as a tool error."""


@dataclass(frozen=True, slots=True)
class CheckResult:
    verdict: CheckVerdict
    why: str = ""


@dataclass
class CheckLog:
    results: dict[str, CheckResult] = field(default_factory=dict)
    scopes: list[tuple[str, ...]] = field(default_factory=list)

    @staticmethod
    def known(ids: tuple[str, ...]) -> tuple[str, ...]:
        for cid in ids:
            problem = unknown_check(cid)
            if problem:
                raise UnknownCheck(problem)
        return ids

    def scoped(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(c for scope in self.scopes for c in scope))

    @contextmanager
    def scope(self, ids: tuple[str, ...]) -> Iterator[None]:
        self.scopes.append(self.known(ids))
        try:
            yield
        finally:
            self.scopes.pop()
        for cid in ids:  # reached only when every step in the scope was accepted
            self.passed(cid)

    def passed(self, cid: str) -> None:
        if cid not in self.results:
            self.results[cid] = CheckResult("pass")

    def failed(self, cid: str, why: str) -> None:
        self.results[cid] = CheckResult("fail", why)

    def to_record(self) -> dict[str, dict[str, str]]:
        return {cid: {"verdict": r.verdict, "why": r.why} for cid, r in sorted(self.results.items())}

    @property
    def failed_rules(self) -> tuple[str, ...]:
        return tuple(sorted({BY_ID[c].rule for c, r in self.results.items() if r.verdict == "fail"}))


def checks_to_fail(explicit: tuple[str, ...], blame: Blame | None, scoped: tuple[str, ...]) -> tuple[str, ...]:
    """The checks a failure decides (see the module docstring)."""
    if explicit:
        return explicit
    if blame is None:
        return scoped
    if blame.variable == STATUS_WORD or not blame.checks:
        return scoped or blame.checks
    rules = {BY_ID[c].rule for c in blame.checks}
    same_rule = tuple(c for c in scoped if BY_ID[c].rule in rules)
    return same_rule or blame.checks
