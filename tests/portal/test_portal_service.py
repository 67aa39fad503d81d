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
