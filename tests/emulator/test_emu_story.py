"""The forum thread (shared/story) replayed at APDU level, as sc-hsm-tool would send it.

The user's token: version 3.2, "User PIN reset with SO-PIN enabled", SO-PIN tries left 7, user
PIN tries left 2. `sc-hsm-tool --initialize --so-pin 3537363231383830 --pin 648219` fails with
"PIN code or key incorrect" and costs an SO try.
"""

from __future__ import annotations

import pytest
from emu_helpers import PIN, WRONG_PIN, initialize, initialized_card, select_applet

from hsm_lifecycle.emulator import Profile
from hsm_lifecycle import protocol

# The SO-PIN the user once set and forgot (any 8 bytes but the default).
FORGOTTEN_SO = bytes.fromhex("3837363534333231")
PRINT_INFO_SO = bytes.fromhex("00200088")
PRINT_INFO_USER = bytes.fromhex("00200081")


def thread_token(profile: Profile = Profile()):  # type: ignore[no-untyped-def]
    card = initialized_card(profile=profile)  # default SO-PIN, options 0001, 3 tries
    assert card.sw(initialize(so=protocol.DEFAULT_SO_PIN, options=1, retries=3)) == "9000"
    # Re-create the thread's history: the SO-PIN changed to something forgotten, 8 wrong
    # INITIALIZE attempts, one wrong user PIN.
    assert card.sw(bytes.fromhex("0024008810") + protocol.DEFAULT_SO_PIN + FORGOTTEN_SO) == "9000"
    for _ in range(8):
        card.sw(initialize(so=protocol.DEFAULT_SO_PIN))
    assert card.sw(bytes.fromhex("0020008106") + WRONG_PIN) == "63C2"
    return card


def print_info(card) -> tuple[str, str, str]:  # type: ignore[no-untyped-def]
    """What sc-hsm-tool prints without options: version, options, SO tries, user tries."""
    fcp, sw = card.send(select_applet())
    assert sw == 0x9000
    prop = fcp[fcp.index(0x85) + 2 :]
    options_low = prop[len(prop) - 4]
    return f"{prop[-2]}.{prop[-1]}", f"{options_low:02X}", card.sw(PRINT_INFO_SO) + "/" + card.sw(PRINT_INFO_USER)


def test_the_thread_token_prints_as_in_the_thread() -> None:
    card = thread_token()
    version, options, tries = print_info(card)
    assert version == "3.2"
    assert options == "01"  # "User PIN reset with SO-PIN enabled"
    assert tries == "63C7/63C2"  # "SO-PIN tries left : 7", "User PIN tries left : 2"


@pytest.mark.parametrize("init_wrong_so_sw", ["63Cx", "6982", "6985"])
def test_initialize_with_the_default_so_pin_is_refused_and_spends_a_try(
    init_wrong_so_sw: str,
) -> None:
    card = thread_token(Profile(init_wrong_so_sw=init_wrong_so_sw))
    # sc-hsm-tool --initialize --so-pin 3537363231383830 --pin 648219 (no --pin-retry: 91 01 03)
    apdu = bytes.fromhex("80500000") + bytes([0x19]) + bytes.fromhex(
        "80020001" "8106" + PIN.hex() + "82083537363231383830" "910103"
    )
    sw = card.sw(apdu)
    assert sw == ("63C6" if init_wrong_so_sw == "63Cx" else init_wrong_so_sw)
    assert print_info(card) == ("3.2", "01", "63C6/63C2")
    # Nothing else changed: the user PIN still works, which restores its tries.
    assert card.sw(bytes.fromhex("0020008106") + PIN) == "9000"
    assert card.status.user_tries == 3


def test_the_right_so_pin_would_still_reset_the_token() -> None:
    card = thread_token()
    assert card.sw(initialize(so=FORGOTTEN_SO, retries=3)) == "9000"
    assert print_info(card) == ("3.2", "01", "63CF/63C3")
