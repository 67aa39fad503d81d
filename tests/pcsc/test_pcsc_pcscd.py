"""The emulator behind the real pcscd + vpcd, driven through PcscTransport: ATR, power and
reset, persistence, two tokens at once, and the one-line errors a user gets."""

from __future__ import annotations

import signal
import subprocess
import threading
from pathlib import Path

import pytest

from hsm_lifecycle.conformance.transport.base import CardRemovedError, TransportError
from hsm_lifecycle.conformance.transport.pcsc import PcscTransport, list_readers
from hsm_lifecycle.emulator.vpcd import vpcd_readers
from hsm_lifecycle.protocol import AID, ATR
from pcsc_support import Emulators, Served, wait_reader_empty

pytestmark = pytest.mark.pcscd

SELECT = bytes([0x00, 0xA4, 0x04, 0x00, len(AID)]) + AID + b"\x00"
QUERY_USER = bytes.fromhex("00200081")
QUERY_SO = bytes.fromhex("00200088")
VERIFY_RIGHT = bytes.fromhex("0020008106") + b"648219"
VERIFY_WRONG = bytes.fromhex("0020008106") + b"000000"
INITIALIZE = bytes.fromhex("8050000019" "80020001" "8106363438323139" "82083537363231383830" "910103")


def sw(transport: PcscTransport, capdu: bytes) -> str:
    return transport.transmit(capdu).sw_hex


def initialize(transport: PcscTransport) -> None:
    assert sw(transport, SELECT) == "9000"
    assert sw(transport, INITIALIZE) == "9000"


def test_the_card_presents_the_smartcard_hsm_atr_and_applet(connected: tuple[Served, PcscTransport]) -> None:
    served, transport = connected
    assert transport.atr == ATR
    answer = transport.transmit(SELECT)
    assert answer.sw_hex == "9000" and answer.data[:1] == b"\x62"  # FCP template
    assert sw(transport, QUERY_SO) == "6A88"  # shipped: never initialized
    assert transport.describe() == {"kind": "pcsc", "reader": served.reader, "atr": ATR.hex().upper()}


@pytest.mark.parametrize("how", ["reset", "power_cycle"])
def test_reset_and_power_cycle_end_the_card_session(connected: tuple[Served, PcscTransport], how: str) -> None:
    _, transport = connected
    initialize(transport)
    assert sw(transport, VERIFY_RIGHT) == "9000"
    assert sw(transport, QUERY_USER) == "9000"  # authenticated
    assert getattr(transport, how)() == ATR
    assert sw(transport, SELECT) == "9000"
    assert sw(transport, QUERY_USER) == "63C3"  # the session ended with the reset / power-off


def test_the_token_survives_an_emulator_restart(emulators: Emulators, served: Served) -> None:
    with served.transport() as transport:
        initialize(transport)
        assert sw(transport, VERIFY_WRONG) == "63C2"
    again = emulators.restart(served)
    assert again.emulator.serial == served.emulator.serial
    with again.transport() as transport:
        assert sw(transport, SELECT) == "9000"
        assert sw(transport, QUERY_USER) == "63C2"
        assert sw(transport, QUERY_SO) == "63CF"


def test_two_tokens_at_once_on_two_ports(emulators: Emulators) -> None:
    first, second = (emulators.start(port=port) for port in emulators.free_ports(2))
    assert first.port != second.port and first.emulator.serial != second.emulator.serial
    with first.transport() as a, second.transport() as b:
        assert sw(a, SELECT) == sw(b, SELECT) == "9000"
        assert sw(a, INITIALIZE) == "9000"
        assert sw(a, VERIFY_WRONG) == "63C2"
        assert sw(b, QUERY_SO) == "6A88"  # the other token is untouched
        assert sw(a, QUERY_SO) == "63CF"


def test_a_reader_substring_that_matches_nothing_lists_the_readers() -> None:
    with pytest.raises(TransportError) as caught:
        PcscTransport("no such reader").connect()
    message = str(caught.value)
    assert "no reader matches 'no such reader'" in message and "Virtual PCD 00 00" in message
    assert "\n" not in message


def test_an_ambiguous_substring_asks_for_a_more_specific_one() -> None:
    with pytest.raises(TransportError, match="matches several readers.*more specific"):
        PcscTransport("Virtual PCD").connect()


def test_an_empty_reader_says_to_insert_the_token(emulators: Emulators) -> None:
    _, reader = emulators.lease()
    with pytest.raises(TransportError, match="no card in reader .* insert the token"):
        PcscTransport(reader).connect()
    with pytest.raises(TransportError, match=r"no card appeared in reader .* within 0.3 s"):
        PcscTransport(reader, card_timeout=0.3).connect()


def test_a_card_removed_mid_run_is_reported_and_its_state_is_intact(emulators: Emulators, served: Served) -> None:
    transport = served.transport()
    transport.connect()
    try:
        initialize(transport)
        assert sw(transport, VERIFY_WRONG) == "63C2"
        served.emulator.kill()  # the token is yanked out
        with pytest.raises(CardRemovedError) as caught:
            transport.transmit(QUERY_USER)
        assert "was removed during the run" in str(caught.value)
    finally:
        transport.close()
    wait_reader_empty(served.reader)
    again = emulators.start(served.state, port=served.port)
    with again.transport() as fresh:
        assert sw(fresh, SELECT) == "9000"
        assert sw(fresh, QUERY_USER) == "63C2"


def test_a_second_client_is_refused_while_the_first_holds_the_card(connected: tuple[Served, PcscTransport]) -> None:
    served, first = connected
    initialize(first)
    with pytest.raises(TransportError, match="in use by another program: close it"):
        PcscTransport(served.reader).connect()
    assert sw(first, QUERY_USER) == "63C3"  # the first client was not disturbed


def test_a_client_that_may_wait_gets_the_card_once_the_other_lets_go(served: Served) -> None:
    first = served.transport()
    first.connect()
    releaser = threading.Timer(0.3, first.close)  # a reader scanner that lets go soon
    releaser.start()
    try:
        with PcscTransport(served.reader, card_timeout=5) as second:
            assert sw(second, SELECT) == "9000"
    finally:
        releaser.join()


def test_hsm_lifecycle_emulate_serves_a_token_and_exits_0_on_sigterm(emulators: Emulators, tmp_path: Path) -> None:
    port, reader = emulators.lease()
    state = tmp_path / "cli.json"
    proc = subprocess.Popen(["hsm-lifecycle", "emulate", "--vpcd", f"127.0.0.1:{port}", "--state", str(state)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("new token UTEM") and f"on vpcd 127.0.0.1:{port}" in line and str(state) in line
        with PcscTransport(reader, card_timeout=10) as transport:
            assert sw(transport, SELECT) == "9000"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    wait_reader_empty(reader)
    # Started again on the same file, it serves the same token.
    again = subprocess.Popen(["hsm-lifecycle", "emulate", "--vpcd", f"127.0.0.1:{port}", "--state", str(state)],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert again.stdout is not None
        assert again.stdout.readline().split()[:2] == ["token", line.split()[2]]
    finally:
        again.send_signal(signal.SIGTERM)
        assert again.wait(10) == 0
    wait_reader_empty(reader)


def test_every_vpcd_reader_pcscd_sh_announced_exists() -> None:
    missing = set(vpcd_readers().values()) - set(list_readers())
    assert not missing, f"pcscd lacks the vpcd readers {sorted(missing)}"
