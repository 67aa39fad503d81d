"""The operator path (conformance.operator.OperatorPortalLink) on the emulator presented as a
real token: a scripted "operator" reads the steps the suite prints and does them in the
simulated portal, on the same token (its state file), while the suite waits for Enter. Then the
suite takes the token back and judges the outcome itself. Without consent or without a
terminal the operator checks skip, with the reason, and nothing waits for input."""

from __future__ import annotations

import io
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from hsm_lifecycle.conformance.interlocks import WHY_OPERATOR_FLAG, WHY_OPERATOR_TTY
from hsm_lifecycle.emulator import VirtualToken
from hsm_lifecycle.emulator.portal import LoginVerdict, PluggedDevice, Portal, PortalFault, UpdateVerdict
from portal_helpers import OWNER_PINS, PIN, Hsm, logged_in

PORTAL_TESTS = "test_r12 or test_r13 or test_r14 or test_r15"
PORTAL_RULES = ("R12", "R13", "R14", "R15")


class Screen(io.TextIOBase):
    """sys.stdout as the operator sees it: passes everything on, keeps what was not yet read."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.unread: list[str] = []

    def write(self, text: str) -> int:
        self.unread.append(text)
        return self.inner.write(text)

    def flush(self) -> None:
        self.inner.flush()

    def take(self) -> str:
        text, self.unread = "".join(self.unread), []
        return text

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@dataclass
class ScriptedOperator:
    """Does what the printed steps say, in the simulated portal, on the token in `state_path`."""

    state_path: Path
    screen: Screen
    portal: Portal = field(default_factory=Portal)
    idle: bool = False  # presses Enter without doing anything
    done: list[str] = field(default_factory=list)

    def answer(self) -> str:
        text = self.screen.take()
        serial = re.search(r"serial (\w+)", text)
        token = VirtualToken.open(self.state_path)  # the token the suite released
        assert serial is not None and serial.group(1) == token.serial, text
        try:
            if "OPERATOR STEP: firmware update" in text:
                return self.update(token)
            if "OPERATOR STEP: portal login" in text:
                return self.login(token, text)
        finally:
            token.power_off()
        raise AssertionError(f"no operator step in: {text!r}")

    def update(self, token: VirtualToken) -> str:
        if self.idle:
            self.done.append("nothing")
            return "\n"
        result = logged_in(self.portal).update(PluggedDevice.of(token))
        self.done.append(result.verdict.value)
        return "\n"

    def login(self, token: VirtualToken, text: str) -> str:
        hint = re.search(r"its user PIN: (.+)\.\n", text)
        assert hint is not None, text
        pin = PIN if "--hsm-pin" in hint.group(1) else hint.group(1).encode()
        result = self.portal.login(PluggedDevice.of(token), pin, email="operator@example.org")
        self.done.append(result.verdict.value)
        return "y\n" if result.verdict is LoginVerdict.OK else "n\n"


class OperatorTty(io.TextIOBase):
    """stdin at a terminal where the scripted operator answers each prompt."""

    def __init__(self, operator: ScriptedOperator | None) -> None:
        self.operator = operator

    def isatty(self) -> bool:
        return True

    def readable(self) -> bool:
        return True

    def readline(self, size: int | None = -1) -> str:
        return self.operator.answer() if self.operator is not None else ""  # None: end of input


def owners_token(path: Path) -> str:
    """A used token as its owner left it (initialized, one key); returns its serial."""
    token = Hsm.make(path).initialized(keys=1).token
    token.power_off()
    return token.serial


def as_real(path: Path, serial: str, *extra: str) -> tuple[str, ...]:
    return ("--hsm-emulator-as-real", "--hsm-emulator-state", str(path), "--hsm-serial", serial, *OWNER_PINS, *extra)


@pytest.fixture
def operator_at_terminal(monkeypatch, tmp_path):
    """(state file, serial, operator factory): the factory puts a scripted operator at stdin."""
    path = tmp_path / "token.json"
    serial = owners_token(path)

    def seat(**kwargs: Any) -> ScriptedOperator:
        screen = Screen(sys.stdout)
        operator = ScriptedOperator(path, screen, **kwargs)
        monkeypatch.setattr(sys, "stdout", screen)
        monkeypatch.setattr(sys, "stdin", OperatorTty(operator))
        return operator

    return path, serial, seat


def test_without_consent_operator_checks_skip_with_the_reason(run_suite, tmp_path):
    path = tmp_path / "token.json"
    run = run_suite(*as_real(path, owners_token(path)), select=PORTAL_TESTS)
    assert run.rc == 0, run.output
    for rule in PORTAL_RULES:
        assert run.outcomes(rule) == {"skipped"}
    assert all(WHY_OPERATOR_FLAG in r.why for r in run.records)


def test_without_a_terminal_operator_checks_skip_and_nothing_waits(run_suite, tmp_path):
    path = tmp_path / "token.json"
    assert not sys.stdin.isatty()  # pytest's own stdin while capturing
    run = run_suite(*as_real(path, owners_token(path), "--hsm-allow-operator"), select=PORTAL_TESTS)
    assert run.rc == 0, run.output
    assert {r.outcome for r in run.records} == {"skipped"}
    assert all(WHY_OPERATOR_TTY in r.why for r in run.records)


def test_scripted_operator_passes_r12_to_r15_on_the_token(run_suite, operator_at_terminal):
    path, serial, seat = operator_at_terminal
    operator = seat()
    run = run_suite(*as_real(path, serial, "--hsm-allow-operator", "--hsm-allow-irreversible", "-s"), select=PORTAL_TESTS)
    assert run.rc == 0, run.output
    # The plan leaves out a test whose every check an R13 run decides on its own updates.
    left_out = [r for r in run.records if r.outcome == "skipped"]
    assert all("decided by test_r13" in r.why for r in left_out), [(r.nodeid, r.why) for r in left_out]
    for rule in PORTAL_RULES:
        assert "passed" in run.outcomes(rule) and "failed" not in run.outcomes(rule), (rule, [(r.nodeid, r.outcome, r.why) for r in run.records])
    updates = [d for d in operator.done if d.startswith("update")]
    assert updates.count(UpdateVerdict.REFUSED_LIMIT.value) == 1 and UpdateVerdict.REFUSED_KEYS.value in updates
    assert {LoginVerdict.OK.value, LoginVerdict.REFUSED.value} <= set(operator.done)
    assert "PKI-as-a-Service" in run.output and "Press Enter" in run.output


@pytest.mark.parametrize(
    "kwargs, rule, why",
    [
        ({"idle": True}, "R12", "update-refused-keys"),  # nothing was done: the suite sees no update
        ({"portal": Portal(faults=frozenset({PortalFault.IDENTITY_KEPT_ON_UPDATE}))}, "R14", "update-incomplete"),
        ({"portal": Portal(faults=frozenset({PortalFault.UPDATE_WITH_KEYS}))}, "R12", "update-ok"),
    ],
    ids=["operator-did-nothing", "identity-kept", "update-with-keys"],
)
def test_the_suite_judges_the_token_not_the_operator(run_suite, operator_at_terminal, kwargs, rule, why):
    path, serial, seat = operator_at_terminal
    seat(**kwargs)
    test = {"R12": "test_r12", "R14": "test_r14"}[rule]
    run = run_suite(*as_real(path, serial, "--hsm-allow-operator", "-s"), select=test)
    assert run.rc == 1, run.output
    failed = [r for r in run.records if r.outcome == "failed"]
    assert failed and all(rule in r.rules and why in r.why for r in failed), [(r.nodeid, r.why) for r in failed]


def test_end_of_input_at_the_prompt_skips(run_suite, monkeypatch, tmp_path):
    path = tmp_path / "token.json"
    serial = owners_token(path)
    monkeypatch.setattr(sys, "stdin", OperatorTty(None))
    run = run_suite(*as_real(path, serial, "--hsm-allow-operator", "-s"), select="test_r12_update_refused")
    assert run.rc == 0, run.output
    assert [r.outcome for r in run.records] == ["skipped"]
    assert "end of input" in run.records[0].why
