"""The device a test drives: the mapper on a guarded, traced transport, plus the model state
the device is believed to be in.

`Device.step` is the one place where a command is judged: it asks the oracle first, checks the
step's cost against the test's marker and the user's consent (conformance.admission), sends the
APDUs, and fails with the APDU trace when the oracle does not accept the device's answer. The
rest of what a test calls on `hsm` is delegated, one module per job: the verdict API
(conformance.verdict), free reads and probes outside the alphabet (conformance.probes),
set-up and restore (conformance.provision) and power cuts (conformance.power).
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, NoReturn

import pytest

from hsm_lifecycle.conformance import admission, power, probes, provision
from hsm_lifecycle.conformance.interlocks import GuardedTransport
from hsm_lifecycle.conformance.ledger import Ledger
from hsm_lifecycle.conformance.mapper import Mapper, PortalUnavailable
from hsm_lifecycle.conformance.power_rig import CutMoment
from hsm_lifecycle.conformance.trace import EVENT_NEW_TOKEN, TraceRecorder, TracingTransport
from hsm_lifecycle.conformance.transport.base import TransportError
from hsm_lifecycle.conformance.verdict import Judge
from hsm_lifecycle.model.commands import Command
from hsm_lifecycle.model.cost import CostClass
from hsm_lifecycle.model.divergence import ODD_BEHAVIOUR_CHECKS, Blame, Torn, blame, query_moves_itself
from hsm_lifecycle.model.oracle import Outcome, expect
from hsm_lifecycle.model.profiles import Profile, UnresolvedBehaviour
from hsm_lifecycle.model.states import ExtState
from hsm_lifecycle.protocol import describe_sw

if TYPE_CHECKING:
    from hsm_lifecycle.conformance.targets import Target

# Open behaviours a step's answer leaves visible to a free query right after it (VERIFY 81
# without data: 9000 means a user session is open).
AFTER_THE_FACT: frozenset[str] = frozenset({"auth-after-init", "auth-after-change"})


@dataclass(repr=False)
class Device:
    target: Target
    mapper: Mapper
    recorder: TraceRecorder
    guard: GuardedTransport
    profile: Profile
    state: ExtState
    declared: CostClass
    ledger: Ledger = field(default_factory=Ledger)
    setup: bool = False  # provisioning / restoring: checked against consent, not the marker
    on_step: Callable[[Outcome, str], None] | None = None
    history: list[Outcome | Torn | None] = field(default_factory=list)  # accepted steps (None: outside the alphabet)

    def __repr__(self) -> str:
        return f"Device({self.target.spec}, {self.state})"

    # -- judged steps ------------------------------------------------------------------------

    def expect(self, cmd: Command) -> Outcome:
        try:
            return expect(self.state, cmd, self.profile)
        except UnresolvedBehaviour as exc:
            # Left unknown for lack of consent: the user's options say how to allow the probe.
            # Left unknown although probed: the device answered something no profile explains.
            odd = self.target.odd_behaviours.get(exc.behaviour)
            if odd is not None:
                scoped = self.ledger.checks.scoped()
                self.fail(f"cannot predict {cmd}: the device's answers left open behaviour {exc.behaviour} undetermined ({odd})",
                          () if scoped else (ODD_BEHAVIOUR_CHECKS[exc.behaviour],))
            why = self.target.unknown_behaviours.get(exc.behaviour, "it was not probed on this target")
            pytest.skip(f"cannot predict {cmd}: open behaviour {exc.behaviour} was not observed ({why})")

    def step(self, cmd: Command) -> str:
        """Run one abstract command; fail unless the oracle accepts the device's answer."""
        cmd = self.mapper.as_sent(cmd)  # e.g. INITIALIZE's PIN length: the oracle judges what is sent
        behaviour = self._answered_after(cmd)
        if behaviour is None:
            guesses = None
            outcome = self.expect(cmd)
        else:  # judged against both values of the open behaviour; the answer picks one
            guesses = {value: expect(self.state, cmd, self.profile.resolve({behaviour: value})) for value in (True, False)}
            outcome = guesses[False]
        self.check_credentials(cmd)
        self.admit(outcome)
        # Provisioning and restoring are traced like the test's own steps, marked "setup:".
        self.recorder.context(f"setup:{cmd}" if self.setup else str(cmd), self.state.abstract, outcome.rules)
        try:
            output = self.mapper.run(cmd, uninitialized=not self.state.is_initialized)
        except PortalUnavailable as exc:
            pytest.skip(str(exc))
        except TransportError as exc:
            # No well-formed answer: a failure of the check that expected one (an error of the
            # run when no check was open: nothing the catalog names was being decided).
            self.fail(f"{cmd}: {exc}")
        if guesses is not None and behaviour is not None:
            outcome = self._observe_after(behaviour, guesses, output)
        self.ledger.note(outcome, output)
        if self.on_step is not None:
            self.on_step(outcome, output)
        if not outcome.accepts(output):
            found = blame(outcome, output, self.history)
            if outcome.command.name in ("query_user", "query_so"):
                # Asked once more (free by R19): a second, different answer shows the query itself moved it.
                self.recorder.context(f"{cmd} (asked again)", self.state.abstract, ("R19",))
                found = query_moves_itself(outcome, output, self.mapper.run(cmd, uninitialized=not self.state.is_initialized)) or found
            self.fail(f"{outcome.describe()}, but the device answered {describe_sw(output)}; {found.describe()}", blame=found)
        for rule in outcome.rules:
            if rule not in self.ledger.rules:
                self.ledger.rules.append(rule)
        self.history.append(outcome)
        self.state = outcome.next
        return output

    def _answered_after(self, cmd: Command) -> str | None:
        """The open behaviour this step's next state hangs on, if a free query right after the
        step answers it and the token is persistent (an uninitialized token cannot be probed
        beforehand without initializing it); None: the oracle judges the step as it is."""
        if not self.target.persistent:
            return None
        try:
            expect(self.state, cmd, self.profile)
            return None
        except UnresolvedBehaviour as exc:
            return exc.behaviour if exc.behaviour in AFTER_THE_FACT else None

    def _observe_after(self, behaviour: str, guesses: dict[bool, Outcome], output: str) -> Outcome:
        """The guess the device's answer (and, where both fit, a free status query) confirms,
        recorded as an observation; the `False` guess when neither fits (the step then fails)."""
        accepted = [value for value, o in guesses.items() if o.accepts(output)]
        if not accepted:
            return guesses[False]
        value = accepted[0]
        if guesses[True].next != guesses[False].next and len(accepted) > 1:
            self.recorder.context(f"observe {behaviour} (free)", guesses[False].next.abstract, ())
            value = self.mapper.run(Command.query_user(), uninitialized=False) == "9000"
        self.profile = self.profile.resolve({behaviour: value})
        self.target.profile = self.profile
        self.observe(behaviour, str(value).lower())
        return guesses[value]

    def steps(self, *cmds: Command) -> list[str]:
        return [self.step(cmd) for cmd in cmds]


    def admit(self, outcome: Outcome) -> None:
        admission.admit(self, outcome)

    def effective_cost(self, outcome: Outcome) -> CostClass:
        return admission.effective_cost(self, outcome)

    def check_credentials(self, cmd: Command) -> None:
        admission.check_credentials(self, cmd)

    def may_initialize(self) -> bool:
        return admission.may_initialize(self)

    # -- verdicts (conformance.verdict) ------------------------------------------------------

    @property
    def judge(self) -> Judge:
        return Judge(self.ledger, self.recorder, self.state)

    def checking(self, *ids: str) -> AbstractContextManager[None]:
        """`with hsm.checking("R02.x", ...):` the steps inside decide these checks (conformance.judging)."""
        return self.judge.checking(ids)

    def fail(self, message: str, checks: tuple[str, ...] = (), blame: Blame | None = None) -> NoReturn:
        self.judge.fail(message, checks, blame)

    def decided(self, *checks: str) -> None:
        self.judge.decided(checks)

    def precondition(self, condition: bool, message: str, *checks: str) -> None:
        self.judge.precondition(condition, message, checks)

    def check(self, condition: bool, message: str, *checks: str) -> None:
        self.judge.check(condition, message, checks)

    def observe(self, behaviour: str, value: str) -> None:
        self.judge.observe(behaviour, value)

    def observed(self, note: str) -> None:
        self.judge.observed(note)

    # -- free reads and probes outside the alphabet (conformance.probes) ----------------------

    def read(self, what: str, fn: Callable[[], object]) -> object:
        return probes.read(self, what, fn)

    def identity(self) -> bytes:
        return probes.identity(self)

    def key_count(self) -> int | None:
        return probes.key_count(self)

    def check_keys(self) -> None:
        probes.check_keys(self)

    def check_objects_wiped(self) -> None:
        probes.check_objects_wiped(self)

    def issuer_root(self, ef_2f02: bytes, checks: tuple[str, ...] = ("R18.issuer-is-root",)) -> str:
        return probes.issuer_root(self, ef_2f02, checks)

    def present_so_pin_with_verify(self) -> str:
        return probes.present_so_pin_with_verify(self)

    def reset_and_sign(self, how: str, check: str) -> None:
        probes.reset_and_sign(self, how, check)

    def present_stale_user_pin(self, stale: bytes) -> str:
        return probes.present_stale_user_pin(self, stale)

    def require_portal(self) -> None:
        if self.mapper.portal is None:
            pytest.skip(self.target.portal_missing())

    # -- set-up and restore (conformance.provision) ------------------------------------------

    def fresh(self) -> None:
        provision.fresh(self)

    def provision(self, options: int | None = None, retries: int | None = None, keys: int = 0,
                  min_retries: int = 1, own_key: bool = False) -> None:
        provision.provision(self, options, retries, keys, min_retries, own_key)

    def restore(self) -> None:
        provision.restore(self)

    def rewire(self) -> None:
        provision.rewire(self)

    # -- power cuts (conformance.power) ------------------------------------------------------

    def require_power_cut(self) -> None:
        power.require_power_cut(self)

    def step_with_power_cut(self, cmd: Command, moment: CutMoment = CutMoment.PIN_CHECK) -> Outcome:
        return power.step_with_power_cut(self, cmd, moment)


def open_device(target: Target, recorder: TraceRecorder, profile: Profile, declared: CostClass) -> Device:
    """Wire a device for one test: mapper -> interlock guard -> trace recorder -> transport."""
    raw = target.fresh_transport()
    recorder.context("connect", (target.twin or ExtState.shipped()).abstract)
    if recorder.lines and not target.persistent:
        recorder.event(EVENT_NEW_TOKEN)  # a trace that goes on (tour segment) on a fresh token
    tracing = TracingTransport(raw, recorder)
    guard = GuardedTransport(tracing, target.consent, right_so_pin=lambda: target.pins.so_pin)
    guard.own_key_fids = target.own_key_fids
    guard.test_cost = declared
    mapper = Mapper(guard, pins=target.pins, keys=target.keys, objects=target.objects)
    tracing.connect()
    mapper.select()  # the model's states are those of the selected applet
    state = target.twin if target.twin is not None else ExtState.shipped()
    device = Device(target, mapper, recorder, guard, profile, state, declared)
    mapper.portal = target.portal_link(device)
    return device
