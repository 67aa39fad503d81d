"""R22 malformed-refused: a malformed command (Lc longer or shorter than the data, a truncated
TLV, an impossible P1/P2, an unknown INS or CLA) is answered with an ISO 7816-4 error within a
deadline and changes nothing: no counter, no session, no object. Whether a case-3 command with
an Le is accepted is an open behaviour (rules.md), not part of this rule.

Cost class wipes: the interlocks cannot know that an unknown INS or a broken INITIALIZE is
harmless, so they count them as writes; on the emulator everything runs."""

import pytest

from hsm_lifecycle.conformance import offalphabet as raw
from hsm_lifecycle.model.commands import Command as C
from hsm_lifecycle.protocol import CLA_ISO, CLA_PROPRIETARY, PIN_USER, Ins

SIX = b"\x31\x32\x33\x34\x35\x36"


def malformed(hsm) -> dict[str, list[tuple[str, bytes]]]:
    pin = hsm.mapper.pins.user_pin
    return {
        "R22.lc-longer-than-data": [("VERIFY 81, Lc 08 with 6 data bytes", bytes([CLA_ISO, Ins.VERIFY, 0, PIN_USER, 8]) + pin[:6])],
        "R22.lc-shorter-than-data": [
            ("VERIFY 81, Lc 04 with 6 data bytes", bytes([CLA_ISO, Ins.VERIFY, 0, PIN_USER, 4]) + SIX),
            # the PIN itself within Lc, two bytes more after it: a device that drops the rest logs in
            ("VERIFY 81, Lc of the PIN with 2 bytes more", bytes([CLA_ISO, Ins.VERIFY, 0, PIN_USER, len(pin)]) + pin + b"\x00\x00"),
        ],
        "R22.truncated-tlv": [
            ("INITIALIZE with a TLV running past the data", bytes([CLA_PROPRIETARY, Ins.INITIALIZE_DEVICE, 0, 0, 5, 0x80, 0x02, 0x00, 0x81, 0x06])),
            ("GENERATE KEY with a truncated body", bytes([CLA_ISO, Ins.GENERATE_ASYMMETRIC_KEY_PAIR, 0x01, 0, 3, 0x7F, 0x49, 0x05])),
        ],
        "R22.impossible-p1p2": [
            ("VERIFY with P2 99", bytes([CLA_ISO, Ins.VERIFY, 0, 0x99])),
            ("ENUMERATE OBJECTS with P1P2 0101", bytes([CLA_PROPRIETARY, Ins.ENUMERATE_OBJECTS, 1, 1, 0])),
        ],
        "R22.unknown-ins": [("INS 5E", bytes([CLA_ISO, 0x5E, 0, 0])), ("CLA 80 INS F0", bytes([CLA_PROPRIETARY, 0xF0, 0, 0]))],
        "R22.unknown-cla": [("CLA B0 VERIFY", bytes([0xB0, Ins.VERIFY, 0, PIN_USER])), ("CLA D0 VERIFY", bytes([0xD0, Ins.VERIFY, 0, PIN_USER]))],
    }


@pytest.mark.rule("R22")
@pytest.mark.cost("wipes")
def test_r22_malformed_commands_refused_and_change_nothing(hsm):
    hsm.provision(keys=1)
    hsm.steps(C.query_so(), C.verify_user("right"), C.query_user())  # a known session and counters
    before = raw.listed(hsm)
    slow: list[str] = []
    for check, commands in malformed(hsm).items():
        with hsm.checking(check):
            for what, capdu in commands:
                raw.refused_in_time(hsm, check, what, capdu, slow)
    hsm.check(not slow, f"answered after the {raw.DEADLINE_S:.0f} s deadline: {'; '.join(slow)}", "R22.within-deadline")
    with hsm.checking("R22.changes-nothing"):
        hsm.steps(C.query_user(), C.query_so(), C.sign())  # still logged in, same SO counter
        hsm.steps(C.select(), C.query_user())  # the user counter, seen once the session is over
        after = raw.listed(hsm)
        hsm.check(after == before, f"objects before {sorted(before)}, after {sorted(after)}", "R22.changes-nothing")
