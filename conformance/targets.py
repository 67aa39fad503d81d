"""What the suite points at: one `Target` per session, of a kind chosen by --target.

Targets differ in persistence. The in-process emulator gives every test a fresh, shipped token.
Everything else (a real token, the emulator behind vpcd, the emulator posing as a real token)
is one device for the whole session: each test starts where the previous one left it, provisions
what it needs (re-initializing only with consent) and restores the PINs and keys it changed.
Each test drives the target through a `Device` (conformance.device); the session opens the
target with conformance.session.prepare.
"""

from __future__ import annotations

import atexit
import tempfile
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from hsm_lifecycle.conformance.custody import Custody
from hsm_lifecycle.conformance.interlocks import Consent
from hsm_lifecycle.conformance.mapper import Mapper, PinBook, PortalLink
from hsm_lifecycle.conformance.options import HsmOptions, TargetSpec
from hsm_lifecycle.conformance.transport.base import DeadlineTransport, Transport, TransportError
from hsm_lifecycle.conformance.transport.inprocess import InProcessTransport
from hsm_lifecycle.model.commands import Command
from hsm_lifecycle.model.cost import CostClass
from hsm_lifecycle.model.profiles import Profile
from hsm_lifecycle.model.states import ExtState
from hsm_lifecycle.protocol import OPTION_RESET_RETRY_COUNTER, USER_PIN_TRIES_DEFAULT

if TYPE_CHECKING:
    from hsm_lifecycle.conformance.device import Device
    from hsm_lifecycle.conformance.power_rig import PowerRig
    from hsm_lifecycle.emulator import Fault, VirtualToken
    from hsm_lifecycle.emulator import Profile as EmulatorProfile
    from hsm_lifecycle.emulator.portal import PortalFault

AS_REAL_READER = "emulator (presented as a real token)"


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
        self.objects: list[int] = []  # the data object (CDxx) the suite writes (Mapper.objects)
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
            may_renew=lambda: self.consent.allow_operator and self.consent.ceiling() >= CostClass.IRREVERSIBLE,
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

    # -- a power-cut rig (conformance.power_rig) -------------------------------------------------

    def power_rig(self) -> PowerRig | None:
        """The rig that cuts this token's power (--hsm-power-rig), if any."""
        from hsm_lifecycle.conformance.power_rig import PowerRig

        return PowerRig(Path(self.options.power_rig)) if self.options.power_rig else None

    def power_rig_missing(self) -> str:
        """Why a power cut cannot happen on this target (the tests skip with it)."""
        flag = "--power-rig" if self.options.option_names == "run" else "--hsm-power-rig"
        return (f"needs {flag} SOCKET: a power cut in the middle of a PIN check needs a power-cut rig in front of "
                "the token (docs/power-rig.md)")

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
        self.objects = []
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
            self._process = start_emulator(self._port, self._dir / f"token-{self._generation}.json", portal=portal,
                                           power_rig=self._dir / "power-rig.sock")
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

    def power_rig(self) -> PowerRig | None:
        # The emulator's process serves a power-cut rig beside the token: R17 is judged through it.
        from hsm_lifecycle.conformance.power_rig import PowerRig

        return PowerRig(self._dir / "power-rig.sock")

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
        self.objects = []
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
