"""doctor over the real PC/SC path: the forum thread's token served by the emulator through
pcscd + vpcd, found by its reader, read without spending anything.

Runs where scripts/test.sh started pcscd with vpcd readers (HSM_PCSCD=1: then it must run);
elsewhere it skips, saying why.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator

import pytest

from hsm_lifecycle.conformance import cli
from hsm_lifecycle.conformance.doctor import reader_atrs
from hsm_lifecycle.conformance.transport.base import TransportError
from hsm_lifecycle.conformance.transport.pcsc import list_readers
from doctor_tokens import build_token
from hsm_lifecycle.emulator import VirtualToken
from hsm_lifecycle.emulator.vpcd import VpcdError, lease_port, serve_emulator, vpcd_readers
from hsm_lifecycle.protocol import ATR

SETTLE_S = 10.0


def _stack_missing() -> str | None:
    if os.environ.get("HSM_PCSCD"):
        return None
    try:
        readers = list_readers()
    except TransportError as exc:
        return str(exc)
    if not set(vpcd_readers().values()) & set(readers):
        return "pcscd runs without vsmartcard's vpcd readers (scripts/test.sh starts them)"
    return None


pytestmark = [
    pytest.mark.pcscd,
    pytest.mark.skipif(_stack_missing() is not None, reason=f"no pcscd with vpcd readers: {_stack_missing()}"),
]


@contextlib.contextmanager
def _empty_vpcd_port() -> Iterator[int]:
    """A leased vpcd port whose reader holds no card (an emulator someone started outside the
    leases would share the port with ours)."""
    with contextlib.ExitStack() as stack:
        deadline = time.monotonic() + 60
        while True:
            for port, reader in vpcd_readers().items():
                try:
                    stack.enter_context(lease_port([port]))
                except VpcdError:
                    continue  # leased by someone else
                if reader_atrs([reader])[reader] is None:
                    yield port
                    return
            assert time.monotonic() < deadline, "no free vpcd reader within 60 s"
            time.sleep(0.5)


def _wait_for_card(reader: str) -> bytes:
    deadline = time.monotonic() + SETTLE_S
    while True:
        atr = reader_atrs([reader])[reader]
        if atr is not None:
            return atr
        assert time.monotonic() < deadline, f"pcscd never saw the emulated card in '{reader}'"
        time.sleep(0.05)


def test_doctor_reads_the_threads_token_through_pcscd(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    state = tmp_path / "token.state"
    build_token(so_wrong=8, user_wrong=1, keys=2, state_path=state)
    before = VirtualToken.open(state).status()
    with _empty_vpcd_port() as port:
        reader = vpcd_readers()[port]
        with serve_emulator(port, state):
            assert _wait_for_card(reader) == ATR
            code = cli.main(["doctor", "--reader", reader, "--so-pin", "3537363231383830"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert f"Token in {reader}" in out
    assert "Lifecycle state: initialized" in out
    assert "SO-PIN        7 tries left" in out and "User PIN      2 tries left" in out
    assert "Keys          2 (ids 1, 2)" in out
    assert "--init-pin" in out and "3537363231383830 is the hex of the ASCII text 57621880" in out
    after = VirtualToken.open(state).status()
    for name in ("so_tries", "user_tries", "keys", "options", "serial", "identity_generation"):
        assert getattr(after, name) == getattr(before, name), name


def test_doctor_reads_two_tokens_through_pcscd_as_json(tmp_path, capsys):
    """Several readers at once over PC/SC: the issue's token (one mistake from losing its key)
    and the forum thread's, each in its own vpcd reader; both state files stay byte-identical."""
    import json

    import jsonschema

    from hsm_lifecycle.conformance.doctor_report import load_schema

    issue, forum = tmp_path / "issue.state", tmp_path / "forum.state"
    build_token(so_wrong=15, keys=1, state_path=issue)
    build_token(so_wrong=8, user_wrong=1, keys=2, state_path=forum)
    before = {p: p.read_bytes() for p in (issue, forum)}
    from hsm_lifecycle.emulator.vpcd import lease_ports

    readers = vpcd_readers()
    empty = lambda port: reader_atrs([readers[port]])[readers[port]] is None  # noqa: E731
    with lease_ports(2, wait=60, usable=empty) as (port_a, port_b):
        reader_a, reader_b = readers[port_a], readers[port_b]
        with serve_emulator(port_a, issue), serve_emulator(port_b, forum):
            assert _wait_for_card(reader_a) == ATR and _wait_for_card(reader_b) == ATR
            code = cli.main(["doctor", "--json", "--reader", reader_b, "--reader", reader_a])
    out, err = capsys.readouterr()
    doc = json.loads(out)
    jsonschema.validate(doc, load_schema())
    assert [t["reader"] for t in doc["tokens"]] == [reader_b, reader_a]
    assert [t["exit_code"] for t in doc["tokens"]] == [0, 1]
    assert code == doc["exit_code"] == 1, err
    assert doc["tokens"][1]["first_warnings"][0].startswith("DANGER: you are 3 wrong user PINs (3 tries left)")
    assert doc["tokens"][0]["counters"]["so_tries"] == 7 and doc["tokens"][0]["counters"]["keys"] == 2
    assert {p: p.read_bytes() for p in (issue, forum)} == before
