"""--hsm-apdu-timeout: the targets that stand for a real token (pcsc, vpcd, the emulator posing
as a real token) put every exchange under a deadline, so a device that stops answering fails the
run with a sentence naming the APDU and the timeout, keeps the traces, and never hangs it. Also
the transport-layer guards a hostile device meets first: the 61xx cap and the failed connect."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from hsm_lifecycle.conformance import targets
from hsm_lifecycle.conformance.options import DEFAULT_APDU_TIMEOUT_S, parse_apdu_timeout
from hsm_lifecycle.conformance.trace import TraceRecorder, TracingTransport, read_trace
from hsm_lifecycle.conformance.transport import hostile, pcsc
from hsm_lifecycle.conformance.transport.base import CardRemovedError, DeadlineTransport, Transport
from hsm_lifecycle.conformance.transport.hostile import HostileTransport, Misbehaviour, Sabotage
from hsm_lifecycle.conformance.transport.inprocess import InProcessTransport
from hsm_lifecycle.emulator import VirtualToken
from robust_hostile import HostileDevice, run_suite

TIMEOUT_S = 0.5
BLOCK_S = 8.0  # without the deadline a blocked exchange gives up after this, naming no timeout


class HangingReader:
    """pytest plugin: the pcsc target's reader holds the in-process emulator, which stops
    answering at its first APDU (the target must bring the deadline: nothing here has one)."""

    def __init__(self) -> None:
        self.sabotage = Sabotage(Misbehaviour.BLOCK)
        self.transports: list[Transport] = []
        self._patch = pytest.MonkeyPatch()

    def make(self, reader: str, **_: object) -> Transport:
        made = HostileTransport(InProcessTransport(VirtualToken.manufacture(), kind="pcsc", reader=reader), self.sabotage)
        self.transports.append(made)
        return made

    def pytest_configure(self, config: pytest.Config) -> None:
        self._patch.setattr(pcsc, "PcscTransport", self.make)

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        self._patch.undo()
        for transport in self.transports:
            transport.close()


@pytest.fixture(autouse=True)
def short_block(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hostile, "BLOCK_LIMIT_S", BLOCK_S)


def test_a_pcsc_token_hanging_in_session_set_up_stops_the_run_naming_apdu_and_timeout(tmp_path: Path, capfd: Any) -> None:
    run = run_suite(tmp_path, capfd, HangingReader(), "r19", "--hsm-target", "pcsc:hanging", "--hsm-apdu-timeout", str(TIMEOUT_S))
    assert run.seconds < BLOCK_S, f"the run waited {run.seconds:.1f} s for the hung device"
    assert run.rc == 3, run.output
    assert f"no answer to APDU 00A40400 within {TIMEOUT_S:g} s: it hangs" in run.output, run.output
    lines = list(read_trace(run.evidence / "traces" / "session-setup.jsonl"))
    assert lines and lines[-2].torn and lines[-2].cmd.startswith("00A40400"), lines  # then the power-off


def test_an_as_real_token_hanging_in_a_test_fails_it_naming_the_timeout(tmp_path: Path, capfd: Any) -> None:
    device = HostileDevice(Sabotage(Misbehaviour.BLOCK, seed=7), in_test=0)  # no deadline of its own
    run = run_suite(tmp_path, capfd, device, "r18 or r19", "--hsm-emulator-as-real", "--hsm-apdu-timeout", str(TIMEOUT_S))
    assert run.seconds < BLOCK_S, f"the run waited {run.seconds:.1f} s for the hung device"
    # A token that stops answering stops the run (its later tests would only fail on it too).
    assert run.rc == 3 and "stopped answering" in run.output, run.output
    broken = [r for r in run.records if r.outcome in ("failed", "error")]
    assert broken, run.records
    for record in broken:
        assert f"within {TIMEOUT_S:g} s: it hangs" in record.why, record.why
    assert any(line.torn for line in run.trace(broken[0])), "the unanswered APDU is not in the trace"


def test_the_pcsc_target_talks_through_the_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    from hsm_lifecycle.conformance.options import HsmOptions, TargetSpec

    monkeypatch.setattr(pcsc, "PcscTransport", lambda reader, **_: InProcessTransport(VirtualToken.manufacture(), kind="pcsc"))
    spec = TargetSpec("pcsc", "r")
    options = HsmOptions(spec, None, False, False, None, None, 5, None, (), 1, 1, apdu_timeout=2.5)
    target = targets.make_target(options)
    transport = target.raw_transport().inner  # under the token's custody layer
    assert isinstance(transport, DeadlineTransport) and transport.seconds == 2.5


@pytest.mark.parametrize("text, seconds", [(None, DEFAULT_APDU_TIMEOUT_S), ("0.25", 0.25), ("120", 120.0)])
def test_apdu_timeout_option_accepts_positive_seconds(text: str | None, seconds: float) -> None:
    assert parse_apdu_timeout(text) == seconds


@pytest.mark.parametrize("text", ["0", "-1", "nan", "inf", "soon", ""])
def test_apdu_timeout_option_refuses_anything_else_in_one_sentence(text: str) -> None:
    with pytest.raises(ValueError, match=r"^--hsm-apdu-timeout must be a positive number of seconds .*\.$"):
        parse_apdu_timeout(text)


def test_a_failed_connect_is_kept_as_a_power_on_without_atr() -> None:
    plan = Sabotage(Misbehaviour.REMOVED, removed=True)
    recorder = TraceRecorder()
    tracing = TracingTransport(HostileTransport(InProcessTransport(VirtualToken.manufacture()), plan), recorder)
    with pytest.raises(CardRemovedError):
        tracing.connect()
    [line] = recorder.lines
    assert line.is_control and line.cmd == "01" and line.rsp == "" and line.sw == ""
