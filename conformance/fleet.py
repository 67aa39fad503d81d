"""Many tokens in one run: pytest-xdist with one token per worker.

`pytest -n N` over N PC/SC readers (`--hsm-target pcsc --hsm-reader A --hsm-reader B ...`) or N
vpcd emulators (`--hsm-target emulator:vpcd -n N`) is a fleet. The mapping is by worker id and
stable: worker gwK drives token K (the K-th `--hsm-reader`; for vpcd emulators, an emulator of
its own on the K-th vpcd port when it is free, else the next free one). Every worker runs the
whole selection on its own token (`--dist each`): each token gets a complete campaign and its
own evidence bundle, and all tests of a token run on its worker, so a token is never shared.

Why not `--dist loadgroup` with an `xdist_group` per token: it keeps a group on one worker but
runs each test once (a token would see only part of the suite), and it does not say which
worker gets which group, so the mapping would change from run to run.

Consent is per token: `--hsm-serial` may be repeated, and a token whose serial (read from the
token before any APDU that could change it) is not listed runs only what needs no consent.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest

from hsm_lifecycle.conformance.interlocks import WHY_IRREVERSIBLE, Consent
from hsm_lifecycle.model.cost import CostClass
from hsm_lifecycle.conformance.options import HsmOptions, TargetSpec

WORKER_PREFIX = "gw"
TOKEN_KEY = "hsm_token"  # a worker's session notes about its token, sent in xdist's workeroutput
_WORKER_RE = re.compile(r"gw(\d+)")


def worker_index(worker: str) -> int:
    """gw0 -> 0, gw3 -> 3; ValueError for anything else."""
    match = _WORKER_RE.fullmatch(worker)
    if match is None:
        raise ValueError(f"{worker!r} is not a pytest-xdist worker id (gw0, gw1, ...)")
    return int(match.group(1))


@dataclass(frozen=True)
class Slot:
    """Token K of the fleet and the worker that drives it."""

    index: int
    target: TargetSpec

    @property
    def worker(self) -> str:
        return f"{WORKER_PREFIX}{self.index}"

    def label(self) -> str:
        if self.target.kind == "pcsc":
            return f"pcsc:{self.target.reader}"
        if self.target.reader:
            return f"emulator:vpcd on reader '{self.target.reader}'"
        return f"emulator:vpcd, its own emulator on vpcd port #{self.index + 1} (or the next free one)"


@dataclass(frozen=True)
class Fleet:
    slots: tuple[Slot, ...]
    serials: tuple[str, ...] = ()

    @classmethod
    def of(cls, options: HsmOptions) -> "Fleet":
        """The fleet of a run whose options say it is one (`options.fleet`)."""
        if not options.fleet:
            raise ValueError(f"--hsm-target {options.target} with {options.workers} xdist workers is no fleet")
        readers: tuple[str | None, ...] = options.readers or (None,) * options.workers
        slots = tuple(Slot(i, replace(options.target, reader=reader, slot=i)) for i, reader in enumerate(readers))
        return cls(slots, options.serials)

    def slot(self, worker: str) -> Slot:
        index = worker_index(worker)
        if index >= len(self.slots):
            # xdist names a replacement for a crashed worker gwN (N = workers + ...); the plugin
            # sets --max-worker-restart 0 for a fleet so that never happens unnoticed.
            raise ValueError(f"xdist worker {worker} has no token: the fleet has {len(self.slots)} (gw0..gw{len(self.slots) - 1})")
        return self.slots[index]

    def options_for(self, options: HsmOptions, slot: Slot) -> HsmOptions:
        """The options as the worker of `slot` sees them: its own token, one reader."""
        return replace(options, target=slot.target, readers=(slot.target.reader,) if slot.target.reader else ())

    def serials_not_found(self, seen: list[str]) -> list[str]:
        """Listed serials that no token of the fleet had (a typo, or a token left out)."""
        have = {s.strip().upper() for s in seen if s}
        return [s for s in self.serials if s.strip().upper() not in have]

    def check_readers(self, available: list[str]) -> None:
        """Two --hsm-reader substrings that pick the same reader would be one token for two
        workers: refuse up front (ValueError). A substring that matches no reader is left to
        its worker, which fails that token's tests with the reason."""
        from hsm_lifecycle.conformance.transport.base import TransportError
        from hsm_lifecycle.conformance.transport.pcsc import select_reader

        picked: dict[str, str] = {}
        for slot in self.slots:
            try:
                reader = select_reader(available, slot.target.reader or "")
            except TransportError:
                continue
            if reader in picked:
                raise ValueError(
                    f"--hsm-reader {picked[reader]!r} and {slot.target.reader!r} both pick reader {reader!r}: "
                    "one reader per token, named so that each substring matches one reader only."
                )
            picked[reader] = slot.target.reader or ""

    def header(self) -> list[str]:
        kind = "reader" if self.slots[0].target.kind == "pcsc" else "vpcd emulator"
        lines = [
            f"hsm fleet: {len(self.slots)} tokens, one {kind} per xdist worker; every token runs the whole selection (--dist each)"
        ]
        lines += [f"  {slot.worker} -> {slot.label()}" for slot in self.slots]
        if self.slots[0].target.guarded:
            listed = ", ".join(self.serials) if self.serials else "none"
            lines.append(f"  consent to wipe (--hsm-serial): {listed}; a token not listed runs only free and tries tests")
        return lines


@dataclass
class TokenConsent(Consent):
    """One fleet token's consent. Until the token's serial is read, a `wipes` test is not
    refused up front when some serial is listed (it may be this token's); the APDU ceiling stays
    at `tries` until the serial matched, and once it is known a token that is not listed
    refuses every test above `tries` (the plugin skips them before they start)."""

    listed: tuple[str, ...] = ()
    seen: str | None = field(default=None)  # the token's serial once read ("" if unreadable)

    def skip_reason(self, cost: CostClass) -> str | None:
        pending = self.guarded and self.seen is None and self.listed
        if pending and cost == CostClass.WIPES:
            return None
        if pending and cost == CostClass.IRREVERSIBLE:
            return None if self.allow_irreversible else WHY_IRREVERSIBLE
        reason = super().skip_reason(cost)
        unlisted = self.listed and self.seen is not None and not self.serial_confirmed
        if reason and unlisted and cost in (CostClass.WIPES, CostClass.IRREVERSIBLE):
            return (
                f"cost class '{cost.value}' needs this token's serial ({self.seen or 'unreadable'}) among --hsm-serial "
                f"({', '.join(self.listed)}); it is not, so this token runs only free and tries tests"
            )
        return reason

    def confirm_serial(self, device_serial: str) -> None:
        """Never stops the run: an unlisted token is simply not consented to (its siblings are)."""
        self.seen = device_serial.strip()
        wanted = {s.strip().upper() for s in self.listed}
        match = self.guarded and bool(self.seen) and self.seen.upper() in wanted
        self.serial = self.seen if match else None
        self.serial_confirmed = match

    @property
    def state(self) -> str:
        """For the combined summary: what this token was consented to."""
        if not self.guarded:
            return "emulator: every cost class"
        if self.seen is None:
            return "serial not read"
        return "serial listed: wipes allowed" if self.serial_confirmed else "serial not listed: free and tries only"


@dataclass(eq=False)  # pytest keeps plugins in sets: identity hashing
class FleetWatch:
    """The controller's view of a fleet run (a pytest plugin object there): each worker's notes
    about its token (sent when the worker finishes), crashed workers, test outcomes per worker,
    and the table at the end of the terminal output."""

    fleet: Fleet
    notes: dict[str, dict[str, Any]] = field(default_factory=dict)
    crashed: dict[str, str] = field(default_factory=dict)
    outcomes: dict[str, Counter[str]] = field(default_factory=dict)
    bundles: dict[str, dict[str, Any]] = field(default_factory=dict)  # worker -> combined-summary entry
    combined: Path | None = None
    verdict: str | None = None

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: object) -> None:
        worker = node.workerinput["workerid"]
        notes = getattr(node, "workeroutput", {}).get(TOKEN_KEY)
        if notes:
            self.notes[worker] = notes
        if error:
            self.crashed[worker] = str(error)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        worker = getattr(getattr(report, "node", None), "workerinput", {}).get("workerid")
        if worker is None:
            return
        if report.when == "call":
            outcome = report.outcome
        elif report.skipped:
            outcome = "skipped"  # in setup: an interlock, a missing option
        elif report.failed:
            outcome = "error"
        else:
            return
        self.outcomes.setdefault(worker, Counter())[outcome] += 1

    def finished(self, worker: str) -> bool:
        """The worker ran its whole selection: it did not crash and its session ended normally."""
        notes = self.notes.get(worker)
        return worker not in self.crashed and notes is not None and notes.get("exitstatus") in (0, 1)

    def lines(self) -> list[str]:
        out = []
        for slot in self.fleet.slots:
            notes = self.notes.get(slot.worker, {})
            target = notes.get("target", {})
            where = target.get("reader") or slot.target.reader or slot.target.kind
            serial = target.get("serial") or "not read"
            counts = self.outcomes.get(slot.worker, Counter())
            tally = ", ".join(f"{counts[k]} {k}" for k in ("passed", "failed", "error", "skipped") if counts[k]) or "no tests"
            line = f"{slot.worker} -> {where} (serial {serial}): {tally}"
            if slot.worker in self.crashed:
                line += f"; worker crashed: {self.crashed[slot.worker]}"
            entry = self.bundles.get(slot.worker)
            if entry is not None:
                line += f"; verdict {entry['verdict']}" + ("" if entry["complete"] else " (incomplete)") + f"; bundle {entry['bundle']}/"
            out.append(line)
        if self.verdict is not None and self.combined is not None:
            passed = sum(1 for e in self.bundles.values() if e["verdict"] == "pass")
            out.append(f"fleet verdict: {self.verdict} ({passed} of {len(self.fleet.slots)} tokens passed); {self.combined}")
        return out

    def plans(self) -> list[str]:
        """Each token's campaign plan (--hsm-plan), in worker order."""
        return [str(self.notes[s.worker]["plan"]) for s in self.fleet.slots if "plan" in self.notes.get(s.worker, {})]

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        for text in self.plans():
            terminalreporter.section("campaign plan")
            for line in text.splitlines():
                terminalreporter.write_line(line)
        terminalreporter.section("hsm fleet: one token per xdist worker")
        for line in self.lines():
            terminalreporter.write_line(line)
