"""What the suite points at, and the model twin that walks beside it.

A `Target` lives for the session and hands each test a `Device`: the mapper on a guarded,
traced transport plus the model state the device is believed to be in. `Device.step` is the one
place where a command is judged: it asks the oracle first, checks the step's cost against the
test's marker and the user's consent, sends the APDUs, and fails with the APDU trace when the
oracle does not accept the device's answer.

Targets differ in persistence. The in-process emulator gives every test a fresh, shipped token.
Everything else (a real token, the emulator behind vpcd, the emulator posing as a real token)
is one device for the whole session: each test starts where the previous one left it, provisions
what it needs (re-initializing only with consent) and restores the PINs and keys it changed.
"""

from __future__ import annotations

import atexit
import tempfile
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Callable, NoReturn

import pytest

from hsm_lifecycle.conformance.custody import Custody
from hsm_lifecycle.conformance.interlocks import Consent, GuardedTransport, InterlockRefused, SerialMismatch
from hsm_lifecycle.conformance.judging import CheckLog, checks_to_fail
from hsm_lifecycle.model.cost import CostClass
from hsm_lifecycle.conformance.mapper import IdentityUnreadable, Mapper, PinBook, PortalLink, PortalUnavailable
from hsm_lifecycle.conformance.options import HsmOptions, TargetSpec
from hsm_lifecycle.conformance.trace import EVENT_NEW_TOKEN, EVENT_POWER_CUT, TraceRecorder, TracingTransport
from hsm_lifecycle.conformance.transport.base import DeadlineTransport, Transport, TransportError
from hsm_lifecycle.conformance.transport.inprocess import InProcessTransport
from hsm_lifecycle.protocol import OPTION_RESET_RETRY_COUNTER, OPTION_TRANSPORT_PIN, SO_PIN_TRIES, USER_PIN_TRIES_DEFAULT, describe_sw
from hsm_lifecycle.model.checks import BY_ID
from hsm_lifecycle.model.commands import Command
from hsm_lifecycle.model.divergence import ODD_BEHAVIOUR_CHECKS, Blame, Torn, blame, blame_key_count, query_moves_itself
from hsm_lifecycle.model.oracle import Outcome, expect
from hsm_lifecycle.model.profiles import Profile, UnresolvedBehaviour
from hsm_lifecycle.model.states import ExtState

if TYPE_CHECKING:
    from hsm_lifecycle.emulator import Fault, VirtualToken
    from hsm_lifecycle.emulator import Profile as EmulatorProfile
    from hsm_lifecycle.emulator.portal import PortalFault

AS_REAL_READER = "emulator (presented as a real token)"


class ConformanceFailure(AssertionError):
    """The device answered something the model does not accept (or an invariant broke)."""


class CostExceeded(Exception):
    """A test took a step costlier than its cost-class marker says: the marker is wrong."""


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


class CutRecorder:
    """Wraps a test's power-loss hook so the trace says where the power was cut: the event's
    number within the command (the `seq` of a hook installed just before it), which a replay
    on the emulator re-arms with `PowerCut(at=n)`."""

    def __init__(self, hook: Callable[..., None], recorder: TraceRecorder) -> None:
        self.hook = hook
        self.recorder = recorder
        self._line = -1  # trace length when the current command's events began
        self._seen = 0

    def __call__(self, event: object) -> None:
        if len(self.recorder.lines) != self._line:  # a new command: its events count from 0
            self._line, self._seen = len(self.recorder.lines), 0
        n = self._seen
        self._seen += 1
        try:
            self.hook(event)
        except BaseException:
            # Written before the torn command's own line, which the transport adds next.
            self.recorder.event(EVENT_POWER_CUT, bytes([min(n, 0xFF)]))
            raise


# ---------------------------------------------------------------------------------------------
# Targets


class Target:
    """One device (or a factory of fresh emulated ones) for the whole session."""

    persistent = True
    can_renew = False

    def __init__(self, spec: TargetSpec, options: HsmOptions, consent: Consent) -> None:
        self.spec = spec
        self.options = options
        self.consent = consent
        self.pins = PinBook.create(options.pin, options.so_pin)
        self.keys: list[int] = []  # key ids the suite believes present, oldest first
        self.own_key_fids: set[int] = set()
        self.twin: ExtState | None = None  # model state of a persistent device
        self.profile: Profile | None = None  # resolved by conformance.observe
        self.observations: dict[str, str] = {}
        self.unknown_behaviours: dict[str, str] = {}
        self.odd_behaviours: dict[str, str] = {}  # unknown because of what the device answered
        self.serial: str | None = None
        self.version: str | None = None  # applet version from the FCP
        self.found: ExtState | None = None  # a persistent device as the session found it
        self.custody: Custody | None = None  # a guarded token's custody (conformance.custody)

    def in_custody(self, transport: Transport) -> Transport:
        """A guarded token's transport under its custody: every APDU to it passes there."""
        if not self.consent.guarded:
            return transport
        self.custody = Custody(
            pin=self.options.pin, so_pin=self.options.so_pin, so_floor=self.consent.so_floor,
            may_wipe=lambda: self.consent.ceiling() >= CostClass.WIPES,
        )
        return self.custody.wrap(transport)

    def raw_transport(self) -> Transport:
        raise NotImplementedError

    def timed(self, transport: Transport) -> Transport:
        """`transport` under the per-exchange deadline (--hsm-apdu-timeout), so a device that
        stops answering fails the test in progress instead of hanging the run. Close it through
        the wrapper: closing a pcsc handle stuck in a transmit can block too."""
        return DeadlineTransport(transport, self.options.apdu_timeout)

    @property
    def emulator_profile(self) -> EmulatorProfile:
        """The open behaviours an emulated token is manufactured with (project-only option)."""
        from hsm_lifecycle.conformance.options import emulator_profile

        return emulator_profile(self.options.emulator_profile)

    def fresh_transport(self) -> Transport:
        """The transport for the next test (a new token on the in-process emulator)."""
        return self.raw_transport()

    def renew(self) -> None:
        """Replace the device by a fresh, shipped one (emulators only)."""
        raise NotImplementedError

    def emulated_token(self) -> VirtualToken | None:
        """The VirtualToken behind an in-process target (for tear injection), else None."""
        return None

    # -- the firmware-update portal (conformance.operator) --------------------------------------

    def token_faults(self) -> frozenset[Fault]:
        """The --hsm-emulator-fault switches meant for the token (the rest are the portal's)."""
        from hsm_lifecycle.emulator.portal import split_faults

        return split_faults(self.options.faults)[0]

    def portal_faults(self) -> frozenset[PortalFault]:
        from hsm_lifecycle.emulator.portal import split_faults

        return split_faults(self.options.faults)[1]

    def portal_link(self, device: "Device") -> PortalLink | None:
        """Who works the portal for `device`: on a token a person does, and only in a test
        marked `operator` (which the interlocks let run only with consent and a terminal): a
        tour or a random walk never asks anyone for a firmware update."""
        from hsm_lifecycle.conformance.operator import OperatorPortalLink

        if device.declared != CostClass.OPERATOR:
            return None
        link = OperatorPortalLink(
            session_expected=lambda: device.state.authenticated,
            owner_pin_given=self.options.pin is not None,
            reader=self.raw_transport().describe().get("reader", ""),
        )
        socket = self.portal_socket()
        if socket is not None:  # a scripted operator at the emulator's simulated portal
            from hsm_lifecycle.conformance.operator import PortalScript

            link.prompter = PortalScript(socket, lambda: device.mapper.pins.user_pin)
        return link

    def portal_socket(self) -> Path | None:
        """The simulated portal of an emulator served through pcscd (--hsm-portal), if any."""
        return Path(self.options.portal_socket) if self.options.portal_socket else None

    def portal_missing(self) -> str:
        """Why this target's tests have no portal (Device.require_portal skips with it)."""
        return "on a token the firmware-update portal needs a person: only tests marked 'operator' ask for one"

    def serial_claimed(self) -> str | None:
        """The serial the owner (--hsm-serial, as OpenSC shows it) or the emulator claims."""
        return self.options.serial or self.raw_transport().describe().get("serial")

    def describe(self) -> dict[str, str]:
        info = dict(self.raw_transport().describe())
        if self.serial:
            info["serial"] = self.serial
        if self.version:
            info["version"] = self.version
        info["profile"] = self.profile.name if self.profile else "smartcard-hsm"
        return info

    def close(self) -> None:
        pass


class InProcessTarget(Target):
    """Fresh in-process token per test: every cost class runs, every time."""

    persistent = False
    can_renew = True

    def __init__(self, spec: TargetSpec, options: HsmOptions, consent: Consent) -> None:
        super().__init__(spec, options, consent)
        self._transport: InProcessTransport | None = None

    def manufacture(self) -> InProcessTransport:
        from hsm_lifecycle.emulator import VirtualToken

        return InProcessTransport(VirtualToken.manufacture(profile=self.emulator_profile, faults=self.token_faults()))

    def raw_transport(self) -> Transport:
        if self._transport is None:
            self._transport = self.manufacture()
        return self._transport

    def fresh_transport(self) -> Transport:
        self._transport = self.manufacture()
        self.pins = PinBook.create(self.options.pin, self.options.so_pin)
        self.keys = []
        self.own_key_fids = set()
        self.twin = ExtState.shipped()
        return self._transport

    def renew(self) -> None:
        self.fresh_transport()

    def emulated_token(self) -> VirtualToken | None:
        return self._transport.token if self._transport else None

    def portal_link(self, device: "Device") -> PortalLink | None:
        """The simulated portal (emulator.portal) on the token in the reader now."""
        from hsm_lifecycle.conformance.operator import SimulatedPortalLink

        return SimulatedPortalLink(self.emulated_token, self.portal_faults(), recorder=device.recorder)


class AsRealTarget(Target):
    """The emulator presented as a real token (project-only): one token for the session, kind
    "pcsc", every interlock active. A new token is put in a used state first (initialized with
    the default PINs, one key of "its owner"); with --hsm-emulator-state it lives in that file,
    across runs, like a real token."""

    def __init__(self, spec: TargetSpec, options: HsmOptions, consent: Consent) -> None:
        super().__init__(spec, options, consent)
        from hsm_lifecycle.emulator import VirtualToken

        faults = self.token_faults()
        path = Path(options.emulator_state) if options.emulator_state else None
        if path is not None and path.exists():
            self.token = VirtualToken.open(path, faults=faults)
        else:
            self.token = VirtualToken.manufacture(state_path=path, profile=self.emulator_profile, faults=faults)
            self.set_up_as_owner(self.token, options.pin, options.so_pin)
        # Timed like the real token it stands for (the in-process target is not: a thread per
        # APDU would slow its 200-example runs, and its token cannot hang without a bug).
        self._transport = self.in_custody(self.timed(InProcessTransport(self.token, kind="pcsc", reader=AS_REAL_READER)))

    @staticmethod
    def set_up_as_owner(token: VirtualToken, pin: bytes | None = None, so_pin: bytes | None = None) -> None:
        """What the owner did before the suite ever saw the token: initialized it (option
        0x0001, 3 tries) and generated one key."""
        owner = Mapper(InProcessTransport(token), pins=PinBook.create(pin, so_pin))
        owner.select()
        for cmd, uninit in (
            (Command.initialize("right", OPTION_RESET_RETRY_COUNTER, USER_PIN_TRIES_DEFAULT), True),
            (Command.verify_user("right"), False),
            (Command.generate_key(), False),
            (Command.select(), False),
        ):
            owner.run(cmd, uninitialized=uninit)
        token.power_off()

    def raw_transport(self) -> Transport:
        return self._transport

    def emulated_token(self) -> VirtualToken | None:
        return None  # a real token offers no tear hook


class PcscTarget(Target):
    def __init__(self, spec: TargetSpec, options: HsmOptions, consent: Consent) -> None:
        super().__init__(spec, options, consent)
        from hsm_lifecycle.conformance.transport.pcsc import PcscTransport

        self._transport = self.in_custody(self.timed(PcscTransport(spec.reader or "")))

    def raw_transport(self) -> Transport:
        return self._transport

    def close(self) -> None:
        self._transport.close()


class VpcdTarget(Target):
    """The emulator in its own process behind pcscd+vpcd: one token per session, renewed
    (a new state file, a restarted process) only when a test needs a shipped token."""

    can_renew = True

    def __init__(self, spec: TargetSpec, options: HsmOptions, consent: Consent) -> None:
        super().__init__(spec, options, consent)
        from hsm_lifecycle.conformance.transport.pcsc import empty_vpcd_port
        from hsm_lifecycle.emulator.vpcd import VpcdError, lease_port, vpcd_readers

        if self.options.faults:
            raise pytest.UsageError("--hsm-emulator-fault works with the in-process emulator only (the vpcd emulator runs in another process).")
        self._stack = ExitStack()
        self.can_renew = not options.persistent  # --hsm-persistent: one token, planned like a real one
        self._generation = 0
        self._process = None
        self._transport: Transport | None = None
        atexit.register(self.close)  # an emulator process must never outlive the run
        try:
            self._dir = Path(self._stack.enter_context(tempfile.TemporaryDirectory(prefix="hsm-vpcd-")))
            ports = vpcd_ports(spec, vpcd_readers())
            self._port = self._stack.enter_context(lease_port(ports, wait=30.0, usable=empty_vpcd_port))
            self._reader = vpcd_readers()[self._port]
            self._start()
        except (VpcdError, TransportError) as exc:
            self._stack.close()
            raise TransportError(str(exc)) from None

    def _start(self) -> None:
        from hsm_lifecycle.conformance.transport.pcsc import PcscTransport
        from hsm_lifecycle.emulator.vpcd import VpcdError, start_emulator

        self._generation += 1
        try:
            portal = self._dir / "portal.sock" if self.options.persistent else None
            self._process = start_emulator(self._port, self._dir / f"token-{self._generation}.json", portal=portal)
        except VpcdError as exc:
            raise TransportError(str(exc)) from None
        self._transport = self.timed(PcscTransport(self._reader, card_timeout=10.0))

    def raw_transport(self) -> Transport:
        assert self._transport is not None
        return self._transport

    def portal_link(self, device: "Device") -> PortalLink | None:
        # The token lives in another process; kept persistent, that process serves its portal.
        return super().portal_link(device) if self.options.persistent else None

    def portal_socket(self) -> Path | None:
        return self._dir / "portal.sock" if self.options.persistent else super().portal_socket()

    def portal_missing(self) -> str:
        return (
            "the firmware-update checks need the simulated portal, which works on the in-process emulator "
            "(its firmware loader); the vpcd emulator runs in another process"
        )

    def describe(self) -> dict[str, str]:
        return {**super().describe(), "kind": "emulator", "via": "pcscd+vpcd", "port": str(self._port)}

    def renew(self) -> None:
        if self._transport is not None:
            self._transport.close()
        if self._process is not None:
            self._process.stop()
            _wait_until_empty(self._reader)
        self.pins = PinBook.create(self.options.pin, self.options.so_pin)
        self.keys = []
        self.own_key_fids = set()
        self.twin = ExtState.shipped()
        self._start()

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
        if self._process is not None:
            self._process.stop()
            self._process = None
        self._stack.close()


def vpcd_ports(spec: TargetSpec, readers: dict[int, str]) -> list[int]:
    """The vpcd ports a vpcd target may lease, best first: only the named reader's port when
    --hsm-reader names one; otherwise every port, starting at the spec's fleet slot, so that
    worker gwK gets the K-th reader whenever it is free (a stable worker-to-token mapping)."""
    from hsm_lifecycle.conformance.transport.pcsc import select_reader

    ports = sorted(readers)
    if spec.reader:
        name = select_reader([readers[p] for p in ports], spec.reader)
        return [p for p in ports if readers[p] == name]
    first = spec.slot % len(ports) if ports else 0
    return ports[first:] + ports[:first]


def _wait_until_empty(reader: str, timeout_s: float = 5.0) -> None:
    """pcscd notices a vanished vpcd card at its next poll; a new card on the same port before
    that would meet a stale handle."""
    import time

    from smartcard import scard

    rv, context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
    if rv != scard.SCARD_S_SUCCESS:
        return
    try:
        deadline = time.monotonic() + timeout_s
        state = scard.SCARD_STATE_UNAWARE
        while time.monotonic() < deadline:
            rv, readers = scard.SCardGetStatusChange(context, 200, [(reader, state)])
            if rv == scard.SCARD_S_SUCCESS:
                state = readers[0][1] & ~scard.SCARD_STATE_CHANGED
                if state & scard.SCARD_STATE_EMPTY:
                    return
    finally:
        scard.SCardReleaseContext(context)


def make_target(options: HsmOptions, consent: Consent | None = None) -> Target:
    consent = consent or Consent(
        guarded=options.target.guarded,
        serial=options.serial,
        allow_irreversible=options.allow_irreversible,
        allow_operator=options.allow_operator,
        so_floor=options.so_floor,
    )
    spec = options.target
    if spec.kind == "emulator":
        return (AsRealTarget if spec.as_real else InProcessTarget)(spec, options, consent)
    if spec.kind == "emulator:vpcd":
        return VpcdTarget(spec, options, consent)
    return PcscTarget(spec, options, consent)


# ---------------------------------------------------------------------------------------------
# The device a test drives


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

    def checking(self, *ids: str) -> "AbstractContextManager[None]":
        """`with hsm.checking("R02.x", ...):` the steps inside decide these checks (conformance.judging)."""
        return self.ledger.checks.scope(ids)

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
        from hsm_lifecycle.conformance.campaign import step_observing

        observed = step_observing(self, cmd)  # a persistent token answers what the model leaves open
        if observed is not None:
            return observed
        cmd = self.mapper.as_sent(cmd)  # e.g. INITIALIZE's PIN length: the oracle judges what is sent
        outcome = self.expect(cmd)
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

    def steps(self, *cmds: Command) -> list[str]:
        return [self.step(cmd) for cmd in cmds]

    def admit(self, outcome: Outcome) -> None:
        cost = self.effective_cost(outcome)
        if not self.setup and cost > self.declared and cost != CostClass.OPERATOR:
            raise CostExceeded(
                f"{outcome.command} in {outcome.before} costs '{cost.value}' ({outcome.transition}), "
                f"more than this test's marker '{self.declared.value}'"
            )
        if not self.target.consent.guarded:
            return
        if cost == CostClass.OPERATOR:
            reason = self.target.consent.skip_reason(CostClass.OPERATOR)
            if reason:
                raise InterlockRefused(reason)
        elif cost > self.target.consent.ceiling():
            raise InterlockRefused(
                f"{outcome.command} would cost '{cost.value}' here ({outcome.transition}); "
                + self.target.consent.skip_reason(cost)  # type: ignore[operator]
            )
        before, after = outcome.before.so_tries, outcome.next.so_tries
        floor = self.target.consent.so_floor
        if before is not None and after is not None and after < before and after < floor and self.guard.test_cost < CostClass.IRREVERSIBLE:
            raise InterlockRefused(
                f"{outcome.command} would leave {after} SO tries, below the floor of {floor} (--hsm-so-floor)"
            )

    def effective_cost(self, outcome: Outcome) -> CostClass:
        """The model's cost class, except that deleting a key the suite generated itself loses
        nothing of the owner's (the model cannot tell whose key it is; the mapper can)."""
        cost = CostClass.parse(outcome.cost)
        if outcome.command.name == "delete_key" and self.mapper.keys and self.guard.owns(self.mapper.newest_key):
            return min(cost, CostClass.TRIES)
        return cost

    def check_credentials(self, cmd: Command) -> None:
        """On a real token the suite presents the owner's PINs only if the owner gave them."""
        if not self.target.consent.guarded or not self.state.is_initialized:
            return
        opts = self.target.options
        right_user = (cmd.name in ("verify_user", "change_user_pin") and cmd.pin == "right") or cmd.name == "portal_login"
        right_so = cmd.name in ("initialize", "reset_retry_counter", "change_so_pin") and cmd.so == "right"
        if right_user and opts.pin is None:
            raise InterlockRefused(f"{cmd} presents the token's user PIN: pass it with --hsm-pin")
        if right_so and opts.so_pin is None:
            raise InterlockRefused(f"{cmd} presents the token's SO-PIN: pass it with --hsm-so-pin (16 hex digits)")

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

    def decided(self, *checks: str) -> None:
        """Every observation that decides `checks` was made above and matched (each one fails
        its check on the spot otherwise): they pass."""
        for cid in self.ledger.checks.known(checks):
            self.ledger.checks.passed(cid)

    def precondition(self, condition: bool, message: str, *checks: str) -> None:
        """What `checks` build on held (else they fail); decides nothing by itself."""
        if not condition:
            self.fail(message, checks)

    def check(self, condition: bool, message: str, *checks: str) -> None:
        """Decide `checks` on a condition read from the device: pass now, or fail them."""
        if not condition:
            self.fail(message, checks)
        for cid in self.ledger.checks.known(checks):
            self.ledger.checks.passed(cid)

    def observe(self, behaviour: str, value: str) -> None:
        """An open behaviour seen on the device: recorded, never judged."""
        self.ledger.observations[behaviour] = value

    def observed(self, note: str) -> None:
        """The test reports what it saw (outcome "observed") instead of a pass/fail verdict."""
        self.ledger.observed_note = note

    def may_initialize(self) -> bool:
        """Whether an INITIALIZE APDU may reach this token (never on a real one without serial)."""
        return not self.target.consent.guarded or self.target.consent.ceiling() >= CostClass.WIPES

    def require_portal(self) -> None:
        if self.mapper.portal is None:
            pytest.skip(self.target.portal_missing())

    def present_so_pin_with_verify(self) -> str:
        """VERIFY 88 with the SO-PIN: outside the model's alphabet (OpenSC never sends it), so
        its answer is recorded as an observation, not judged. Only sent with the SO counter at
        15, where a right presentation cannot change it; a device that still moves the counter
        is followed (free query) so the model keeps up."""
        from hsm_lifecycle.protocol import CLA_ISO, PIN_SO, Ins

        if self.state.so_tries != SO_PIN_TRIES:
            self.observe("verify-so-with-data", f"not sent (SO tries {self.state.so_tries}, not 15)")
            return ""
        if self.target.consent.guarded and self.target.options.so_pin is None:
            raise InterlockRefused("VERIFY 88 presents the token's SO-PIN: pass it with --hsm-so-pin (16 hex digits)")
        self.recorder.context("verify_so(right) [outside the alphabet]", self.state.abstract, ("R09",))
        self.history.append(None)
        rsp = self.mapper.send(bytes([CLA_ISO, Ins.VERIFY, 0x00, PIN_SO, 8]) + self.mapper.pins.so_pin)
        self.observe("verify-so-with-data", rsp.sw_hex)
        self.step(Command.query_so())  # judged: a right SO-PIN must not have spent a try (R02)
        return rsp.sw_hex

    def reset_and_sign(self, how: str, check: str) -> None:
        """A warm reset (`how="warm"`, outside the alphabet) or a power cycle (`"power"`), then
        straight away, before any SELECT (which would end the session by itself), SIGN: it must
        be refused, and that decides `check`. Then a re-SELECT; the model goes on unauthenticated."""
        from hsm_lifecycle.conformance import offalphabet as raw
        from hsm_lifecycle.conformance.mapper import SIGN_HASH, apdu
        from hsm_lifecycle.protocol import ALGO_ECDSA_SHA256, CLA_PROPRIETARY, Ins

        self.recorder.context(f"{'warm_reset' if how == 'warm' else 'power_cycle'} [then SIGN before SELECT]", self.state.abstract, ("R10",))
        self.history.append(None)
        if how == "warm":
            self.mapper.transport.reset()
        else:
            self.mapper.transport.power_cycle()
        sign = apdu(CLA_PROPRIETARY, Ins.SIGN, self.mapper.newest_key, ALGO_ECDSA_SHA256, SIGN_HASH, le=0, extended=True)
        raw.expect_sw(self, check, f"SIGN right after the {how} reset, before any SELECT", sign, raw.REFUSED, "an error (6D00 or 6982)")
        self.mapper.select()
        if self.state.is_initialized:
            self.state = self.state.but(authenticated=False)

    def present_stale_user_pin(self, stale: bytes) -> str:
        """VERIFY 81 with `stale`, a user PIN the token had before and must now refuse: judged
        as the model's wrong VERIFY (one try spent, 63Cx)."""
        book = self.mapper.pins
        if stale == book.user_pin:
            raise ValueError("a stale PIN must differ from the current one")
        book.wrong_user_exact = stale
        try:
            return self.step(Command.verify_user("wrong"))
        finally:
            book.wrong_user_exact = None

    def issuer_root(self, ef_2f02: bytes, checks: tuple[str, ...] = ("R18.issuer-is-root",)) -> str:
        """The root CHR the DICA certificate in EF.C_DevAut names as its issuer. Content that
        does not parse fails `rules` naming the file, not with a bare decoder error."""
        from hsm_lifecycle.cvc import CvcError, parse_cv_objects
        from hsm_lifecycle.tlv import TlvError

        try:
            objects = parse_cv_objects(ef_2f02)
        except (CvcError, TlvError) as exc:
            self.fail(f"EF.C_DevAut (2F02) does not parse as CV certificates ({len(ef_2f02)} bytes): {exc}", checks)
        car = getattr(objects[1], "car", None) if len(objects) > 1 else None
        if not car:  # an empty issuer would read as "DICA names issuer ," further on
            self.fail(f"EF.C_DevAut (2F02) holds {len(objects)} CV object(s), not a device certificate followed by "
                      "its DICA certificate naming an issuer", checks)
        return car  # type: ignore[return-value]

    def check_objects_wiped(self) -> None:
        """With no keys in the model, ENUMERATE must list no private key but the device key CC00
        (R07.keys-erased; certificates and data objects are checks of their own)."""
        from hsm_lifecycle.protocol import FID_DEVICE_KEY, FID_PREFIX_PRIVATE_KEY

        if self.state.keys:
            return
        fids = self.read("enumerate objects", self.mapper.enumerate_objects) or []
        left = [f"{fid:04X}" for fid in fids if fid >> 8 == FID_PREFIX_PRIVATE_KEY and fid != FID_DEVICE_KEY]  # type: ignore[union-attr]
        self.check(not left, f"private keys left after INITIALIZE: {', '.join(left)}", "R07.keys-erased")

    # -- free reads the invariants use ------------------------------------------------------

    def read(self, what: str, fn: Callable[[], object]) -> object:
        self.recorder.context(what, self.state.abstract, ())
        return fn()

    def identity(self) -> bytes:
        return self.read("read EF.C_DevAut", self.mapper.read_identity)  # type: ignore[return-value]

    def key_count(self) -> int | None:
        ids = self.read("enumerate objects", self.mapper.key_ids)
        return None if ids is None else len(ids)  # type: ignore[arg-type]

    def check_keys(self) -> None:
        """ENUMERATE must list exactly as many private keys as the model counts."""
        count = self.key_count()
        expected = self.state.keys
        if count is None and not self.state.is_initialized:
            return
        if count != expected:
            found = blame_key_count(expected, -1 if count is None else count, self.history)
            self.fail(f"ENUMERATE OBJECTS lists {'nothing (refused)' if count is None else count} private keys, "
                      f"the model counts {expected}; {found.describe()}", blame=found)

    # -- provisioning -------------------------------------------------------------------------

    def fresh(self) -> None:
        """The test needs an uninitialized token."""
        if not self.state.is_initialized:
            return
        if not self.target.can_renew:
            pytest.skip(
                "this test needs an uninitialized token (shipped or after a firmware update); this one is initialized: "
                "run it on the emulator (--target emulator), or on a token renewed in the portal (--allow-operator)"
            )
        self.target.renew()
        self.rewire()
        self.state = self.target.twin or ExtState.shipped()

    def provision(
        self,
        options: int | None = None,
        retries: int | None = None,
        keys: int = 0,
        min_retries: int = 1,
        own_key: bool = False,
    ) -> None:
        """An initialized token with full user tries, no session and at least `keys` keys.

        `options` / `retries` given: exactly those (a token configured otherwise is
        re-initialized, which needs consent on a real token). Left out: whatever the token has,
        as long as its user PIN is usable and it allows `min_retries` tries (a fresh emulated
        token gets option 0x0001 and 3 tries). `own_key`: the newest key is one the suite
        generated, so a test may aim DELETE at it without risking an owner's key."""
        self.setup = True
        try:
            if not self._fits(options, retries, min_retries):
                if not self.may_initialize():
                    raise InterlockRefused(
                        f"this test needs a token initialized with options={options if options is not None else 'any'}, "
                        f"retries={retries if retries is not None else 'any'}; this one ({self.state}) would have to be "
                        "re-initialized: pass --hsm-serial SERIAL naming this token to allow it"
                    )
                if self.state.so_tries == 0:
                    if not self.target.can_renew:
                        pytest.skip(
                            "this test needs a working SO-PIN; this token's SO-PIN is blocked: only a firmware update "
                            "in the portal renews it (--allow-operator), or run it on the emulator (--target emulator)"
                        )
                    self.fresh()
                want_options = OPTION_RESET_RETRY_COUNTER if options is None else options
                want_retries = max(min_retries, USER_PIN_TRIES_DEFAULT) if retries is None else retries
                self.step(Command.initialize("right", want_options, want_retries))
            if self.state.user_tries == 0:
                self.step(Command.reset_retry_counter("right", False))
            if self.state.user_tries < self.state.user_max and not self.state.transport:
                self.step(Command.verify_user("right"))
            while self.state.keys < keys or (own_key and not (self.mapper.keys and self.guard.owns(self.mapper.newest_key))):
                if not self.state.authenticated:
                    self.step(Command.verify_user("right"))
                self.step(Command.generate_key())
            self.step(Command.select())
        finally:
            self.setup = False

    def _fits(self, options: int | None, retries: int | None, min_retries: int) -> bool:
        s = self.state
        if not s.is_initialized or not s.so_tries or s.user_max < min_retries:
            return False
        if retries is not None and s.user_max != retries:
            return False
        if options is None:
            usable = s.user_tries > 0 or (s.rrc_enabled and s.so_tries > 0)
            return usable and not s.transport
        if s.options != options:
            return False
        if options & OPTION_TRANSPORT_PIN:
            return s.transport  # a used transport PIN cannot come back without INITIALIZE
        return s.user_tries > 0 or s.rrc_enabled

    def step_with_power_cut(self, cmd: Command, hook: Callable[..., None]) -> Outcome:
        """Run `cmd` on the in-process emulator with a power-loss hook that cuts it short.

        Valid for cuts after the PIN comparison decided: by R17 the step's persistent effect
        (the spent try) has happened, so the model's next state holds, minus the session that the
        power loss ended. The caller goes on with judged steps (power_cycle, queries)."""
        from hsm_lifecycle.emulator import PowerLoss

        token = self.target.emulated_token()
        if token is None:
            pytest.skip("power cuts need the in-process emulator's persistence hook (--target emulator) or a power-cut rig")
        outcome = self.expect(cmd)
        self.admit(outcome)
        self.recorder.context(f"{cmd} (power cut)", self.state.abstract, outcome.rules)
        token.set_power_loss_hook(CutRecorder(hook, self.recorder))
        try:
            self.mapper.run(cmd, uninitialized=not self.state.is_initialized)
        except PowerLoss:
            pass
        else:
            self.fail(f"{cmd}: the power cut never happened (the hook did not fire)")
        finally:
            token.set_power_loss_hook(None)
        self.ledger.note(outcome, None)
        self.history.append(Torn(outcome))  # type: ignore[arg-type]
        self.state = outcome.next.but(authenticated=False) if outcome.next.is_initialized else outcome.next
        return outcome

    def restore(self) -> None:
        """Put a persistent token back for its owner: full user tries, the owner's PINs, the
        suite's own keys deleted, and the SO counter back up where the device restores it."""
        self.setup = True
        try:
            self._reconfigure()
            s = self.state
            if not s.is_initialized or s.transport or not s.so_tries:
                return
            if s.user_tries == 0:
                if not s.rrc_enabled:
                    return  # only INITIALIZE would help: left for the owner, the report shows it
                self.step(Command.reset_retry_counter("right", False))
            while self.mapper.keys and self.guard.owns(self.mapper.newest_key):
                if not self.state.authenticated:
                    self.step(Command.verify_user("right"))
                self.step(Command.delete_key())
            if self.mapper.pins.user_idx != 0:
                self.step(Command.change_user_pin("right"))
            if self.mapper.pins.so_idx != 0:
                self.step(Command.change_so_pin("right"))
            restores = self.profile.so_success_restores
            if restores and self.state.so_tries is not None and 2 <= self.state.so_tries < SO_PIN_TRIES:
                self.steps(Command.change_so_pin("right"), Command.change_so_pin("right"))
            if self.state.user_tries < self.state.user_max:
                self.step(Command.verify_user("right"))
            self.step(Command.select())
        finally:
            self.setup = False

    def _reconfigure(self) -> None:
        """With consent to wipe, a test may have left the token configured otherwise than its
        owner had it (options, tries, a blocked PIN): initialize it back to that configuration
        (its keys are gone anyway: that is what the consent was for)."""
        found, s = self.target.found, self.state
        if found is None or not found.is_initialized or not s.is_initialized or not s.so_tries or not self.may_initialize():
            return
        blocked = s.user_tries == 0 and not s.rrc_enabled
        if (s.options, s.user_max) == (found.options, found.user_max) and not blocked and s.transport == found.transport:
            return
        self.step(Command.initialize("right", found.options, found.user_max))
        if self.state.transport and not found.transport:  # the owner had already left transport mode
            self.steps(Command.change_user_pin("right"), Command.change_user_pin("right"))

    def rewire(self) -> None:
        """After the target renewed its device: the same recorder on the new transport."""
        self.recorder.context("connect", ExtState.shipped().abstract)
        self.recorder.event(EVENT_NEW_TOKEN)  # the target put a fresh token in the reader
        tracing = TracingTransport(self.target.raw_transport(), self.recorder)
        self.guard.inner = tracing
        self.mapper.pins = self.target.pins
        self.mapper.keys = self.target.keys
        self.guard.own_key_fids = self.target.own_key_fids
        tracing.connect()
        self.mapper.select()


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
    mapper = Mapper(guard, pins=target.pins, keys=target.keys)
    tracing.connect()
    mapper.select()  # the model's states are those of the selected applet
    state = target.twin if target.twin is not None else ExtState.shipped()
    device = Device(target, mapper, recorder, guard, profile, state, declared)
    mapper.portal = target.portal_link(device)
    return device


# ---------------------------------------------------------------------------------------------
# Session set-up: serial check, state, open behaviours


def read_serial(mapper: Mapper) -> str | None:
    """The serial OpenSC shows, from EF.C_DevAut (a free read); None if unreadable."""
    from hsm_lifecycle.cvc import CvcError, parse_cv_objects, serial_from_chr

    try:
        objects = parse_cv_objects(mapper.read_identity())
        return serial_from_chr(objects[0].chr)  # type: ignore[union-attr]
    except (CvcError, IndexError, AttributeError, IdentityUnreadable):
        return None


def read_so_tries(target: Target, recorder: TraceRecorder) -> int | None:
    """The SO-PIN tries the device has left, asked of it (SELECT and VERIFY 88 without data,
    both free); None when it has no SO-PIN or cannot be reached."""
    from hsm_lifecycle.conformance.mapper import apdu
    from hsm_lifecycle.protocol import CLA_ISO, PIN_SO, SW, Ins, tries_from_sw

    tracing = TracingTransport(target.raw_transport(), recorder)
    mapper = Mapper(GuardedTransport(tracing, target.consent), pins=target.pins, keys=target.keys)
    recorder.context("read SO tries at the end", target.twin.abstract if target.twin else "")
    try:
        mapper.select()  # a test may have left the card manager selected (after an update)
        sw = mapper.send(apdu(CLA_ISO, Ins.VERIFY, 0x00, PIN_SO)).sw
    except TransportError:
        return None
    finally:
        recorder.flush()
    return 0 if sw == SW.AUTH_METHOD_BLOCKED else tries_from_sw(sw)


def prepare(target: Target, recorder: TraceRecorder, *, wiping_test_selected: bool, spending_test_selected: bool = True,
            keep_uninitialized: bool = False) -> None:
    """Open the target for the session. On a persistent device: compare the serial with
    --hsm-serial before any state-changing APDU (SerialMismatch), read the device's state, and
    observe the open behaviours within the consent. On the in-process emulator the probes run on
    a token of their own. Raises SerialMismatch / CredentialError for the plugin to stop on."""
    from hsm_lifecycle.conformance.observe import Probe, observe, read_state

    consent = target.consent
    raw = target.raw_transport()
    tracing = TracingTransport(raw, recorder)
    guard = GuardedTransport(tracing, consent, right_so_pin=lambda: target.pins.so_pin)
    guard.own_key_fids = target.own_key_fids
    guard.test_cost = CostClass.WIPES  # probes never block the SO-PIN; the floor holds on a real token
    mapper = Mapper(guard, pins=target.pins, keys=target.keys)
    probe = Probe(mapper, recorder)
    recorder.context("connect", "")
    tracing.connect()
    target.version = mapper.version_from_fcp()
    recorder.context("read serial", "")
    serial = read_serial(mapper)
    target.serial = serial
    if consent.guarded and consent.serial is not None and serial is None:
        raise SerialMismatch("the token's serial could not be read from EF.C_DevAut, so --hsm-serial cannot be confirmed; nothing was changed")
    consent.confirm_serial(serial or "")
    if target.custody is not None:  # counters read, a leftover journal restored, PINs proven
        target.custody.begin(serial or "", tracing, spending=spending_test_selected or wiping_test_selected)
    if not target.persistent:
        observations, _ = observe(probe, ExtState.shipped(), may_wipe=True, so_floor=None)
    else:
        pin_known = not consent.guarded or target.options.pin is not None
        if target.custody is not None:
            pin_known = target.custody.user_proven
        state = read_state(probe, user_pin_known=pin_known)
        target.found = state
        so_pin_known = not consent.guarded or target.options.so_pin is not None
        if target.custody is not None:
            so_pin_known = target.custody.so_proven
        # Re-initializing an initialized token presents its SO-PIN: only the owner's.
        may_wipe = not consent.guarded or (consent.serial_confirmed and wiping_test_selected and (so_pin_known or not state.is_initialized))
        may_wipe = may_wipe and not keep_uninitialized  # the campaign's first checks need it uninitialized
        observations, _ = observe(
            probe,
            state,
            may_wipe=may_wipe,
            so_floor=consent.so_floor if consent.guarded else None,
            user_pin_known=pin_known,
            so_pin_known=so_pin_known,
        )
        target.twin = read_state(probe, user_pin_known=pin_known)
    recorder.flush()
    target.observations.update(observations.seen)
    target.unknown_behaviours = dict(observations.notes)
    target.odd_behaviours = dict(observations.odd)
    target.profile = observations.profile()
