"""pytest plugin for the hsm-lifecycle conformance suite: options, targets, interlocks, evidence.

Registered by the `pytest11` entry point and by the root conftest. Nothing touches a device
until a test asks for the `hsm` (or `hsm_run`) fixture, so the project's other tests pay nothing.

Per session: the target is opened once; on a real token its serial is read (free) and compared
with --hsm-serial before any state-changing APDU, its state is read, and the open behaviours are
observed within the user's consent. Per test: a `Device` with its own APDU trace, the cost class
of the `cost` marker, a `TestRecord` appended to the evidence directory (one file per xdist
worker) and a `rule-id` JUnit property. At session finish the bundle writer turns the records
into the evidence bundle.

With `-n N` over PC/SC readers or vpcd emulators the run is a fleet (conformance.fleet): worker
gwK owns token K and runs the whole selection on it; the controller writes one bundle per token
and combined-summary.json.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, NoReturn

import pytest

from hsm_lifecycle.conformance import terminal
from hsm_lifecycle.conformance.evidence.records import TestRecord, append_record, load_evidence_records, records_file
from hsm_lifecycle.conformance.custody import skip_reason as custody_skip_reason
from hsm_lifecycle.conformance.fleet import TOKEN_KEY, Fleet, FleetWatch, Slot, TokenConsent
from hsm_lifecycle.conformance.interlocks import Consent, SerialMismatch
from hsm_lifecycle.model.cost import CostClass
from hsm_lifecycle.conformance.options import HsmOptions, add_options, from_config
from hsm_lifecycle.conformance.trace import TraceRecorder

if TYPE_CHECKING:  # imported when first used: loading the plugin must stay cheap
    from hsm_lifecycle.conformance.device import Device
    from hsm_lifecycle.conformance.ledger import Ledger
    from hsm_lifecycle.conformance.targets import Target
    from hsm_lifecycle.model.commands import Command

SUITE_KEY = pytest.StashKey["Suite"]()
PAUSE_KEY = pytest.StashKey["terminal.CapturePause"]()
RUN_KEY = pytest.StashKey["TestRun"]()
REPORTS_KEY = pytest.StashKey[dict]()

TRACES_DIR = "traces"
SESSION_PREFIX = "session"
TRACE_SECTION_LINES = 200


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


def option_names(config: pytest.Config, text: str) -> str:
    """`text` with the options of the command the user ran."""
    return text.replace("--hsm-", "--") if config.getoption("hsm_option_names", "pytest") == "run" else text


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "rule(*ids): the lifecycle rules (R01..R21) a conformance test checks")
    config.addinivalue_line("markers", "cost(klass): cost class on a real token (free, tries, wipes, irreversible, operator)")
    from hsm_lifecycle.conformance.campaign import NEEDS_POWER_RIG_MARKER, WALK_MARKER_HELP

    config.addinivalue_line("markers", WALK_MARKER_HELP)
    config.addinivalue_line("markers", f"{NEEDS_POWER_RIG_MARKER}: cuts the token's power mid-command (a tear hook or a power-cut rig)")
    try:
        options = from_config(config)
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from None
    if config.getoption("hsm_suite"):
        _collect_the_suite(config)
    # options.from_config refused one device for several workers; a fleet has one token each.
    if options.fleet and not hasattr(config, "workerinput"):
        _one_token_per_worker(config)
    capture = config.pluginmanager.getplugin("capturemanager")
    if capture is not None:  # before the Suite: its consent asks whether stdin is a terminal
        pause = terminal.CapturePause(capture)
        terminal.add_pause(terminal.CAPTURE, pause)
        config.stash[PAUSE_KEY] = pause
    try:
        suite = Suite(config, options)
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from None
    config.stash[SUITE_KEY] = suite
    if suite.evidence is not None and suite.is_controller:
        suite.clear_evidence()
    if suite.watch is not None:
        _check_fleet_readers(suite)
        config.pluginmanager.register(suite.watch, "hsm-fleet-watch")


def _collect_the_suite(config: pytest.Config) -> None:
    """--hsm-suite: pytest collects the installed suite, so a lab's pytest project needs no path
    into site-packages; paths given on the command line are collected too."""
    from hsm_lifecycle.conformance import SUITE_DIR

    given = config.args_source == pytest.Config.ArgsSource.ARGS
    if not given:  # pytest's default (testpaths, or the current folder) gives way to the suite
        config.args = [str(SUITE_DIR)]
    elif SUITE_DIR.resolve() not in {Path(arg.split("::")[0]).resolve() for arg in config.args}:
        config.args = [*config.args, str(SUITE_DIR)]


def _check_fleet_readers(suite: "Suite") -> None:
    """PC/SC fleets: no two workers on one reader (pcscd unreachable: each worker says so)."""
    from hsm_lifecycle.conformance.transport.base import TransportError
    from hsm_lifecycle.conformance.transport.pcsc import list_readers

    assert suite.fleet is not None
    if suite.options.target.kind != "pcsc":
        return
    try:
        available = list_readers()
    except TransportError:
        return
    try:
        suite.fleet.check_readers(available)
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from None


def _one_token_per_worker(config: pytest.Config) -> None:
    """A fleet (conformance.fleet) runs the whole selection on every token, and never replaces
    a crashed worker: the replacement would get a new worker id, and so no token."""
    dist = config.option.dist
    if dist == "load":  # what xdist makes of -n without --dist
        config.option.dist = "each"
    elif dist != "each":
        raise pytest.UsageError(
            f"--dist {dist} shares the tests out over the workers, but with one token per worker every token runs "
            "the whole selection: use --dist each, or leave --dist out."
        )
    if config.option.maxworkerrestart is None:
        config.option.maxworkerrestart = "0"


def pytest_unconfigure(config: pytest.Config) -> None:
    """Release the device (a real token is held exclusively; the vpcd emulator is stopped)."""
    suite = config.stash.get(SUITE_KEY, None)
    if suite is not None:
        suite.close()
    pause = config.stash.get(PAUSE_KEY, None)
    if pause is not None:
        terminal.remove_pause(pause)


def pytest_report_header(config: pytest.Config) -> str | None:
    suite = config.stash.get(SUITE_KEY, None)
    if suite is None:
        return None
    o = suite.options
    if suite.fleet is not None:
        return [*suite.fleet.header(), f"  SO floor {o.so_floor}"]
    consent = "serial " + (o.serial or "not given (no wipes)") if o.target.guarded else "every cost class (emulator)"
    return f"hsm target: {o.target}; {consent}; SO floor {o.so_floor}"


# ---------------------------------------------------------------------------------------------
# Markers: cost classes decide up front what may run on this target


def marked_rules(item: pytest.Item) -> tuple[str, ...]:
    ids: list[str] = []
    for mark in item.iter_markers("rule"):
        ids.extend(str(a) for a in mark.args)
    return tuple(dict.fromkeys(sorted(ids)))


def marked_cost(item: pytest.Item) -> CostClass | None:
    mark = item.get_closest_marker("cost")
    return CostClass.parse(str(mark.args[0])) if mark and mark.args else None


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    suite: Suite = config.stash[SUITE_KEY]
    for item in items:
        rules = marked_rules(item)
        if rules:
            item.user_properties.append(("rule-id", " ".join(rules)))
        cost = marked_cost(item)
        if cost is None:
            continue
        o = suite.options
        reason = suite.consent.skip_reason(cost) or custody_skip_reason(o.target.guarded, cost, o.pin, o.so_pin)
        if reason:
            item.add_marker(pytest.mark.skip(reason=f"interlock: {option_names(config, reason)}"))
        else:
            suite.selected_costs.add(cost)


def pytest_collection_finish(session: pytest.Session) -> None:
    """After -k and -m deselection: --hsm-plan plans exactly what would run."""
    suite: Suite = session.config.stash[SUITE_KEY]
    if suite.options.plan:
        suite.print_plan(session.items)
    else:
        suite.follow_plan(session.items)




# ---------------------------------------------------------------------------------------------
# Session state


@dataclass(repr=False)
class Suite:
    config: pytest.Config
    options: HsmOptions
    started: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    t0: float = field(default_factory=time.perf_counter)
    selected_costs: set[CostClass] = field(default_factory=set)
    _target: Target | None = None
    fleet: Fleet | None = None  # one token per xdist worker (conformance.fleet)
    slot: Slot | None = None  # this worker's token in the fleet
    watch: FleetWatch | None = None  # the controller's view of the fleet
    _broken: str | None = None  # why this fleet token cannot be used (its tests fail with it)
    # The target as it described itself, kept when the run stops while opening it (a serial
    # mismatch): the bundle still names the device, its serial and applet version.
    _described: dict[str, str] | None = None
    so_tries_left_end: int | None = None  # asked of a persistent device at the end (free)
    made_evidence: bool = False  # the evidence folder is this run's (removed if nothing ran)
    custody: dict[str, Any] | None = None  # what the custody did at the end (conformance.custody)
    walker: Any = None  # the campaign plan on one persistent token (conformance.campaign.Walker)
    _opened: Any = None  # the target, opened (free reads only) to plan before it is prepared

    def __post_init__(self) -> None:
        self.evidence = Path(self.options.evidence).resolve() if self.options.evidence else None
        workerinput = getattr(self.config, "workerinput", None)
        self.worker = workerinput["workerid"] if workerinput is not None else "main"
        if self.options.fleet:
            self.fleet = Fleet.of(self.options)
            if workerinput is None:
                self.watch = FleetWatch(self.fleet)
            else:  # this worker's token only; its bundle is staged in DIR/<worker>
                self.slot = self.fleet.slot(self.worker)
                self.options = self.fleet.options_for(self.options, self.slot)
                self.evidence = self.evidence / self.slot.worker if self.evidence else None
        # The consent object is shared with the target, so a confirmed serial counts everywhere.
        given = dict(
            guarded=self.options.target.guarded,
            serial=self.options.serial,
            allow_irreversible=self.options.allow_irreversible,
            allow_operator=self.options.allow_operator,
            so_floor=self.options.so_floor,
        )
        if self.options.portal_socket:
            given["interactive"] = True  # the scripted operator answers the operator steps
        self.consent = TokenConsent(**given, listed=self.options.serials) if self.fleet else Consent(**given)

    @property
    def is_controller(self) -> bool:
        return not hasattr(self.config, "workerinput")

    # -- evidence files ------------------------------------------------------------------------

    def clear_evidence(self) -> None:
        """A stale record from an earlier run would count in this run's verdicts."""
        from hsm_lifecycle.conformance.evidence.combined import clear_fleet_output

        assert self.evidence is not None
        self.made_evidence = not self.evidence.exists()
        self.evidence.mkdir(parents=True, exist_ok=True)
        for pattern in ("records-*.jsonl", f"{SESSION_PREFIX}-*.json"):
            for path in self.evidence.glob(pattern):
                path.unlink()
        shutil.rmtree(self.evidence / TRACES_DIR, ignore_errors=True)
        clear_fleet_output(self.evidence, single_bundle_too=self.fleet is not None)

    def trace_path(self, name: str) -> tuple[Path | None, str | None]:
        if self.evidence is None:
            return None, None
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_")[:150]
        rel = f"{TRACES_DIR}/{safe}.jsonl"
        return self.evidence / rel, rel

    # -- the target ----------------------------------------------------------------------------

    def target(self) -> Target:
        """The session's target, opened (and on a real token checked) on first use."""
        if self._broken is not None:
            pytest.fail(self._broken, pytrace=False)
        if self._target is None:
            from hsm_lifecycle.conformance.journal import JournalError
            from hsm_lifecycle.conformance.observe import CredentialError
            from hsm_lifecycle.conformance.session import prepare
            from hsm_lifecycle.conformance.targets import make_target
            from hsm_lifecycle.conformance.transport.base import TransportError

            alone = self.worker == "main" or self.slot is not None  # the only process on this bundle
            path, _ = self.trace_path("session-setup" if alone else f"session-setup-{self.worker}")
            recorder = TraceRecorder(path, secrets=self.trace_secrets())
            target = None
            try:
                target = self._opened or make_target(self.options, self.consent)
                wiping = any(c in (CostClass.WIPES, CostClass.IRREVERSIBLE) for c in self.selected_costs)
                spending = any(c != CostClass.FREE for c in self.selected_costs)
                # The plan starts with checks that need the token uninitialized: observing what
                # only INITIALIZE shows waits until they are done (the walker does it then).
                keep = self.walker is not None and self.walker.observation_pending
                prepare(target, recorder, wiping_test_selected=wiping, spending_test_selected=spending, keep_uninitialized=keep)
            except (SerialMismatch, CredentialError, JournalError) as exc:
                if target is not None:
                    self._described = target.describe()
                self.stop(str(exc))
            except TransportError as exc:
                self._target = target  # its custody still puts back what it changed
                self.stop(f"hsm target {self.options.target}: {exc}")
            finally:
                recorder.flush()  # prepare() flushes only on success: keep what led to a failure
                if self._target is None and target is not None and target.custody is not None and target.custody.begun:
                    self._target = target  # stopped after its custody began: finish() restores
            self._target = target
        return self._target

    def follow_plan(self, items: list[pytest.Item]) -> None:
        """On one persistent token: plan the campaign (free reads only), run the tests in the
        plan's order, and skip what the plan cannot place, saying why."""
        from hsm_lifecycle.conformance import campaign
        from hsm_lifecycle.conformance.targets import make_target
        from hsm_lifecycle.conformance.transport.base import TransportError

        if not campaign.plans_the_walk(self.options) or not items:
            return
        path, _ = self.trace_path("session-setup")
        recorder = TraceRecorder(path, secrets=self.trace_secrets())
        try:
            self._opened = make_target(self.options, self.consent)
            planned = campaign.plan_for_session(self._opened, self.options, self.consent, items, self.options.option_names, recorder)
        except TransportError as exc:
            pytest.exit(f"hsm target {self.options.target}: {exc}", returncode=3)
        finally:
            recorder.flush()  # the set-up trace begins with the plan's free reads
        campaign.order_items(items, planned.plan)
        if planned.examples is not None and planned.examples != self.options.examples:
            from dataclasses import replace

            self.options = replace(self.options, examples=planned.examples)  # fitted to the APDU budget
        by_id = {item.nodeid: item for item in items}
        for miss in planned.plan.not_run:
            item = by_id.get(miss.check)
            if item is not None and item.get_closest_marker("skip") is None:
                item.add_marker(pytest.mark.skip(reason=campaign.skip_reason(miss, self.options.option_names)))
        first = planned.plan.steps[0] if planned.plan.steps else None
        pending = first is not None and first.starts_in in ("shipped", "firmware-reset")
        self.walker = campaign.Walker(planned, planned.specs, observation_pending=pending)

    def print_plan(self, items: list[pytest.Item]) -> None:
        """--hsm-plan: the plan, after free reads only, then stop (exit 0)."""
        from hsm_lifecycle.conformance.campaign import plan_for_session, write_plan
        from hsm_lifecycle.conformance.targets import make_target
        from hsm_lifecycle.conformance.transport.base import TransportError

        target = None
        try:
            target = make_target(self.options, self.consent)
            planned = plan_for_session(target, self.options, self.consent, items, self.options.option_names)
        except TransportError as exc:
            pytest.exit(f"hsm target {self.options.target}: {exc}", returncode=3)
        finally:
            if target is not None:
                target.close()
        if self.evidence is not None:
            write_plan(self.evidence, planned.plan)
        with terminal.handed_over():
            print(planned.text, flush=True)
        pytest.exit("campaign plan printed; nothing was run", returncode=0)

    def stop(self, message: str) -> NoReturn:
        """The token cannot be used. Alone, it stops the run before anything else is sent
        (pytest.exit); in a fleet only this token's tests fail with the reason and the other
        tokens go on (xdist cannot take a worker that leaves before its tests are done)."""
        message = option_names(self.config, message)
        if self.slot is None:
            pytest.exit(message, returncode=3)
        self._broken = f"{self.slot.worker}: {message}"
        pytest.fail(self._broken, pytrace=False)

    def trace_secrets(self) -> tuple[tuple[str, bytes], ...]:
        """The owner's PINs, masked in the traces of a real token unless --hsm-trace-secrets
        (the emulator's PINs are the suite's own test PINs)."""
        o = self.options
        if not o.target.guarded or o.trace_secrets:
            return ()
        return tuple((name, value) for name, value in (("pin", o.pin), ("so-pin", o.so_pin)) if value)

    def finish_custody(self) -> None:
        """A guarded token: the owner's PINs, tries and objects put back, counters read (free)."""
        custody = getattr(self._target, "custody", None)
        if custody is None or self.custody is not None:
            return
        from hsm_lifecycle.conformance.trace import TracingTransport

        alone = self.worker == "main" or self.slot is not None
        path, _ = self.trace_path("session-custody" if alone else f"session-custody-{self.worker}")
        recorder = TraceRecorder(path, secrets=self.trace_secrets())
        recorder.context("custody: restore the owner's state, read the counters", "")
        try:
            outcome = custody.finish(TracingTransport(self._target.raw_transport(), recorder))
        finally:
            recorder.flush()
        self.custody = {**outcome.to_json(), "apdus": custody.apdus, "windows": custody.windows}
        if custody.earlier is not None:  # a journal left by an earlier run was taken up first
            self.custody["earlier"] = custody.earlier.to_json()
            self.custody["message"] = f"{custody.earlier.sentence} {outcome.sentence}"
        if outcome.after is not None:
            self.so_tries_left_end = outcome.after.so

    def read_so_tries_at_end(self) -> None:
        """A persistent device is asked how many SO tries it has left (a free query); the
        in-process emulator gives every test a fresh token, so no count there means anything."""
        if self._target is None or not self._target.persistent or self.custody is not None:
            return  # the custody read the counters itself
        from hsm_lifecycle.conformance.session import read_so_tries

        alone = self.worker == "main" or self.slot is not None
        path, _ = self.trace_path("session-end" if alone else f"session-end-{self.worker}")
        self.so_tries_left_end = read_so_tries(self._target, TraceRecorder(path, secrets=self.trace_secrets()))

    def session_info(self) -> dict[str, Any]:
        target = self._target
        if target is not None:
            described = target.describe()
        else:
            described = self._described or {"kind": self.options.target.kind}
        info: dict[str, Any] = {
            "target": described,
            "observations": dict(target.observations) if target is not None else {},
            "so_tries_left_end": self.so_tries_left_end,
        }
        if self.custody is not None:
            info["custody"] = self.custody
        if self.slot is not None:  # a fleet token: which worker drove it, when, with what consent
            described = info["target"] if target is not None or self._described else {"kind": self.slot.target.kind, "reader": self.slot.target.reader or ""}
            info["target"] = {**described, "worker": self.slot.worker}
            info["started"] = self.started.isoformat(timespec="seconds")
            info["duration_s"] = round(time.perf_counter() - self.t0, 3)
            info["consent"] = self.consent.state if isinstance(self.consent, TokenConsent) else ""
        return info

    def close(self) -> None:
        if self._opened is not None and self._opened is not self._target:
            self._opened.close()  # opened to plan, never prepared (the run stopped before)
        self._opened = None
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
    declared: CostClass
    ledger: Ledger = field(init=False)
    recorder: TraceRecorder | None = None
    trace_rel: str | None = None
    apdus_before: int = 0  # APDUs of earlier traces this test replaced
    devices: list[Device] = field(default_factory=list)

    def __post_init__(self) -> None:
        from hsm_lifecycle.conformance.ledger import Ledger

        self.ledger = Ledger()

    def __repr__(self) -> str:
        return f"TestRun({self.item.nodeid}, {self.apdus} APDUs)"

    def open_device(self, keep_trace: bool = False) -> Device:
        """A device for this test, or for its next example / tour segment. `keep_trace` appends
        to the same trace; otherwise the trace holds the last device only (for a hypothesis
        test: the minimal failing example, which hypothesis runs last)."""
        from hsm_lifecycle.conformance.device import open_device

        target = self.suite.target()
        self.close_devices()
        if self.recorder is None or not keep_trace:
            if self.recorder is not None:
                self.apdus_before += self.recorder.apdus
            path, self.trace_rel = self.suite.trace_path(self.item.nodeid)
            self.recorder = TraceRecorder(path, secrets=self.suite.trace_secrets())
        assert target.profile is not None  # prepare() resolved it when the target opened
        device = open_device(target, self.recorder, target.profile, self.declared)
        device.ledger = self.ledger
        self.devices.append(device)
        if target.persistent:
            if target.twin is None:  # a failed test left it unknown: read it again (free)
                from hsm_lifecycle.conformance.observe import Probe, read_state

                pin_known = not target.consent.guarded or target.options.pin is not None
                device.state = read_state(Probe(device.mapper, self.recorder), identity=0, user_pin_known=pin_known)
            device.setup = True
            try:
                device.step(_select())  # a known session to start from
            finally:
                device.setup = False
            if self.suite.walker is not None:
                self.suite.walker.before_test(self.item.nodeid, device)
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
                custody = target.custody
                if failed or (custody is not None and (custody.stopping or custody.lost is not None)):
                    # A failed step, or a run stopping (signal, lost token): the model twin is not
                    # to be trusted; the custody puts the owner's state back at the session's end.
                    target.twin = None
                    continue
                try:
                    device.restore()
                except BaseException:
                    # What the device holds now is not known for sure: the next test reads it
                    # again (free) instead of trusting a twin that stopped midway.
                    target.twin = None
                    raise
                target.twin = device.state
        self.devices.clear()


def _select() -> Command:
    from hsm_lifecycle.model.commands import Command

    return Command.select()


def _start_run(request: pytest.FixtureRequest) -> TestRun:
    suite: Suite = request.config.stash[SUITE_KEY]
    run = TestRun(suite, request.node, marked_cost(request.node) or CostClass.FREE)
    request.node.stash[RUN_KEY] = run
    if suite.slot is not None:
        # A fleet token's share of --hsm-serial is known once its serial is read: a test its
        # consent does not cover stops here, before its first APDU.
        suite.target()
        reason = suite.consent.skip_reason(run.declared)
        if reason:
            pytest.skip(f"interlock: {reason}")
    return run


def _call_failed(item: pytest.Item) -> bool:
    reports = item.stash.get(REPORTS_KEY, {})
    return any(rep.failed for rep, _ in reports.values())


@pytest.fixture
def hsm(request: pytest.FixtureRequest) -> Iterator[Device]:
    """The device under test, with its model twin (conformance.device.Device)."""
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
            # Only the device breaking a check of the catalog is a failure; anything else that
            # broke (an assertion of the suite's own, an exception, a Hypothesis health or
            # consistency error, a crash while planning) is the suite's error, never the device's.
            decided = run is not None and bool(run.ledger.failed_rules)
            outcome = "failed" if when == "call" and _device_failure(excinfo) and decided else "error"
            why = _first_lines(str(excinfo.value) if excinfo is not None else str(rep.longrepr))
            if outcome == "error" and _device_failure(excinfo) and not decided:
                why = "the device's answer diverged, but no check of the catalog covers it: " + why
            break
        if rep.skipped:
            outcome = "skipped"
            why = rep.longrepr[2] if isinstance(rep.longrepr, tuple) else str(rep.longrepr)
            why = why.removeprefix("Skipped: ").removeprefix("InterlockRefused: ")
            break
    why = option_names(item.config, why)
    ledger = run.ledger if run is not None else None
    if outcome == "passed" and ledger is not None and ledger.observed_note:
        outcome, why = "observed", ledger.observed_note
    cost = marked_cost(item)
    rules = marked_rules(item) or (ledger.record_rules(outcome in ("failed", "error")) if ledger else ())
    return TestRecord(
        nodeid=item.nodeid,
        rules=rules,
        cost=(cost or CostClass.FREE).value,
        outcome=outcome,  # type: ignore[arg-type]
        why=why,
        trace=run.trace_rel if run is not None and run.recorder is not None else None,
        apdus=run.apdus if run is not None else 0,
        user_tries_spent=ledger.user_tries_spent if ledger else 0,
        so_tries_spent=ledger.so_tries_spent if ledger else 0,
        transitions=tuple(ledger.transitions) if ledger else (),
        states=tuple(ledger.states) if ledger else (),
        observations={k: option_names(item.config, v) for k, v in ledger.observations.items()} if ledger else {},
        duration_s=round(sum(rep.duration for rep, _ in reports.values()), 4),
        so_tries_left=ledger.so_tries_left if ledger else None,
        checks=ledger.checks.to_record() if ledger else {},
    )


def _device_failure(excinfo: Any) -> bool:
    from hsm_lifecycle.conformance.verdict import ConformanceFailure

    return excinfo is not None and excinfo.errisinstance(ConformanceFailure)


def _first_lines(text: str, limit: int = 600) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[:limit] + " ..."


@pytest.hookimpl(trylast=True)  # after the runner tore down the tests (their restores ran)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    suite: Suite | None = session.config.stash.get(SUITE_KEY, None)
    if suite is not None:
        suite.finish_custody()
        custody = getattr(suite._target, "custody", None)
        lost = getattr(custody, "lost", None)
        # With consent to wipe (or block the SO-PIN) the owner gave up what custody keeps.
        kept = custody is None or custody.may_wipe() or (suite.custody or {}).get("owner_pins_in_place", True)
        if exitstatus in (0, 1) and (lost is not None or not kept):
            exitstatus = session.exitstatus = 3  # not ended in custody: the bundle says incomplete
        elif exitstatus in (0, 1) and getattr(custody, "interrupted", False):
            # A signal held through the last PIN-change window, with no APDU after it to stop at.
            exitstatus = session.exitstatus = pytest.ExitCode.INTERRUPTED
    if suite is not None and (suite.evidence is not None or suite.slot is not None):
        suite.read_so_tries_at_end()
    if suite is not None and suite.walker is not None and suite.is_controller:
        suite.walker.finish(suite.evidence)  # plan.json: the plan and what the device changed
    if suite is not None and suite.slot is not None:
        # A fleet worker always leaves notes on its token, for the controller and the bundle.
        notes = {**suite.session_info(), "exitstatus": int(exitstatus)}
        workeroutput = getattr(session.config, "workeroutput", None)
        if workeroutput is not None:
            workeroutput[TOKEN_KEY] = notes
        if suite.evidence is not None:
            suite.evidence.mkdir(parents=True, exist_ok=True)
            (suite.evidence / f"{SESSION_PREFIX}-{suite.worker}.json").write_text(json.dumps(notes, indent=1), encoding="utf-8")
        return
    if suite is None or suite.evidence is None:
        return
    if suite._target is not None or suite.is_controller:
        info_path = suite.evidence / f"{SESSION_PREFIX}-{suite.worker}.json"
        if suite._target is not None or suite._described is not None:
            info_path.write_text(json.dumps(suite.session_info(), indent=1), encoding="utf-8")
    if not suite.is_controller:
        return
    if exitstatus == pytest.ExitCode.NO_TESTS_COLLECTED:
        # Collecting nothing is a usage mistake: it leaves no bundle behind.
        if suite.made_evidence:
            shutil.rmtree(suite.evidence, ignore_errors=True)
        return
    write_evidence(suite, complete=exitstatus in (0, 1))


def write_evidence(suite: Suite, complete: bool) -> None:
    """Merge every process's records and session notes, and call the bundle writer."""
    assert suite.evidence is not None
    if suite.fleet is not None:
        write_fleet_evidence(suite, complete)
        return
    write_token_bundle(suite, suite.evidence, complete, suite.session_info()["target"])


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """pytest users see the custody's sentence too (`hsm-lifecycle run` prints it itself)."""
    suite: Suite | None = terminalreporter.config.stash.get(SUITE_KEY, None)
    if suite is not None and suite.custody and suite.custody.get("message"):
        terminalreporter.write_line(str(suite.custody["message"]))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    """A token that stopped answering stops the run (exit 3): its later tests would only
    report the missing token as rule failures."""
    result = yield
    suite: Suite | None = item.config.stash.get(SUITE_KEY, None)
    custody = getattr(suite._target, "custody", None) if suite is not None else None
    if custody is not None and custody.lost is not None:
        pytest.exit(f"the token stopped answering ({custody.lost}); the run stopped", returncode=3)
    return result


def write_fleet_evidence(suite: Suite, complete: bool) -> None:
    """One complete bundle per token, DIR/<serial> (DIR/<worker> if unknown), each from what its
    worker staged in DIR/<worker>, then DIR/combined-summary.json over them."""
    from hsm_lifecycle.conformance.evidence.combined import TokenEntry, bundle_name, write_combined

    assert suite.evidence is not None and suite.fleet is not None and suite.watch is not None
    watch, entries, taken = suite.watch, [], set()
    for slot in suite.fleet.slots:
        staged = suite.evidence / slot.worker
        staged.mkdir(parents=True, exist_ok=True)
        fallback = {"kind": slot.target.kind, "reader": slot.target.reader or "", "worker": slot.worker}
        write_token_bundle(suite, staged, complete and watch.finished(slot.worker), fallback)
        notes = watch.notes.get(slot.worker) or _session_notes(staged)
        name = bundle_name(str(notes.get("target", {}).get("serial") or ""), slot.worker, taken)
        taken.add(name)
        final = suite.evidence / name
        if final != staged:
            staged.rename(final)
        entries.append(TokenEntry.from_bundle(suite.evidence, final, slot.worker, str(notes.get("consent", ""))))
    seen = [e.target.get("serial", "") for e in entries]
    doc = write_combined(
        suite.evidence,
        entries,
        expected=len(suite.fleet.slots),
        started=suite.started.isoformat(timespec="seconds"),
        duration_s=time.perf_counter() - suite.t0,
        serials_not_found=suite.fleet.serials_not_found(seen) if suite.fleet.slots[0].target.guarded else [],
    )
    watch.bundles = {e.worker: {"verdict": e.verdict, "complete": e.complete, "bundle": suite.evidence / e.bundle} for e in entries}
    watch.combined, watch.verdict = suite.evidence / "combined-summary.json", str(doc["verdict"])


def _session_notes(directory: Path) -> dict[str, Any]:
    """The notes a fleet worker left in its folder (empty if it never finished)."""
    found = sorted(directory.glob(f"{SESSION_PREFIX}-*.json"))
    return json.loads(found[0].read_text(encoding="utf-8")) if found else {}


def write_token_bundle(suite: Suite, directory: Path, complete: bool, fallback_target: dict[str, Any]) -> None:
    """The bundle of one token in `directory`, from the records and session notes there."""
    from hsm_lifecycle.model.profiles import OPEN_BEHAVIOURS

    records = load_evidence_records(directory)
    infos = [json.loads(p.read_text(encoding="utf-8")) for p in sorted(directory.glob(f"{SESSION_PREFIX}-*.json"))]
    target = next((i["target"] for i in infos if i.get("target")), fallback_target)
    behaviours: dict[str, str] = {b: "not observed" for b in OPEN_BEHAVIOURS}
    for record in records:
        behaviours.update(record.observations)
    for info in infos:
        behaviours.update(info.get("observations", {}))
    behaviours = {b: option_names(suite.config, str(v)) for b, v in behaviours.items()}
    ends = [i["so_tries_left_end"] for i in infos if i.get("so_tries_left_end") is not None]
    custody = next((i["custody"] for i in infos if i.get("custody")), None)
    try:
        from hsm_lifecycle.conformance.evidence.bundle import write_bundle
    except ImportError:  # the bundle writer is another module's; records stay for `hsm-lifecycle run`
        return
    # A fleet worker timed its own token; otherwise the run's clock is the token's.
    timed = next((i for i in infos if "started" in i), None)
    write_bundle(
        directory,
        records,
        target=target,
        started=timed["started"] if timed else suite.started,
        duration_s=float(timed["duration_s"]) if timed else time.perf_counter() - suite.t0,
        open_behaviours=behaviours,
        complete=complete,
        so_tries_left_end=ends[-1] if ends else None,
        custody=custody,
    )
