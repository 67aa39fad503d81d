"""The vpcd bridge against a local server that imitates vpcd (no pcscd needed).

This is where the bridge's framing, control messages, speed, reconnects and shutdown are
pinned down byte by byte; tests/pcsc/test_pcsc_pcscd.py repeats the essentials through the
real pcscd.
"""

from __future__ import annotations

import logging
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hsm_lifecycle.emulator import Profile
from hsm_lifecycle.emulator.vpcd import (
    VpcdAddress,
    VpcdBridge,
    VpcdError,
    lease_port,
    lease_ports,
    parse_profile,
    profile_settings,
    start_emulator,
    vpcd_readers,
    vpcd_readers_from_names,
)
from hsm_lifecycle.protocol import AID, ATR, VPCD_PORT
from pcsc_fakes import OTHER_ATR, POWER_OFF, POWER_ON, RESET, FakeVpcd, RecordingCard, wait_until

SELECT = bytes([0x00, 0xA4, 0x04, 0x00, len(AID)]) + AID + b"\x00"
QUERY_USER = bytes.fromhex("00200081")
INITIALIZE = bytes.fromhex("8050000019" "80020001" "8106363438323139" "82083537363231383830" "910103")


class Running:
    """A bridge serving `card` to vpcd on `port` (usually a FakeVpcd's), in a thread."""

    def __init__(self, card: RecordingCard, port: int, fake: FakeVpcd | None = None) -> None:
        self.card = card
        self._fake = fake
        self.bridge = VpcdBridge(card, VpcdAddress("127.0.0.1", port))
        self.thread = threading.Thread(target=self.bridge.serve, daemon=True)
        self.thread.start()

    @property
    def fake(self) -> FakeVpcd:
        assert self._fake is not None
        return self._fake

    def stop(self, timeout: float = 5.0) -> float:
        started = time.monotonic()
        self.bridge.stop()
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the bridge did not stop"
        return time.monotonic() - started


def _unused_port() -> int:
    with socket.socket() as probe:  # bound, never listening: connects are refused
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def fake() -> Iterator[FakeVpcd]:
    server = FakeVpcd()
    yield server
    server.close()


@pytest.fixture
def running(fake: FakeVpcd) -> Iterator[Running]:
    run = Running(RecordingCard(), fake.port, fake)
    fake.accept()
    yield run
    if run.thread.is_alive():
        run.stop()


def test_control_messages_drive_the_card_and_get_atr_answers(running: Running) -> None:
    fake, card = running.fake, running.card
    assert fake.get_atr() == ATR  # pcscd's presence poll, before any power-on
    fake.control(POWER_ON)
    fake.control(RESET)
    fake.control(POWER_OFF)
    fake.control(POWER_ON)
    assert fake.get_atr() == ATR  # a reply orders the check after the unanswered messages
    assert card.events == ["on", "reset", "off", "on"]


def test_get_atr_reports_the_atr_of_the_last_power_on(fake: FakeVpcd) -> None:
    run = Running(RecordingCard(atr=OTHER_ATR), fake.port)
    fake.accept()
    try:
        assert fake.get_atr() == ATR
        fake.control(POWER_ON)
        assert fake.get_atr() == OTHER_ATR
    finally:
        run.stop()


def test_apdus_are_answered_with_the_cards_rapdu(running: Running) -> None:
    running.card.reply = bytes.fromhex("0102039000")
    assert running.fake.exchange(SELECT) == bytes.fromhex("0102039000")
    assert running.fake.exchange(QUERY_USER, split=True) == bytes.fromhex("0102039000")
    # A single byte that is no control code is an APDU as far as vpcd is concerned.
    assert running.fake.exchange(b"\x03") == bytes.fromhex("0102039000")
    assert running.card.apdus == [SELECT, QUERY_USER, b"\x03"]
    assert running.bridge.apdus == 3


def test_several_messages_in_one_segment_are_all_answered(running: Running) -> None:
    fake = running.fake
    assert fake.conn is not None
    fake.conn.sendall(b"\x00\x04" + QUERY_USER + b"\x00\x01\x04" + b"\x00\x04" + QUERY_USER)
    assert [fake.receive(), fake.receive(), fake.receive()] == [b"\x90\x00", ATR, b"\x90\x00"]


def test_extended_apdus_and_long_replies_cross_intact(running: Running) -> None:
    running.card.reply = bytes(range(256)) * 16 + b"\x90\x00"
    command = bytes([0x80, 0x68, 0x01, 0x73, 0x00, 0x0B, 0xB8]) + bytes(3000) + b"\x00\x00"
    assert running.fake.exchange(command, split=True) == running.card.reply
    assert running.card.apdus == [command]


def test_a_reply_vpcd_cannot_frame_becomes_6f00(running: Running) -> None:
    running.card.reply = bytes(0x10000)
    assert running.fake.exchange(QUERY_USER) == b"\x6F\x00"


def test_a_card_that_raises_gets_6f00_and_the_link_survives(running: Running) -> None:
    running.card.raise_on_transmit = True
    assert running.fake.exchange(QUERY_USER) == b"\x6F\x00"
    running.card.raise_on_transmit = False
    assert running.fake.exchange(QUERY_USER) == b"\x90\x00"


def test_split_writes_do_not_wait_for_delayed_acks(running: Running) -> None:
    # vpcd writes prefix and APDU separately with Nagle on: without TCP_QUICKACK on our side
    # each exchange stalls ~40 ms on a delayed ACK (200 exchanges: 8 s); with it, well < 1 s.
    fake = running.fake
    assert fake.conn is not None
    fake.conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 0)
    for _ in range(20):  # leave TCP's initial quick-ACK phase
        fake.exchange(QUERY_USER, split=True)
    started = time.perf_counter()
    for _ in range(200):
        assert fake.exchange(QUERY_USER, split=True) == b"\x90\x00"
    elapsed = time.perf_counter() - started
    assert elapsed < 1.5, f"200 split-write exchanges took {elapsed:.2f} s: delayed ACKs are back"


def test_reconnects_when_vpcd_drops_the_connection(running: Running) -> None:
    fake = running.fake
    fake.control(POWER_ON)
    assert fake.get_atr() == ATR
    fake.drop()
    fake.accept(timeout=5)
    assert fake.exchange(QUERY_USER) == b"\x90\x00"
    # Off the reader, the card lost power (and with it its session).
    assert running.card.events == ["on", "off", "apdu"]
    assert running.bridge.connections == 2


def test_a_link_reset_is_survived(running: Running) -> None:
    fake = running.fake
    assert fake.exchange(QUERY_USER) == b"\x90\x00"  # the bridge now waits in recv
    assert fake.conn is not None
    # An abortive close (RST) while the bridge waits for a message: its recv raises.
    fake.conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    fake.drop()
    fake.accept(timeout=5)
    assert fake.exchange(QUERY_USER) == b"\x90\x00"
    assert running.bridge.connections == 2


def test_reconnects_when_vpcd_comes_back_after_an_outage(fake: FakeVpcd) -> None:
    port = fake.port
    run = Running(RecordingCard(), port)
    fake.accept()
    fake.close()  # pcscd stops: connection and listener gone
    assert wait_until(lambda: run.bridge.connect_failures >= 2)
    again = FakeVpcd(port)  # pcscd is back on the same port
    try:
        again.accept(timeout=5)
        assert again.exchange(QUERY_USER) == b"\x90\x00"
        assert run.bridge.connections == 2
    finally:
        run.stop()
        again.close()


def test_a_long_outage_logs_a_bounded_number_of_lines(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="hsm_lifecycle.vpcd"):
        run = Running(RecordingCard(), _unused_port())
        assert wait_until(lambda: run.bridge.connect_failures >= 5, timeout=10)
        run.stop()
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert 1 <= len(warnings) <= 3 < run.bridge.connect_failures
    assert "is pcscd running" in warnings[0].getMessage()


def test_stop_while_idle_returns_at_once(running: Running) -> None:
    assert running.fake.exchange(QUERY_USER) == b"\x90\x00"
    assert running.stop() < 1.0
    assert running.fake.conn is not None
    assert running.fake.conn.recv(1) == b""  # the bridge closed its end


def test_stop_during_an_apdu_finishes_and_answers_it_first(running: Running) -> None:
    running.card.delay = 0.3
    running.fake.send(QUERY_USER)
    assert running.card.transmit_started.wait(5)
    running.bridge.stop()
    assert running.fake.receive() == b"\x90\x00"
    running.thread.join(5)
    assert not running.thread.is_alive()
    assert running.card.events == ["apdu", "off"]


def test_stop_while_waiting_for_vpcd_returns_at_once() -> None:
    run = Running(RecordingCard(), _unused_port())
    assert wait_until(lambda: run.bridge.connect_failures >= 4)  # back-off has grown
    assert run.stop() < 0.5


# -- the emulator process (python -m hsm_lifecycle.emulator.vpcd) against the imitation -----------------


def _initialize_and_spend_a_try(fake: FakeVpcd) -> None:
    fake.control(POWER_ON)
    assert fake.exchange(SELECT)[-2:] == b"\x90\x00"
    assert fake.exchange(INITIALIZE) == b"\x90\x00"
    assert fake.exchange(bytes.fromhex("0020008106303030303030")) == b"\x63\xC2"


def test_sigterm_stops_the_emulator_cleanly_and_the_state_survives(fake: FakeVpcd, tmp_path: Path) -> None:
    state = tmp_path / "token.json"
    first = start_emulator(fake.port, state)
    try:
        fake.accept()
        _initialize_and_spend_a_try(fake)
        assert first.stop() == 0
        assert "stopped after 3 APDUs" in first.log()
    finally:
        first.kill()
    fake.drop()
    second = start_emulator(fake.port, state)
    try:
        assert second.serial == first.serial
        fake.accept()
        fake.control(POWER_ON)
        assert fake.exchange(SELECT)[-2:] == b"\x90\x00"
        assert fake.exchange(QUERY_USER) == b"\x63\xC2"  # the spent try was kept
        second.proc.send_signal(signal.SIGINT)  # Ctrl-C is a clean stop too
        assert second.proc.wait(10) == 0
    finally:
        second.kill()


def test_a_killed_emulator_keeps_every_answered_change(fake: FakeVpcd, tmp_path: Path) -> None:
    state = tmp_path / "token.json"
    first = start_emulator(fake.port, state)
    fake.accept()
    _initialize_and_spend_a_try(fake)
    first.kill()  # no chance to clean up: each answered change must already be on disk
    fake.drop()
    with_second = start_emulator(fake.port, state)
    try:
        fake.accept()
        fake.control(POWER_ON)
        fake.exchange(SELECT)
        assert fake.exchange(QUERY_USER) == b"\x63\xC2"
    finally:
        with_second.stop()


def test_an_emulator_stops_when_the_process_that_started_it_dies(fake: FakeVpcd, tmp_path: Path) -> None:
    # A killed test run must not leave an emulator holding a vpcd port.
    script = ("import sys; from pathlib import Path; from hsm_lifecycle.emulator.vpcd import start_emulator\n"
              f"e = start_emulator({fake.port}, Path(sys.argv[1])); print(e.pid, flush=True)\n"
              "import os; os._exit(0)\n")
    out = subprocess.run([sys.executable, "-c", script, str(tmp_path / "token.json")], capture_output=True,
                         text=True, timeout=60)
    pid = int(out.stdout.split()[0])
    assert wait_until(lambda: not _running(pid), timeout=10), f"emulator {pid} outlived its parent"
    assert "stopped after 0 APDUs" in (tmp_path / "token.json.log").read_text()


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def test_a_second_emulator_on_the_same_state_file_is_refused(fake: FakeVpcd, tmp_path: Path) -> None:
    state = tmp_path / "token.json"
    first = start_emulator(fake.port, state)
    try:
        with pytest.raises(VpcdError, match="in use by another emulator"):
            start_emulator(fake.port, state, log_path=tmp_path / "second.log")
    finally:
        first.stop()


def test_the_emulator_uses_the_requested_profile(fake: FakeVpcd, tmp_path: Path) -> None:
    profile = Profile(last_wrong_try_sw="6983", version=(4, 1))
    emulator = start_emulator(fake.port, tmp_path / "token.json", profile=profile)
    try:
        fake.accept()
        fake.control(POWER_ON)
        fcp = fake.exchange(SELECT)
        assert fcp[-2:] == b"\x90\x00" and fcp[-4:-2] == b"\x04\x01"  # tag 85 ends major, minor
    finally:
        emulator.stop()


# -- small pure helpers ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "host", "port"),
    [("127.0.0.1:35964", "127.0.0.1", 35964), (":35970", "127.0.0.1", 35970), ("vpcd.local", "vpcd.local", VPCD_PORT),
     ("[::1]:35963", "::1", 35963)],
)
def test_vpcd_addresses_parse(text: str, host: str, port: int) -> None:
    assert VpcdAddress.parse(text) == VpcdAddress(host, port)


@pytest.mark.parametrize("text", ["host:", "host:port", "host:0", "host:70000"])
def test_bad_vpcd_addresses_say_how_to_write_one(text: str) -> None:
    with pytest.raises(VpcdError, match="HOST:PORT"):
        VpcdAddress.parse(text)


def test_reader_names_come_from_pcscd_sh_or_debians_default() -> None:
    assert vpcd_readers({}) == {35963: "Virtual PCD 00 00", 35964: "Virtual PCD 00 01"}
    exported = "35963=Virtual PCD 00 00;35965=Virtual PCD 35965 00 00"
    assert vpcd_readers({"HSM_VPCD_READERS": exported}) == {35963: "Virtual PCD 00 00",
                                                            35965: "Virtual PCD 35965 00 00"}
    with pytest.raises(VpcdError, match="PORT=READER"):
        vpcd_readers({"HSM_VPCD_READERS": "Virtual PCD"})


def test_vpcd_readers_are_recognised_by_pcscd_sh_naming() -> None:
    names = ["Virtual PCD 00 00", "Virtual PCD 00 01", "Virtual PCD 35967 00 00", "Virtual PCD 35967 00 01",
             "Nitrokey Nitrokey HSM (DENK0100000000) 00 00", "Virtual PCD 01 00"]
    assert vpcd_readers_from_names(names) == {35963: names[0], 35964: names[1], 35967: names[2], 35968: names[3]}


def test_port_leases_are_exclusive_until_released(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HSM_VPCD_LEASE_DIR", str(tmp_path))
    with lease_port([40001, 40002]) as first, lease_port([40001, 40002]) as second:
        assert {first, second} == {40001, 40002}
        with pytest.raises(VpcdError, match="not free: other emulators lease or hold them"):
            with lease_port([40001, 40002]):
                pass
    with lease_port([40001, 40002]) as again:
        assert again == 40001


def test_ports_that_fail_the_usable_check_are_passed_over(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HSM_VPCD_LEASE_DIR", str(tmp_path))
    with lease_port([40001, 40002, 40003], usable=lambda port: port != 40001) as port:
        assert port == 40002
    with pytest.raises(VpcdError, match="not free"):
        with lease_port([40001], usable=lambda port: False):
            pass


def test_several_ports_are_leased_all_or_none(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HSM_VPCD_LEASE_DIR", str(tmp_path))
    ports = [40001, 40002, 40003]
    with lease_port(ports) as taken:
        with pytest.raises(VpcdError, match="not free"):
            with lease_ports(3, ports, wait=0.2):
                pass
        # The failed attempt gave back what it had grabbed: two ports are still free.
        with lease_ports(2, ports) as pair:
            assert taken not in pair and len(set(pair)) == 2


def test_profile_settings_round_trip_and_bad_ones_are_explained() -> None:
    profile = Profile(init_wrong_so_sw="6982", rrc_disabled_spends_so_try=True, version=(4, 0))
    assert parse_profile(profile_settings(profile)) == profile
    assert parse_profile(["last-wrong-try-sw=6983"]) == Profile(last_wrong_try_sw="6983")
    assert parse_profile([]) is None
    with pytest.raises(VpcdError, match="NAME=VALUE"):
        parse_profile(["colour=blue"])
    with pytest.raises(VpcdError, match="true or false"):
        parse_profile(["auth-after-init=maybe"])
    with pytest.raises(VpcdError, match="not valid"):
        parse_profile(["last-wrong-try-sw=6A80"])
