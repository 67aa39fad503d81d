"""pytest plugin for the hsm-lifecycle conformance suite: options, targets, interlocks, evidence.

Registered by the `pytest11` entry point and by the root conftest. Nothing touches a device
until a test asks for the `hsm` (or `hsm_run`) fixture, so the project's other tests pay nothing.

Per session: the target is opened once; on a real token its serial is read (free) and compared
with --hsm-serial before any state-changing APDU, its state is read, and the open behaviours are
observed within the user's consent. Per test: a `Device` with its own APDU trace, the cost class
of the `cost` marker, a `TestRecord` appended to the evidence directory (one file per xdist
worker) and a `rule-id` JUnit property. At session finish the bundle writer turns the records
into the evidence bundle.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

import pytest

from conformance.evidence.records import TestRecord, append_record, load_evidence_records, records_file
from conformance.interlocks import Consent, Cost, SerialMismatch
from conformance.options import HsmOptions, add_options, from_config
from conformance.trace import TraceRecorder

SUITE_KEY = pytest.StashKey["Suite"]()
RUN_KEY = pytest.StashKey["TestRun"]()
REPORTS_KEY = pytest.StashKey[dict]()

TRACES_DIR = "traces"
SESSION_PREFIX = "session"
TRACE_SECTION_LINES = 200


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "rule(*ids): the lifecycle rules (R01..R21) a conformance test checks")
    config.addinivalue_line("markers", "cost(klass): cost class on a real token (free, tries, wipes, irreversible, operator)")
    try:
        options = from_config(config)
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from None
    workers = getattr(config.option, "numprocesses", None)
    one_device = options.target.kind == "pcsc" or bool(options.emulator_state)
    if workers and one_device and not hasattr(config, "workerinput"):
        raise pytest.UsageError(f"--hsm-target {options.target} is one device, which xdist workers cannot share: run without -n.")
    suite = Suite(config, options)
    config.stash[SUITE_KEY] = suite
    if suite.evidence is not None and suite.is_controller:
        suite.clear_evidence()


def pytest_unconfigure(config: pytest.Config) -> None:
    """Release the device (a real token is held exclusively; the vpcd emulator is stopped)."""
    suite = config.stash.get(SUITE_KEY, None)
    if suite is not None:
        suite.close()


def pytest_report_header(config: pytest.Config) -> str | None:
    suite = config.stash.get(SUITE_KEY, None)
    if suite is None:
        return None
    o = suite.options
    consent = "serial " + (o.serial or "not given (no wipes)") if o.target.guarded else "every cost class (emulator)"
    return f"hsm target: {o.target}; {consent}; SO floor {o.so_floor}"


# ---------------------------------------------------------------------------------------------
# Markers: cost classes decide up front what may run on this target


def marked_rules(item: pytest.Item) -> tuple[str, ...]:
    ids: list[str] = []
    for mark in item.iter_markers("rule"):
        ids.extend(str(a) for a in mark.args)
    return tuple(dict.fromkeys(sorted(ids)))


def marked_cost(item: pytest.Item) -> Cost | None:
    mark = item.get_closest_marker("cost")
    return Cost.parse(str(mark.args[0])) if mark and mark.args else None


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    suite: Suite = config.stash[SUITE_KEY]
    for item in items:
        rules = marked_rules(item)
        if rules:
            item.user_properties.append(("rule-id", " ".join(rules)))
        cost = marked_cost(item)
        if cost is None:
            continue
        reason = suite.consent.skip_reason(cost)
        if reason:
            item.add_marker(pytest.mark.skip(reason=f"interlock: {reason}"))
        else:
            suite.selected_costs.add(cost)


# ---------------------------------------------------------------------------------------------
# Session state


@dataclass(repr=False)
class Suite:
    config: pytest.Config
    options: HsmOptions
    started: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    t0: float = field(default_factory=time.perf_counter)
    selected_costs: set[Cost] = field(default_factory=set)
    _target: Any = None

    def __post_init__(self) -> None:
        self.evidence = Path(self.options.evidence).resolve() if self.options.evidence else None
        self.worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
        # The consent object is shared with the target, so a confirmed serial counts everywhere.
        self.consent = Consent(
            guarded=self.options.target.guarded,
            serial=self.options.serial,
            allow_irreversible=self.options.allow_irreversible,
            allow_operator=self.options.allow_operator,
            so_floor=self.options.so_floor,
        )

    @property
    def is_controller(self) -> bool:
        return not hasattr(self.config, "workerinput")

    # -- evidence files ------------------------------------------------------------------------

    def clear_evidence(self) -> None:
        """A stale record from an earlier run would count in this run's verdicts."""
        assert self.evidence is not None
        self.evidence.mkdir(parents=True, exist_ok=True)
        for pattern in ("records-*.jsonl", f"{SESSION_PREFIX}-*.json"):
            for path in self.evidence.glob(pattern):
                path.unlink()
        shutil.rmtree(self.evidence / TRACES_DIR, ignore_errors=True)

    def trace_path(self, name: str) -> tuple[Path | None, str | None]:
        if self.evidence is None:
            return None, None
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_")[:150]
        rel = f"{TRACES_DIR}/{safe}.jsonl"
        return self.evidence / rel, rel

    # -- the target ----------------------------------------------------------------------------

    def target(self) -> Any:
        """The session's target, opened (and on a real token checked) on first use."""
        if self._target is None:
            from conformance.observe import CredentialError
            from conformance.targets import make_target, prepare
            from conformance.transport.base import TransportError

            path, _ = self.trace_path("session-setup" if self.worker == "main" else f"session-setup-{self.worker}")
            recorder = TraceRecorder(path)
            try:
                target = make_target(self.options, self.consent)
                wiping = any(c in (Cost.WIPES, Cost.IRREVERSIBLE) for c in self.selected_costs)
                prepare(target, recorder, wiping_test_selected=wiping)
            except SerialMismatch as exc:
                pytest.exit(str(exc), returncode=3)
            except CredentialError as exc:
                pytest.exit(str(exc), returncode=3)
            except TransportError as exc:
                pytest.exit(f"hsm target {self.options.target}: {exc}", returncode=3)
            self._target = target
        return self._target

    def session_info(self) -> dict[str, Any]:
        target = self._target
        twin = getattr(target, "twin", None) if target is not None else None
        return {
            "target": target.describe() if target is not None else {"kind": self.options.target.kind},
            "observations": dict(target.observations) if target is not None else {},
            "so_tries_left_end": twin.so_tries if (twin is not None and target.persistent) else None,
        }

    def close(self) -> None:
        if self._target is not None:
            self._target.close()
            self._target = None


# ---------------------------------------------------------------------------------------------
# Per test


@dataclass(repr=False)
class TestRun:
    """Everything one test did to the device(s) it opened (a stateful test opens one per example)."""

    suite: Suite
    item: pytest.Item
    declared: Cost
    ledger: Any = None
    recorder: TraceRecorder | None = None
    trace_rel: str | None = None
    apdus_before: int = 0  # APDUs of earlier traces this test replaced
    devices: list[Any] = field(default_factory=list)

    def __post_init__(self) -> None:
        from conformance.targets import Ledger

        self.ledger = Ledger()

    def __repr__(self) -> str:
        return f"TestRun({self.item.nodeid}, {self.apdus} APDUs)"

    def open_device(self, keep_trace: bool = False) -> Any:
        """A device for this test, or for its next example / tour segment. `keep_trace` appends
        to the same trace; otherwise the trace holds the last device only (for a hypothesis
        test: the minimal failing example, which hypothesis runs last)."""
        from conformance.targets import open_device

        target = self.suite.target()
        self.close_devices()
        if self.recorder is None or not keep_trace:
            if self.recorder is not None:
                self.apdus_before += self.recorder.apdus
            path, self.trace_rel = self.suite.trace_path(self.item.nodeid)
            self.recorder = TraceRecorder(path)
        device = open_device(target, self.recorder, target.profile, self.declared)
        device.ledger = self.ledger
        self.devices.append(device)
        if target.persistent:
            if target.twin is None:  # a failed test left it unknown: read it again (free)
                from conformance.observe import Probe, read_state

                pin_known = not target.consent.guarded or target.options.pin is not None
                device.state = read_state(Probe(device.mapper, self.recorder), identity=0, user_pin_known=pin_known)
            device.setup = True
            try:
                device.step(_select())  # a known session to start from
            finally:
                device.setup = False
        return device

    def shown_trace(self) -> TraceRecorder | None:
        """The trace a failure report shows: the failing device's, else the last one."""
        return self.ledger.failure_trace or self.recorder

    @property
    def apdus(self) -> int:
        return self.apdus_before + (self.recorder.apdus if self.recorder is not None else 0)

    def close_devices(self, failed: bool = False) -> None:
        for device in self.devices:
            target = device.target
            if target.persistent:
                if failed:
                    target.twin = None
                else:
                    device.restore()
                    target.twin = device.state
        self.devices.clear()


def _select() -> Any:
    from model.commands import Command

    return Command.select()


def _start_run(request: pytest.FixtureRequest) -> TestRun:
    suite: Suite = request.config.stash[SUITE_KEY]
    run = TestRun(suite, request.node, marked_cost(request.node) or Cost.FREE)
    request.node.stash[RUN_KEY] = run
    return run


def _call_failed(item: pytest.Item) -> bool:
    reports = item.stash.get(REPORTS_KEY, {})
    return any(rep.failed for rep, _ in reports.values())


@pytest.fixture
def hsm(request: pytest.FixtureRequest) -> Iterator[Any]:
    """The device under test, with its model twin (conformance.targets.Device)."""
    run = _start_run(request)
    device = run.open_device()
    yield device
    run.close_devices(failed=_call_failed(request.node))


@pytest.fixture
def hsm_run(request: pytest.FixtureRequest) -> Iterator[TestRun]:
    """For tests that need several devices in turn (one per hypothesis example)."""
    run = _start_run(request)
    yield run
    run.close_devices(failed=_call_failed(request.node))


@pytest.fixture
def hsm_suite(request: pytest.FixtureRequest) -> Suite:
    return request.config.stash[SUITE_KEY]


# ---------------------------------------------------------------------------------------------
# Reports, records, the bundle


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    run_before = item.stash.get(RUN_KEY, None)
    if call.when == "teardown" and run_before is not None and not marked_rules(item):
        # The tour and the stateful test check whatever rules their steps exercised.
        failed = any(rep.failed for rep, _ in item.stash.get(REPORTS_KEY, {}).values())
        rules = run_before.ledger.record_rules(failed)
        if rules:
            item.user_properties.append(("rule-id", " ".join(rules)))
    report = yield
    reports = item.stash.setdefault(REPORTS_KEY, {})
    reports[report.when] = (report, call.excinfo)
    run = item.stash.get(RUN_KEY, None)
    if report.when == "call" and report.failed and run is not None and run.shown_trace() is not None:
        report.sections.append(("hsm APDU trace", run.shown_trace().render(TRACE_SECTION_LINES)))  # type: ignore[union-attr]
    if report.when == "teardown":
        suite: Suite = item.config.stash[SUITE_KEY]
        if run is not None and run.recorder is not None:
            if run.ledger.failure_trace is not None and run.ledger.failure_trace is not run.recorder:
                run.ledger.failure_trace.rewrite()  # the evidence keeps the failing example's trace
            else:
                run.recorder.flush()
        if run is not None or marked_rules(item) or marked_cost(item) is not None:
            record = build_record(item, reports, run)
            if suite.evidence is not None:
                append_record(records_file(suite.evidence, suite.worker), record)
    return report


def build_record(item: pytest.Item, reports: dict, run: TestRun | None) -> TestRecord:
    outcome, why = "passed", ""
    for when in ("setup", "call", "teardown"):
        if when not in reports:
            continue
        rep, excinfo = reports[when]
        if rep.failed:
            is_assert = excinfo is not None and excinfo.errisinstance(AssertionError)
            outcome = "failed" if when == "call" and is_assert else "error"
            why = _first_lines(str(excinfo.value) if excinfo is not None else str(rep.longrepr))
            break
        if rep.skipped:
            outcome = "skipped"
            why = rep.longrepr[2] if isinstance(rep.longrepr, tuple) else str(rep.longrepr)
            why = why.removeprefix("Skipped: ").removeprefix("InterlockRefused: ")
            break
    ledger = run.ledger if run is not None else None
    if outcome == "passed" and ledger is not None and ledger.observed_note:
        outcome, why = "observed", ledger.observed_note
    cost = marked_cost(item)
    rules = marked_rules(item) or (ledger.record_rules(outcome in ("failed", "error")) if ledger else ())
    return TestRecord(
        nodeid=item.nodeid,
        rules=rules,
        cost=(cost or Cost.FREE).label,
        outcome=outcome,  # type: ignore[arg-type]
        why=why,
        trace=run.trace_rel if run is not None and run.recorder is not None else None,
        apdus=run.apdus if run is not None else 0,
        user_tries_spent=ledger.user_tries_spent if ledger else 0,
        so_tries_spent=ledger.so_tries_spent if ledger else 0,
        transitions=tuple(ledger.transitions) if ledger else (),
        states=tuple(ledger.states) if ledger else (),
        observations=dict(ledger.observations) if ledger else {},
        duration_s=round(sum(rep.duration for rep, _ in reports.values()), 4),
        so_tries_left=ledger.so_tries_left if ledger else None,
    )


def _first_lines(text: str, limit: int = 600) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[:limit] + " ..."


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    suite: Suite | None = session.config.stash.get(SUITE_KEY, None)
    if suite is None or suite.evidence is None:
        return
    if suite._target is not None or suite.is_controller:
        info_path = suite.evidence / f"{SESSION_PREFIX}-{suite.worker}.json"
        if suite._target is not None:
            info_path.write_text(json.dumps(suite.session_info(), indent=1), encoding="utf-8")
    if not suite.is_controller:
        return
    write_evidence(suite, complete=exitstatus in (0, 1))


def write_evidence(suite: Suite, complete: bool) -> None:
    """Merge every process's records and session notes, and call the bundle writer."""
    assert suite.evidence is not None
    from model.profiles import OPEN_BEHAVIOURS

    records = load_evidence_records(suite.evidence)
    infos = [json.loads(p.read_text(encoding="utf-8")) for p in sorted(suite.evidence.glob(f"{SESSION_PREFIX}-*.json"))]
    target = next((i["target"] for i in infos if i.get("target")), suite.session_info()["target"])
    behaviours: dict[str, str] = {b: "not observed" for b in OPEN_BEHAVIOURS}
    for record in records:
        behaviours.update(record.observations)
    for info in infos:
        behaviours.update(info.get("observations", {}))
    ends = [i["so_tries_left_end"] for i in infos if i.get("so_tries_left_end") is not None]
    try:
        from conformance.evidence.bundle import write_bundle
    except ImportError:  # the bundle writer is another module's; records stay for `hsm-lifecycle run`
        return
    write_bundle(
        suite.evidence,
        records,
        target=target,
        started=suite.started,
        duration_s=time.perf_counter() - suite.t0,
        open_behaviours=behaviours,
        complete=complete,
        so_tries_left_end=ends[-1] if ends else None,
    )
