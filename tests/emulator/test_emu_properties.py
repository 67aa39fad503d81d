"""Property tests: random APDUs never raise, always answer a status word, and never raise a
counter, give back a login or re-initialize the token (R01, R02, R04, R19)."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emu_helpers import initialized_card, select_applet

from hsm_lifecycle.emulator import Fault, Profile, VirtualToken
from hsm_lifecycle import protocol

KNOWN_INS = [0xA4, 0x20, 0x24, 0x2C, 0x50, 0x52, 0x58, 0x46, 0x68, 0x62, 0x84, 0xB1, 0xD7, 0xE4, 0xC0]
FAST = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def apdus(draw: st.DrawFn) -> bytes:
    """Mostly well-framed commands to the applet's instructions, with random everything else."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.binary(max_size=300))
    cla = draw(st.sampled_from([0x00, 0x80, 0x00, 0x80, 0x0C, 0xFF]))
    ins = draw(st.sampled_from(KNOWN_INS) | st.integers(0, 255))
    p1 = draw(st.sampled_from([0x00, 0x01, 0x04]) | st.integers(0, 255))
    p2 = draw(st.sampled_from([0x00, 0x81, 0x88, 0x85, 0x04]) | st.integers(0, 255))
    data = draw(st.binary(max_size=40) | st.sampled_from([b"", protocol.AID]))
    extended = draw(st.booleans())
    le = draw(st.none() | st.integers(0, 65535 if extended else 255))
    body = b""
    if data:
        body += (b"\x00" + len(data).to_bytes(2, "big")) if extended else bytes([len(data)])
        body += data
    if le is not None:
        if extended:
            body += (b"" if data else b"\x00") + le.to_bytes(2, "big")
        else:
            body += bytes([le])
    return bytes([cla, ins, p1, p2]) + body


@FAST
@given(st.binary(max_size=300))
def test_random_bytes_never_raise(capdu: bytes) -> None:
    token = VirtualToken.manufacture()
    for _ in ("before SELECT", "after SELECT"):
        rapdu = token.transmit(capdu)
        assert len(rapdu) >= 2
        assert token.last_internal_error is None, token.last_internal_error
        token.transmit(select_applet())


@FAST
@given(st.lists(apdus(), min_size=1, max_size=25))
def test_random_apdus_never_raise_a_counter(sequence: list[bytes]) -> None:
    card = initialized_card(retries=5)
    card.sw(bytes.fromhex("0020008106303030303030"))  # one wrong try: room to go up if buggy
    before = card.status
    for capdu in sequence:
        rapdu = card.token.transmit(capdu)
        assert len(rapdu) >= 2 and card.token.last_internal_error is None
        now = card.status
        assert now.so_tries <= before.so_tries
        assert now.user_tries <= before.user_tries
        assert now.initialized and now.user_max == before.user_max
        assert now.options == before.options and now.serial == before.serial
        assert not now.authenticated  # no random APDU guesses the PIN
        before = now


@FAST
@given(st.lists(apdus(), min_size=1, max_size=15))
def test_random_apdus_on_a_shipped_token_change_nothing_but_initialize(sequence: list[bytes]) -> None:
    token = VirtualToken.manufacture()
    token.transmit(select_applet())
    for capdu in sequence:
        initialized_before = token.status().initialized
        rapdu = token.transmit(capdu)
        assert len(rapdu) >= 2 and token.last_internal_error is None
        if not initialized_before and token.status().initialized:
            # Only a 9000 INITIALIZE DEVICE may initialize (R20, R21).
            assert capdu[:2] == b"\x80\x50" and rapdu[-2:] == b"\x90\x00"
            assert token.status().so_tries == protocol.SO_PIN_TRIES


@FAST
@given(st.lists(apdus(), min_size=1, max_size=15), st.sampled_from(sorted(Fault, key=lambda f: f.value)))
def test_faulty_tokens_never_raise_either(sequence: list[bytes], fault: Fault) -> None:
    card = initialized_card(faults=frozenset({fault}))
    for capdu in sequence:
        assert len(card.token.transmit(capdu)) >= 2
        assert card.token.last_internal_error is None


FIDS = [0x0000, 0x2F02, 0xCC00, 0xCC01, 0xC401, 0xCE01, 0xCD01, 0xCF01, 0x3F00]


@st.composite
def object_apdus(draw: st.DrawFn) -> bytes:
    """File and key commands with plausible parameters and partly well-formed bodies."""
    ins = draw(st.sampled_from([0xB1, 0xD7, 0xE4, 0xA4, 0x58, 0x46, 0x68, 0x62, 0x84, 0x52]))
    cla = 0x80 if ins in (0x58, 0x68, 0x62, 0x52) else 0x00
    fid = draw(st.sampled_from(FIDS) | st.integers(0, 0xFFFF))
    offset = draw(st.sampled_from([0, 1, 4, 464, 500]) | st.integers(0, 0xFFFF))
    chunk = draw(st.binary(max_size=60))
    body = draw(
        st.sampled_from(
            [
                b"\x54\x02" + offset.to_bytes(2, "big"),
                b"\x54\x02" + offset.to_bytes(2, "big") + b"\x53" + bytes([len(chunk)]) + chunk,
                fid.to_bytes(2, "big"),
                chunk,
                b"",
            ]
        )
    )
    p1p2 = fid if ins in (0xB1, 0xD7) else draw(st.sampled_from([0x0000, 0x0200, 0x0173, 0x0121]) | st.integers(0, 0xFFFF))
    header = bytes([cla, ins, p1p2 >> 8, p1p2 & 0xFF])
    le = draw(st.sampled_from([b"", b"\x00", b"\x00\x00"]))
    if not body:
        return header + (b"\x00" + le if len(le) == 2 else le)
    if len(le) == 2:
        return header + b"\x00" + len(body).to_bytes(2, "big") + body + le
    return header + bytes([len(body)]) + body + le


@FAST
@given(st.lists(object_apdus(), min_size=1, max_size=25))
def test_random_object_commands_keep_identity_and_budget(sequence: list[bytes]) -> None:
    card = initialized_card(profile=Profile(storage_bytes=1500))
    card.sw(bytes.fromhex("0020008106") + protocol.DEFAULT_USER_PIN)
    state = card.token._applet.state  # noqa: SLF001 - comparing stored bytes
    identity = (state.files[protocol.FID_C_DEVAUT], state.keys[protocol.FID_DEVICE_KEY])
    for capdu in sequence:
        rapdu = card.token.transmit(capdu)
        assert len(rapdu) >= 2 and card.token.last_internal_error is None, capdu.hex()
        state = card.token._applet.state  # noqa: SLF001
        assert (state.files[protocol.FID_C_DEVAUT], state.keys[protocol.FID_DEVICE_KEY]) == identity
        status = card.status
        assert status.storage_used <= status.storage_bytes
        assert status.user_tries == 3 and status.so_tries == 15
