"""The emulator's scripted power-cut rig (emulate --power-rig), against a local server that
imitates vpcd (no pcscd needed): the armed cut happens at its moment, the command in flight gets
no answer, the link drops and comes back after the off time, and the state the token powers on
with is what reached storage before the cut."""

from __future__ import annotations

import stat
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hsm_lifecycle.conformance.power_rig import CutMoment, PowerRig, RigError, RigState
from hsm_lifecycle.emulator import VirtualToken
from hsm_lifecycle.emulator.power_rig import PowerRigServer, PowerRigService, RiggedCard
from hsm_lifecycle.emulator.vpcd import VpcdAddress, VpcdBridge
from hsm_lifecycle.protocol import AID
from pcsc_fakes import POWER_ON, FakeVpcd

SELECT = bytes([0x00, 0xA4, 0x04, 0x00, len(AID)]) + AID + b"\x00"
INITIALIZE = bytes.fromhex("8050000019" "80020001" "8106363438323139" "82083537363231383830" "910103")
QUERY_USER, QUERY_SO = bytes.fromhex("00200081"), bytes.fromhex("00200088")
WRONG_VERIFY = bytes.fromhex("0020008106") + b"000000"
WRONG_CHANGE_SO = bytes.fromhex("0024008810") + bytes(16)
OFF_S = 0.3


class Rigged:
    """An initialized in-memory token behind the rig and a bridge, served to a fake vpcd."""

    def __init__(self, tmp: Path, faults: tuple[str, ...] = ()) -> None:
        self.token = VirtualToken.manufacture(faults=list(faults))
        self.token.transmit(SELECT)
        assert self.token.transmit(INITIALIZE)[-2:] == b"\x90\x00"
        self.token.power_off()
        self.service = PowerRigService(self.token, threading.Lock())
        self.server = PowerRigServer(tmp / "rig.sock", self.service).start()
        self.rig = PowerRig(tmp / "rig.sock", timeout_s=5.0)
        self.fake = FakeVpcd()
        self.bridge = VpcdBridge(RiggedCard(self.token, self.service), VpcdAddress("127.0.0.1", self.fake.port),
                                 off_after_cut=OFF_S)  # fmt: skip
        self.thread = threading.Thread(target=self.bridge.serve, daemon=True)
        self.thread.start()
        self.fake.accept()
        self.fake.control(POWER_ON)
        assert self.fake.exchange(SELECT)[-2:] == b"\x90\x00"

    def cut(self, capdu: bytes) -> float:
        """Send `capdu`, see no answer and the link drop; returns seconds until the card is back."""
        self.fake.send(capdu)
        with pytest.raises(ConnectionError):
            self.fake.receive()
        began = time.monotonic()
        self.fake.drop()
        self.fake.accept(timeout=5)
        back = time.monotonic() - began
        self.fake.control(POWER_ON)
        assert self.fake.exchange(SELECT)[-2:] == b"\x90\x00"
        return back

    def close(self) -> None:
        self.bridge.stop()
        self.thread.join(5)
        self.fake.close()
        self.server.close()


@pytest.fixture
def rigged(tmp_path: Path) -> Iterator[Rigged]:
    made = Rigged(tmp_path)
    yield made
    made.close()


def test_a_cut_in_the_pin_check_drops_the_link_and_keeps_the_try_spent(rigged: Rigged) -> None:
    assert rigged.fake.exchange(QUERY_USER) == bytes.fromhex("63C3")
    rigged.rig.arm(CutMoment.PIN_CHECK)
    assert rigged.rig.status().state is RigState.ARMED
    back = rigged.cut(WRONG_VERIFY)
    assert back >= OFF_S * 0.9  # off for the rig's off time: pcscd's poll sees the card gone
    assert rigged.rig.status().cut_at is CutMoment.PIN_CHECK
    assert rigged.fake.exchange(QUERY_USER) == bytes.fromhex("63C2")  # the decrement was on disk
    assert rigged.bridge.power_cuts == 1 and rigged.service.cuts == 1
    # One cut per arming: the next wrong PIN is answered.
    assert rigged.fake.exchange(WRONG_VERIFY) == bytes.fromhex("63C1")


def test_an_so_pin_check_is_cut_too(rigged: Rigged) -> None:
    rigged.rig.arm(CutMoment.PIN_CHECK)
    rigged.cut(WRONG_CHANGE_SO)
    assert rigged.fake.exchange(QUERY_SO) == bytes.fromhex("63CE")


def test_a_cut_as_the_apdu_arrives_changes_nothing(rigged: Rigged) -> None:
    rigged.rig.arm(CutMoment.APDU)
    rigged.cut(WRONG_VERIFY)
    assert rigged.rig.status().cut_at is CutMoment.APDU
    assert rigged.fake.exchange(QUERY_USER) == bytes.fromhex("63C3")


def test_a_token_that_writes_the_try_late_refunds_it_when_cut_in_the_pin_check(tmp_path: Path) -> None:
    faulty = Rigged(tmp_path, faults=("tear-refunds-try",))
    try:
        faulty.rig.arm(CutMoment.PIN_CHECK)
        faulty.cut(WRONG_VERIFY)
        assert faulty.fake.exchange(QUERY_USER) == bytes.fromhex("63C3")  # the try came back: R17 broken
        faulty.rig.arm(CutMoment.TRY_SPENT)  # after its late write the try stays spent
        faulty.cut(WRONG_VERIFY)
        assert faulty.fake.exchange(QUERY_USER) == bytes.fromhex("63C2")
    finally:
        faulty.close()


def test_disarm_and_the_protocol_words(rigged: Rigged) -> None:
    rigged.rig.ping()
    assert rigged.rig.status().state is RigState.IDLE
    rigged.rig.arm(CutMoment.PIN_CHECK)
    rigged.rig.disarm()
    assert rigged.fake.exchange(WRONG_VERIFY) == bytes.fromhex("63C2")  # disarmed: answered
    assert rigged.rig.status().state is RigState.IDLE
    for bad in ("arm", "arm later", "cut", "status now", ""):
        assert rigged.service.handle(bad).startswith("error:"), bad
    with pytest.raises(RigError, match="refused"):
        rigged.rig._expect("arm later", "armed later")


def test_the_rig_socket_is_its_owners_only(rigged: Rigged, tmp_path: Path) -> None:
    assert stat.S_IMODE((tmp_path / "rig.sock").stat().st_mode) == 0o600


def test_a_trace_cut_by_the_rig_replays_with_the_cut_where_it_was(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    """The rig's cut is an event of the trace (the moment armed): a replay on the in-process
    emulator redoes it there, and a token that refunds the try diverges after the cut."""
    from hsm_lifecycle.conformance.cli import main as cli
    from hsm_lifecycle.conformance.trace import EVENT_RIG_CUT, RIG_MOMENTS, TraceRecorder
    from hsm_lifecycle.emulator import PowerLoss
    from hsm_lifecycle.protocol import VPCD_POWER_OFF, VPCD_POWER_ON

    token = VirtualToken.manufacture()
    rec = TraceRecorder(tmp_path / "cut.jsonl")

    def send(capdu: bytes) -> None:
        rapdu = token.transmit(capdu)
        rec.exchange(capdu, rapdu[:-2], int.from_bytes(rapdu[-2:], "big"))

    rec.control(VPCD_POWER_ON, token.power_on())
    for capdu in (SELECT, INITIALIZE, QUERY_USER):
        send(capdu)
    PowerRigService(token, threading.Lock()).handle("arm pin-check")
    rec.event(EVENT_RIG_CUT, bytes([RIG_MOMENTS.index(CutMoment.PIN_CHECK.value)]))
    with pytest.raises(PowerLoss):
        token.transmit(WRONG_VERIFY)
    rec.exchange(WRONG_VERIFY, b"", None)
    rec.control(VPCD_POWER_OFF)
    rec.control(VPCD_POWER_ON, token.power_on())
    send(SELECT)
    send(QUERY_USER)
    rec.flush()
    capfd.readouterr()
    assert cli(["replay", str(tmp_path / "cut.jsonl")]) == 0
    assert "all SWs match" in capfd.readouterr().out
    assert cli(["replay", str(tmp_path / "cut.jsonl"), "--emulator-fault", "tear-refunds-try"]) == 1
    assert "63C3" in capfd.readouterr().out  # the try came back after the cut
