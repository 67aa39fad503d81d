"""Every INS (00..FF) under CLA 00 and 80, in six shapes, in every start state: answered with a
status word, no internal error, every fuzz invariant kept. Deterministic: the sweep a fuzzer
might take long to stumble through."""

from __future__ import annotations

import pytest

from hsm_lifecycle.conformance.fuzz.fuzzed import FuzzedToken
from hsm_lifecycle.conformance.fuzz.invariants import durable
from hsm_lifecycle.conformance.fuzz.starts import Campaign
from hsm_lifecycle.protocol import AID

# (P1, P2, body after the header)
SHAPES: tuple[tuple[int, int, bytes], ...] = (
    (0x00, 0x00, b""),  # case 1
    (0x00, 0x00, b"\x00"),  # case 2S, Le 256
    (0x00, 0x81, b"\x06000000"),  # case 3S: a wrong user PIN where a PIN goes
    (0x04, 0x00, bytes([len(AID)]) + AID + b"\x00"),  # case 4S: the applet's AID
    (0x00, 0x88, b"\x00\x01\x2c" + bytes(300) + b"\x00\x00"),  # case 4E, 300 bytes
    (0xFF, 0xFF, b"\x05\x01\x02"),  # Lc says 5, 2 bytes follow
)


@pytest.mark.parametrize("start", range(11), ids=lambda i: f"start{i}")
def test_every_instruction_in_every_state(campaign: Campaign, start: int) -> None:
    begin = campaign.starts[start]
    fuzzed = FuzzedToken(campaign, begin)
    origin = durable(fuzzed.token.status())
    sent = 0
    for cla in (0x00, 0x80):
        for ins in range(256):
            if durable(fuzzed.token.status()) != origin:
                fuzzed = FuzzedToken(campaign, begin)  # back to the state under test
                origin = durable(fuzzed.token.status())  # (a new token: a new identity)
            for p1, p2, body in SHAPES:
                fuzzed.apply(bytes([cla, ins, p1, p2]) + body)
                sent += 1
            assert not fuzzed.findings, f"[{begin.name}] CLA {cla:02X} INS {ins:02X}: {fuzzed.findings[0]}"
    assert sent == 2 * 256 * len(SHAPES)


def test_there_are_eleven_starts(campaign: Campaign) -> None:
    assert len(campaign.starts) == 11, [s.name for s in campaign.starts]
