"""The conformance suite against a misbehaving device (conformance/transport/hostile.py): for
garbage, short, truncated and padded answers, a hung device and a pulled card, the suite ends
(no hang, no crash), reports a verdict that names the problem for the rules it could not
check, and keeps the traces. Runs a small selection of conformance/suite in this process."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from hsm_lifecycle.conformance.transport.base import CardRemovedError, DeadlineTransport, Response, Transport, TransportError, TransportTimeout
from hsm_lifecycle.conformance.transport.hostile import HostileTransport, Misbehaviour, Sabotage
from hsm_lifecycle.conformance.transport.inprocess import InProcessTransport
from hsm_lifecycle.emulator import VirtualToken
from robust_hostile import HostileDevice, HostileRun, run_suite

SELECTION = "r18 or r19"  # one test that reads EF.C_DevAut, one that only judges status words
DEADLINE_S = 1.0  # far above any honest in-process APDU, even on a loaded CI machine
# kind -> what the verdict of an affected test must say
NAMES: dict[Misbehaviour, str] = {
    Misbehaviour.GARBAGE: "answered",
    Misbehaviour.SHORT: "not even a status word",
    Misbehaviour.TRUNCATED: "EF.C_DevAut",
    Misbehaviour.PADDED: "",  # see test_padded_identity_is_named below
    Misbehaviour.BLOCK: f"within {DEADLINE_S:g} s: it hangs",
    Misbehaviour.REMOVED: "was removed during the run",
}
TRANSPORT_FAILURES = (Misbehaviour.SHORT, Misbehaviour.BLOCK, Misbehaviour.REMOVED)


def hostile_run(tmp_path: Path, capfd: pytest.CaptureFixture[str], kind: Misbehaviour, **device: object) -> tuple[HostileRun, Sabotage]:
    plan = Sabotage(kind, seed=7)
    deadline = DEADLINE_S if kind is Misbehaviour.BLOCK else None
    run = run_suite(tmp_path, capfd, HostileDevice(plan, deadline=deadline, **device), SELECTION)  # type: ignore[arg-type]
    assert run.seconds < 60, f"the run took {run.seconds:.0f} s"
    return run, plan


@pytest.mark.parametrize("kind", list(Misbehaviour), ids=lambda k: k.value)
def test_the_suite_names_a_misbehaving_device_and_keeps_the_traces(tmp_path: Path, capfd: pytest.CaptureFixture[str], kind: Misbehaviour) -> None:
    run, plan = hostile_run(tmp_path, capfd, kind, in_test=0)  # from the first APDU of the first test on
    assert plan.injected, "the device never misbehaved: the test tests nothing"
    # 1: the answer broke a check in progress; 5: it came while no check was being decided.
    assert run.rc in (1, 5), f"exit status {run.rc} (0 or 4 would pass a broken device, others mean a crash):\n{run.output}"
    broken = [r for r in run.records if r.outcome in ("failed", "error")]
    assert broken and all(r.outcome in ("passed", "failed", "error") for r in run.records), run.records
    for record in broken:
        assert NAMES[kind] in record.why, f"{record.nodeid}: {record.why!r} does not name the {kind.value} answer"
        lines = run.trace(record)
        connect_failed = kind is Misbehaviour.REMOVED and "(connect)" in record.why
        assert lines, f"{record.nodeid}: empty trace"  # a failed connect is kept as a power-on without ATR
        if connect_failed:
            assert lines[-1].is_control and lines[-1].code == 0x01 and not lines[-1].rsp, lines[-1]
        if kind in TRANSPORT_FAILURES and not connect_failed:
            assert any(line.torn for line in lines), f"{record.nodeid}: the unanswered APDU is not in the trace"
    verdicts = run.verdicts()
    assert run.summary["verdict"] in ("fail", "error") and run.summary["complete"] is True
    failed = [r for r in broken if r.outcome == "failed"]
    assert all(any(v["verdict"] == "fail" for v in r.checks.values()) for r in failed), "a failed test names no failed check"
    assert {c.partition(".")[0] for r in failed for c, v in r.checks.items() if v["verdict"] == "fail"} <= {
        rule for rule, v in verdicts.items() if v == "fail"}


@pytest.mark.parametrize("kind", [Misbehaviour.SHORT, Misbehaviour.BLOCK, Misbehaviour.REMOVED], ids=lambda k: k.value)
def test_a_device_failing_during_session_set_up_stops_the_run_with_one_sentence(tmp_path: Path, capfd: pytest.CaptureFixture[str], kind: Misbehaviour) -> None:
    run, plan = hostile_run(tmp_path, capfd, kind)  # after=0: the set-up's own APDUs
    assert plan.injected
    assert run.rc == 3, run.output  # the plugin's pytest.exit: nothing could be judged
    assert "hsm target emulator: " in run.output and NAMES[kind] in run.output, run.output
    assert run.summary["verdict"] != "pass" and run.summary["complete"] is False


def test_a_failed_session_set_up_keeps_its_trace(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    run, _ = hostile_run(tmp_path, capfd, Misbehaviour.SHORT)
    traces = sorted((run.evidence / "traces").glob("session-setup*.jsonl"))  # -gwN under xdist
    assert traces and traces[0].read_text().strip(), "the exchanges that led to the failure are lost"


def test_padded_identity_is_named(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    run, _ = hostile_run(tmp_path, capfd, Misbehaviour.PADDED, in_test=0)
    r18 = next(r for r in run.records if "r18" in r.nodeid)
    assert r18.outcome == "failed" and "EF.C_DevAut" in r18.why, r18.why


# --- the transport layer on its own ------------------------------------------------------------


def _token() -> VirtualToken:
    return VirtualToken.manufacture()


def test_deadline_turns_a_hung_device_into_a_timeout_and_stays_dead() -> None:
    plan = Sabotage(Misbehaviour.BLOCK, after=1)
    hostile = HostileTransport(InProcessTransport(_token()), plan)
    timed = DeadlineTransport(hostile, seconds=0.2)
    timed.connect()
    assert timed.transmit(bytes.fromhex("00A4040C0BE82B0601040181C31F0201")).sw == 0x9000
    began = time.monotonic()
    with pytest.raises(TransportTimeout, match="no answer to APDU 00200081 within 0.2 s"):
        timed.transmit(bytes.fromhex("00200081"))
    assert time.monotonic() - began < 2
    with pytest.raises(TransportTimeout):  # never queue behind the stuck exchange
        timed.transmit(bytes.fromhex("00200081"))
    timed.close()  # lets the stuck exchange go; must not wait for it
    assert plan.seen == 2


def test_deadline_passes_answers_and_errors_through() -> None:
    timed = DeadlineTransport(HostileTransport(InProcessTransport(_token()), Sabotage(Misbehaviour.REMOVED, after=1)), 5)
    timed.connect()
    assert isinstance(timed.transmit(bytes.fromhex("00A4040C0BE82B0601040181C31F0201")), Response)
    with pytest.raises(CardRemovedError):
        timed.transmit(bytes.fromhex("00200081"))
    with pytest.raises(CardRemovedError):  # the card stays gone, also for a reconnect
        timed.connect()


class EndlessMoreData:
    """A raw card under InProcessTransport that answers 61FF to every GET RESPONSE, 2000 times."""

    def __init__(self, token: VirtualToken) -> None:
        self.token = token
        self.left = 2000
        self.serial = token.serial

    def power_on(self) -> bytes:
        return self.token.power_on()

    def power_off(self) -> None:
        self.token.power_off()

    def reset(self) -> bytes:
        return self.token.reset()

    def transmit(self, capdu: bytes) -> bytes:
        self.left -= 1
        return b"\x00" * 255 + (b"\x61\xff" if self.left > 0 else b"\x90\x00")


def test_an_endless_get_response_chain_is_refused() -> None:
    transport = InProcessTransport(EndlessMoreData(_token()))  # type: ignore[arg-type]
    with pytest.raises(TransportError, match="61xx"):
        transport.transmit(bytes.fromhex("80580000000000"))


def test_hostile_transport_is_a_transport_and_offers_the_token() -> None:
    token = _token()
    hostile = HostileTransport(InProcessTransport(token), Sabotage(Misbehaviour.GARBAGE))
    assert isinstance(hostile, Transport) and hostile.token is token  # type: ignore[attr-defined]
    assert hostile.describe()["hostile"] == "garbage"


def test_the_block_ends_when_the_transport_closes() -> None:
    hostile = HostileTransport(InProcessTransport(_token()), Sabotage(Misbehaviour.BLOCK))
    errors: list[BaseException] = []

    def exchange() -> None:
        try:
            hostile.transmit(bytes.fromhex("00200081"))
        except TransportError as exc:
            errors.append(exc)

    worker = threading.Thread(target=exchange, daemon=True)
    worker.start()
    time.sleep(0.05)
    assert worker.is_alive()
    hostile.close()
    worker.join(2)
    assert not worker.is_alive() and errors and "closed while waiting" in str(errors[0])
