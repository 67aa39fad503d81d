"""Who works the firmware-update portal for the suite: the model's `firmware_update` and
`portal_login` (rules R12–R15, cost class `operator`).

* `SimulatedPortalLink` (the in-process emulator): `emulator.portal` plays PKI-as-a-Service.
  The portal talks to the token through the mapper's transport, so its APDUs are traced and
  guarded like the suite's own; an update first logs into the portal with the suite's own
  working HSM (a blocked HSM cannot log in, and the token under test need not work).
* `OperatorPortalLink` (a real token, or the emulator presented as one): a person. The suite
  releases the token, prints exactly what to do in the portal, waits for Enter (or y/n), takes
  the token back and verifies the outcome itself: after an update the token must be
  uninitialized (6A88), its EF.C_DevAut must differ, and the new chain must verify to the root
  the old one verified to (CardContact's for a genuine token, the test root for the emulator).

Both return the abstract outputs of docs/design.md: "update-ok", "update-refused-keys",
"update-refused-limit", "login-ok", "login-refused". Anything else (an update that happened
only in part, say) is returned as a descriptive word no model outcome accepts, so the step
fails with it in the message.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Protocol

import pytest

from hsm_lifecycle.conformance.mapper import IdentityUnreadable, apdu
from hsm_lifecycle.conformance.terminal import handed_over
from hsm_lifecycle.conformance.transport.base import Response, TransportError
from hsm_lifecycle import cvc
from hsm_lifecycle.protocol import CLA_ISO, PIN_SO, PIN_USER, SW, Ins, describe_sw
from hsm_lifecycle.model.outputs import LOGIN_OK, LOGIN_REFUSED, UPDATE_OK, UPDATE_REFUSED_KEYS, UPDATE_REFUSED_LIMIT

if TYPE_CHECKING:
    from hsm_lifecycle.conformance.mapper import Mapper
    from hsm_lifecycle.conformance.trace import TraceRecorder
    from hsm_lifecycle.emulator import VirtualToken
    from hsm_lifecycle.emulator.portal import PluggedDevice, PortalFault, PortalSession, TokenLoader

PORTAL_URL = "https://www.pki-as-a-service.net"
SUITE_ACCOUNT = "conformance-suite@hsm-lifecycle.invalid"  # the suite's account in the simulation
ACCOUNT_PIN = b"246810"  # user PIN of the suite's own working HSM (simulation only)
RECONNECT_TIMEOUT_S = 30.0  # a token re-enumerates after its firmware was replaced
RECONNECT_PAUSE_S = 0.5
SKIP = "s"


# -- the simulated portal (emulator) -----------------------------------------------------------


def _rapdu(rsp: Response) -> bytes:
    return rsp.data + rsp.sw.to_bytes(2, "big")


@dataclass
class SimulatedPortalLink:
    """hsm_lifecycle.emulator.portal working on the target's in-process token."""

    token: Callable[[], "VirtualToken | None"]  # the token in the reader now (targets renew it)
    faults: "frozenset[PortalFault]" = frozenset()
    recorder: "TraceRecorder | None" = None  # the device's trace: an install is an event in it
    _portal: object = field(init=False, repr=False)
    _session: "PortalSession | None" = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        from hsm_lifecycle.emulator.portal import Portal

        self._portal = Portal(root=cvc.load_test_root(), faults=self.faults)

    def firmware_update(self, mapper: "Mapper") -> str:
        return self._account().update(self._device(mapper)).verdict.value

    def login(self, mapper: "Mapper") -> str:
        result = self._portal.login(self._device(mapper), mapper.pins.user_pin, email=SUITE_ACCOUNT)  # type: ignore[attr-defined]
        return result.verdict.value

    def _device(self, mapper: "Mapper") -> "PluggedDevice":
        from hsm_lifecycle.emulator.portal import PluggedDevice, TokenLoader

        token = self.token()
        if token is None:
            raise RuntimeError("the simulated portal needs the target's in-process token")
        loader = TokenLoader(token)
        traced = loader if self.recorder is None else TracedLoader(loader, self.recorder)
        return PluggedDevice(lambda capdu: _rapdu(mapper.send(capdu)), traced)

    def _account(self) -> "PortalSession":
        """Logged in with the suite's own working HSM (made once per link)."""
        from hsm_lifecycle.emulator.portal import PluggedDevice, working_hsm

        if self._session is None:
            hsm = working_hsm(ACCOUNT_PIN)
            result = self._portal.login(PluggedDevice.of(hsm), ACCOUNT_PIN, email=SUITE_ACCOUNT)  # type: ignore[attr-defined]
            if result.session is None:
                raise RuntimeError(f"the suite's working HSM could not log into the simulated portal: {result.refusal}")
            self._session = result.session
        return self._session


@dataclass(frozen=True)
class TracedLoader:
    """The emulator's firmware loader, leaving an event in the trace for each install: the
    install is no APDU, and a replay must redo it to stay in step with the recording."""

    inner: "TokenLoader"
    recorder: "TraceRecorder"

    def so_blocked_updates(self) -> int:
        return self.inner.so_blocked_updates()

    def install(self, *, counted: bool, keep_identity: bool) -> None:
        from hsm_lifecycle.conformance.trace import EVENT_FIRMWARE, FIRMWARE_COUNTED, FIRMWARE_IDENTITY_KEPT

        self.inner.install(counted=counted, keep_identity=keep_identity)
        flags = (FIRMWARE_COUNTED if counted else 0) | (FIRMWARE_IDENTITY_KEPT if keep_identity else 0)
        self.recorder.event(EVENT_FIRMWARE, bytes([flags]))


# -- a person at the real portal ---------------------------------------------------------------


class Prompter(Protocol):
    def ask(self, text: str) -> str:
        """Show `text` (steps and a question) and return the person's answer line."""
        ...


@dataclass
class TerminalPrompter:
    """stdin/stdout. The suite gets here only when stdin is a terminal (interlocks.Consent), so
    a person is there to answer; end of input means "skip", never a wait. The terminal is
    handed over for the prompt (conformance.terminal): pytest's capture and `hsm-lifecycle
    run`'s progress display are paused, so it works without `-s`."""

    def ask(self, text: str) -> str:
        with handed_over():
            if not sys.stdin.isatty():
                pytest.skip("an operator step needs a person at a terminal, and stdin is not one")
            sys.stdout.write("\n" + text)
            sys.stdout.flush()
            line = sys.stdin.readline()
        if not line:
            pytest.skip("end of input at an operator step: nobody to do it")
        return line.strip()


@dataclass
class PortalScript:
    """A scripted operator at the emulator's simulated portal (`hsm-lifecycle emulate --portal
    SOCKET`): does what the printed step asks, then answers the question as a person would. The
    suite still verifies the outcome on the token itself, exactly as after a person."""

    socket: Path
    user_pin: Callable[[], bytes]  # the PIN the login step names (the owner's or the suite's own)

    def ask(self, text: str) -> str:
        from hsm_lifecycle.emulator.portal_service import ask_portal

        try:
            if "OPERATOR STEP: firmware update" in text:
                ask_portal(self.socket, "update")
                return ""  # Enter: done (or refused; the token tells which)
            if "OPERATOR STEP: portal login" in text:
                answer = ask_portal(self.socket, f"login {self.user_pin().hex()}")
                return "y" if answer == LOGIN_OK else "n"
        except OSError as exc:
            pytest.skip(f"the scripted operator cannot reach the portal on {self.socket}: {exc}")
        return SKIP


@dataclass(frozen=True)
class IdentitySeen:
    raw: bytes
    chain: cvc.DeviceChain
    root: cvc.CVCertificate


@dataclass
class OperatorPortalLink:
    """A person does the portal step; the suite verifies what it can on the token."""

    session_expected: Callable[[], bool]  # the model twin holds a verified user session now
    owner_pin_given: bool = False  # --hsm-pin: the person knows the token's own user PIN
    prompter: Prompter = field(default_factory=TerminalPrompter)
    reader: str = ""
    reconnect_timeout: float = RECONNECT_TIMEOUT_S

    def firmware_update(self, mapper: "Mapper") -> str:
        before = self._identity(mapper)
        so_blocked = mapper.send(apdu(CLA_ISO, Ins.VERIFY, 0, PIN_SO)).sw == SW.AUTH_METHOD_BLOCKED
        steps = update_steps(before.chain.serial, self.reader, so_blocked)
        self._hand_over(mapper, steps, "Press Enter when the portal has finished or refused (s + Enter skips this check): ")
        so_sw = mapper.send(apdu(CLA_ISO, Ins.VERIFY, 0, PIN_SO)).sw
        after = mapper.read_identity()
        if after == before.raw:
            if so_sw == SW.REFERENCED_DATA_NOT_FOUND:
                return "update-incomplete(uninitialized, but EF.C_DevAut unchanged: no new identity)"
            self._restore_session(mapper)
            # Refused: the portal's message decides the kind; on the token it is the SO status.
            return UPDATE_REFUSED_LIMIT if so_sw == SW.AUTH_METHOD_BLOCKED else UPDATE_REFUSED_KEYS
        problems = []
        if so_sw != SW.REFERENCED_DATA_NOT_FOUND:
            problems.append(f"SO-PIN query answers {describe_sw(so_sw)}, not 6A88 (not initialized)")
        try:
            cvc.verify_c_devaut(after, before.root)
        except cvc.ChainError as exc:
            problems.append(f"the new EF.C_DevAut does not verify to {before.root.chr}: {exc}")
        if problems:
            return f"update-incomplete({'; '.join(problems)})"
        return UPDATE_OK

    def login(self, mapper: "Mapper") -> str:
        serial = self._identity(mapper).chain.serial
        answer = self._hand_over(mapper, login_steps(serial, self._pin_hint(mapper), self.reader), "Did the portal log you in with this token? y/n + Enter (s skips this check): ", ("y", "n"))
        if answer == "y":
            # The portal's session ended when the suite took the token back: the model's
            # "authenticated" is the login's VERIFY, which the suite repeats (right PIN).
            mapper.send(apdu(CLA_ISO, Ins.VERIFY, 0, PIN_USER, mapper.pins.user_pin))
            return LOGIN_OK
        self._restore_session(mapper)
        return LOGIN_REFUSED

    # -- helpers -----------------------------------------------------------------------------

    def _identity(self, mapper: "Mapper") -> IdentitySeen:
        try:
            raw = mapper.read_identity()
            objects = cvc.parse_cv_objects(raw)
            issuer = objects[1].car if len(objects) > 1 else None  # type: ignore[union-attr]
            root = cvc.load_roots().get(issuer or "")
            if root is None:
                raise cvc.ChainError(f"its DICA names issuer {issuer}, not a shipped root")
            return IdentitySeen(raw, cvc.verify_c_devaut(raw, root), root)
        except (cvc.CvcError, IdentityUnreadable) as exc:
            pytest.skip(f"the token's identity does not verify before the portal step, so its outcome cannot be judged: {exc}")

    def _hand_over(self, mapper: "Mapper", steps: str, question: str, answers: tuple[str, ...] = ("",)) -> str:
        """Release the token, let the person work, take it back (even if they skip)."""
        mapper.transport.close()  # an exclusive PC/SC handle would lock the portal's client out
        try:
            answer = self._ask(steps + "\n" + question, answers)
        finally:
            self._reconnect(mapper)
        if answer == SKIP:
            pytest.skip("the operator skipped the portal step")
        return answer

    def _ask(self, text: str, answers: tuple[str, ...]) -> str:
        for _ in range(3):
            answer = self.prompter.ask(text).strip().lower()
            if answer in answers or answer == SKIP:
                return answer
        pytest.skip(f"no usable answer at the operator step (expected {' / '.join(a or 'Enter' for a in answers)})")

    def _reconnect(self, mapper: "Mapper") -> None:
        deadline = time.monotonic() + self.reconnect_timeout
        while True:
            try:
                mapper.transport.connect()
                break
            except TransportError:
                if time.monotonic() >= deadline:
                    raise
                time.sleep(RECONNECT_PAUSE_S)
        mapper.select()

    def _restore_session(self, mapper: "Mapper") -> None:
        """The portal's client ended the card session; where the model keeps one (nothing
        changed, by the rules), the suite opens it again with the right PIN: at full tries that
        changes nothing else."""
        if self.session_expected():
            mapper.send(apdu(CLA_ISO, Ins.VERIFY, 0, PIN_USER, mapper.pins.user_pin))

    def _pin_hint(self, mapper: "Mapper") -> str:
        if mapper.pins.user_idx == 0 and self.owner_pin_given:
            return "the one you gave the suite with --hsm-pin"
        # The suite's own alternate (or default) PIN, set by the suite: it is no secret of the owner.
        return mapper.pins.user_pin.decode("ascii", "replace")


def update_steps(serial: str, reader: str, so_blocked: bool = False) -> str:
    where = f' in reader "{reader}"' if reader else ""
    warning = (
        [
            "  NOTE: this token's SO-PIN is blocked. If the portal admits the update, it uses one of the",
            "  5 updates a token gets for a blocked SO-PIN in its lifetime (R13). s + Enter skips.",
        ]
        if so_blocked
        else []
    )
    return "\n".join(
        [
            f"OPERATOR STEP: firmware update of the token with serial {serial}",
            f"  1. The suite has released the token; leave it{where}.",
            f"  2. Open the PKI-as-a-Service portal ({PORTAL_URL}) and log in with a working HSM",
            "     (initialized, user PIN not blocked; a blocked HSM cannot log in). It may be this token.",
            f"  3. Start the firmware update for the token with serial {serial} (plugged into this PC,",
            "     or chosen from the devices registered with your account).",
            '  4. Whatever the portal answers (update done; "Smartcard-HSM contains keys. Please remove',
            '     keys first"; or a refusal because the SO-PIN has used its updates), do nothing else.',
            "  The suite then checks the token itself: not initialized, new EF.C_DevAut, chain to the root.",
            *warning,
        ]
    )


def login_steps(serial: str, pin_hint: str, reader: str) -> str:
    where = f' (in reader "{reader}")' if reader else ""
    return "\n".join(
        [
            f"OPERATOR STEP: portal login with the token with serial {serial}{where}",
            f"  1. Open the PKI-as-a-Service portal ({PORTAL_URL}) and log in with THIS token:",
            f"     device authentication, then its user PIN: {pin_hint}.",
            "  2. Try once only: a wrong PIN would spend one of its tries.",
            "  3. Log out again.",
        ]
    )
