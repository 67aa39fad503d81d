"""The simulated portal served beside a persistent token (emulate --portal SOCKET)."""

from __future__ import annotations

import threading
from pathlib import Path

from hsm_lifecycle.emulator import VirtualToken
from hsm_lifecycle.emulator.portal_service import PortalServer, PortalService, SharedCard, ask_portal
from hsm_lifecycle.emulator.portal import working_hsm

USER_PIN = b"648219"


def test_update_admitted_on_an_empty_token_gives_a_new_identity(tmp_path: Path):
    token = VirtualToken.manufacture()
    service = PortalService(token, threading.Lock())
    before = token.serial
    assert service.handle("update") == "update-ok"  # shipped, no keys: admitted (R12)
    assert token.serial != before  # a new identity (R14)
    assert service.handle("bogus").startswith("error:")
    assert service.handle("login zz").startswith("error:")


def test_login_needs_a_working_hsm(tmp_path: Path):
    token = working_hsm(USER_PIN)
    service = PortalService(token, threading.Lock())
    assert service.handle(f"login {USER_PIN.hex()}") == "login-ok"
    assert service.handle(f"login {b'999999'.hex()}").startswith("login-refused")


def test_socket_server_answers_one_line_per_request(tmp_path: Path):
    sock = tmp_path / "portal.sock"
    token = VirtualToken.manufacture()
    lock = threading.Lock()
    server = PortalServer(sock, PortalService(token, lock)).start()
    try:
        assert ask_portal(sock, "ping") == "pong"
        card = SharedCard(token, lock)  # what the vpcd bridge holds: the same lock
        assert card.transmit(bytes.fromhex("00A4040C0BE82B0601040181C31F0201"))[-2:] == b"\x90\x00"
        assert ask_portal(sock, "update") == "update-ok"
    finally:
        server.close()
    assert not sock.exists()


def test_a_token_with_an_update_history_keeps_it_and_the_portal_shows_it(tmp_path: Path):
    from hsm_lifecycle.emulator.portal_service import parse_updates_used
    from hsm_lifecycle.emulator.vpcd import VpcdError, open_or_manufacture

    import pytest

    state = tmp_path / "used.json"
    token, created = open_or_manufacture(state, updates_used=4)
    assert created and token.status().so_blocked_updates == 4
    again = VirtualToken.open(state)  # persisted with the rest of its state
    service = PortalService(again, threading.Lock())
    assert parse_updates_used(service.handle("updates")) == 4  # a free query: nothing changes
    assert VirtualToken.open(state).status().so_blocked_updates == 4 and again.status().initialized is False
    with pytest.raises(VpcdError, match="4 SO-blocked updates behind it, not 2"):
        open_or_manufacture(state, updates_used=2)
    with pytest.raises(ValueError, match="0..5"):
        VirtualToken.manufacture(updates_used=6)
    assert parse_updates_used("update-ok") is None


def test_emulate_refuses_an_impossible_history_in_one_sentence(tmp_path: Path, capsys):
    from hsm_lifecycle.conformance import cli

    rc = cli.main(["emulate", "--vpcd", "127.0.0.1:1", "--state", str(tmp_path / "t.json"), "--updates-used", "7"])
    assert rc == 2 and "--updates-used must be 0..5" in capsys.readouterr().err
    assert not (tmp_path / "t.json").exists()
