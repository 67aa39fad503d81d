"""The DKEK sub-model (R23): key backup, beside the lifecycle machine.

The lifecycle's abstract alphabet has no DKEK commands (a wrapped blob is data, not a status
word), so R23 has its own small machine over two extended variables: the number of DKEK shares
the last INITIALIZE announced (tag 92; None = no DKEK) and the shares imported since. Which DKEK
a token holds is named by the shares that made it, so "the same DKEK" is decidable without its
bytes. The conformance check for R23 (conformance/suite/test_r23_*) drives a token with these
transitions as its oracle; `doctor` asks `backup_possible` before a re-initialization.

| id | command | guard | effect | answer |
|---|---|---|---|---|
| K01 | initialize(shares n) | — | announced = n, imported = () (the old DKEK is gone) | 9000 |
| K02 | dkek_status | no DKEK | — | refused |
| K03 | dkek_status | DKEK | — | n, n − imported |
| K04 | import_share(s) | shares outstanding | imported += s | 9000 |
| K05 | import_share(s) | no DKEK, or none outstanding | — | refused |
| K06 | wrap | DKEK complete, key present | the blob names the DKEK | 9000 |
| K07 | wrap | no DKEK, or shares outstanding | — | refused |
| K08 | unwrap(blob) | DKEK complete, blob under this DKEK | a key is added | 9000 |
| K09 | unwrap(blob) | no DKEK, outstanding, or another DKEK | — | refused |
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, replace

_random_dkeks = itertools.count(1)  # tag 92 = 0: the card draws a DKEK nobody else holds


@dataclass(frozen=True, slots=True)
class DkekState:
    """The DKEK variables of one token."""

    announced: int | None = None  # tag 92 of the last INITIALIZE; None = no DKEK
    imported: tuple[str, ...] = ()  # the shares imported since, by name
    random: int = 0  # tag 92 = 0: which random DKEK the card drew

    @property
    def outstanding(self) -> int:
        return 0 if self.announced is None else max(self.announced - len(self.imported), 0)

    @property
    def complete(self) -> bool:
        """Keys may leave and enter wrapped (R23)."""
        return self.announced is not None and self.outstanding == 0

    @property
    def identity(self) -> tuple[str, ...] | None:
        """Which DKEK this is: the shares that made it (order does not matter: they are XORed)."""
        if not self.complete:
            return None
        return (f"random-{self.random}",) if self.announced == 0 else tuple(sorted(self.imported))


@dataclass(frozen=True, slots=True)
class Expected:
    """What the sub-model expects of one DKEK command."""

    transition: str
    ok: bool  # 9000; otherwise any refusal
    next: DkekState
    status: tuple[int, int] | None = None  # dkek_status: (shares, outstanding)


def initialize(state: DkekState, shares: int | None) -> Expected:
    """K01: INITIALIZE (right SO-PIN) wipes the DKEK with the keys and announces `shares`."""
    random = next(_random_dkeks) if shares == 0 else 0
    return Expected("K01", True, DkekState(shares, (), random))


def dkek_status(state: DkekState) -> Expected:
    if state.announced is None:
        return Expected("K02", False, state)
    return Expected("K03", True, state, (state.announced, state.outstanding))


def import_share(state: DkekState, share: str) -> Expected:
    if state.announced is None or state.outstanding == 0:
        return Expected("K05", False, state)
    return Expected("K04", True, replace(state, imported=(*state.imported, share)))


def wrap(state: DkekState, key_present: bool) -> Expected:
    if not state.complete:
        return Expected("K07", False, state)
    return Expected("K06", key_present, state)


def unwrap(state: DkekState, blob_dkek: tuple[str, ...] | None) -> Expected:
    if not state.complete or blob_dkek is None or blob_dkek != state.identity:
        return Expected("K09", False, state)
    return Expected("K08", True, state)


def backup_possible(state: DkekState) -> bool:
    """Whether the keys on a token in `state` can be exported before a re-initialization."""
    return state.complete
