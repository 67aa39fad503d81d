"""Device identity (§5): CC00 and 2F02 from manufacture, verifiable to the test root, kept
byte-identical by INITIALIZE (R08) while everything else is wiped (R07); the identity faults."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from emu_helpers import (
    PIN,
    PIN2,
    SO,
    WRONG_SO,
    Card,
    fresh_card,
    initialize,
    initialized_card,
    select_applet,
    verify_so,
    verify_user,
)
from emu_objects import ec_body, enumerate_objects, gakp, list_fids, read_binary, sign, update_binary

from hsm_lifecycle.emulator import Fault, VirtualToken
from hsm_lifecycle import cvc, protocol

C_DEVAUT, DEVICE_KEY = protocol.FID_C_DEVAUT, protocol.FID_DEVICE_KEY


def c_devaut(card: Card) -> bytes:
    assert card.sw(read_binary(C_DEVAUT)) == "6282"
    return card.data


def device_key_blob(card: Card) -> bytes:
    return card.token._applet.state.keys[DEVICE_KEY]  # noqa: SLF001 - never readable by APDU


def with_objects(**kwargs: object) -> Card:
    card = initialized_card(**kwargs)  # type: ignore[arg-type]
    assert card.sw(verify_user(PIN)) == "9000"
    assert card.sw(gakp(1, ec_body())) == "9000"
    assert card.sw(update_binary(0xC401, 0, b"prkd")) == "9000"
    assert card.sw(update_binary(0xCD01, 0, b"data")) == "9000"
    return card


def test_shipped_token_has_a_verifiable_identity() -> None:
    card = fresh_card()
    chain = cvc.verify_c_devaut(c_devaut(card), cvc.load_test_root())
    assert chain.serial == card.token.serial == cvc.serial_from_chr(chain.device_chr)
    assert len(chain.device_chr) >= 8 and chain.device_chr == card.status.device_chr
    assert chain.root_chr == cvc.TEST_ROOT_CHR
    # The device key (CC00) is the key of the device certificate.
    assert card.sw(verify_user(PIN)) == "6A88"
    card.sw(enumerate_objects())
    assert list_fids(card.data) == [C_DEVAUT, DEVICE_KEY]


def test_every_token_gets_its_own_identity() -> None:
    first, second = fresh_card(), fresh_card()
    assert c_devaut(first) != c_devaut(second)
    assert device_key_blob(first) != device_key_blob(second)


def test_the_device_key_is_never_readable() -> None:
    card = with_objects()
    assert card.sw(read_binary(DEVICE_KEY)) == "6982"
    assert card.sw(read_binary(0xCC01)) == "6982"


def test_reinit_wipes_objects_and_keeps_identity_byte_identical() -> None:
    card = with_objects()
    before_2f02, before_cc00 = c_devaut(card), device_key_blob(card)
    serial = card.token.serial
    assert card.sw(initialize(pin=PIN2)) == "9000"
    card.sw(enumerate_objects())
    assert list_fids(card.data) == [C_DEVAUT, DEVICE_KEY]
    assert c_devaut(card) == before_2f02 and device_key_blob(card) == before_cc00
    assert card.token.serial == serial and card.status.identity_generation == 0
    assert card.sw(verify_user(PIN2)) == "9000"
    assert card.sw(sign(1, 0x73, b"x")) == "6A88"  # the key is gone


def test_wrong_so_reinit_keeps_objects() -> None:
    card = with_objects()
    assert card.sw(initialize(so=WRONG_SO)) == "63CE"
    card.sw(enumerate_objects())
    assert list_fids(card.data) == [C_DEVAUT, 0xCE01, 0xC401, 0xCD01, DEVICE_KEY, 0xCC01]  # creation order


def test_identity_survives_reopen(tmp_path: Path) -> None:
    path = tmp_path / "token.json"
    card = Card(VirtualToken.manufacture(state_path=path))
    card.sw(select_applet())
    identity = c_devaut(card)
    again = Card(VirtualToken.open(path))
    again.sw(select_applet())
    assert c_devaut(again) == identity and again.token.serial == card.token.serial


def test_keys_survive_reopen_and_still_sign(tmp_path: Path) -> None:
    path = tmp_path / "token.json"
    card = Card(VirtualToken.manufacture(state_path=path))
    card.sw(select_applet())
    card.sw(initialize())
    card.sw(verify_user(PIN))
    request, _ = card.send(gakp(1, ec_body()))
    again = Card(VirtualToken.open(path))
    again.sw(select_applet())
    again.sw(verify_user(PIN))
    signature, sw = again.send(sign(1, 0x73, b"after reopen"))
    assert sw == 0x9000
    cvc.request_public_key(request).verify(signature, b"after reopen", ec.ECDSA(hashes.SHA256()))


# --- faults that need objects ---------------------------------------------------------------------


def test_fault_reinit_keeps_keys() -> None:
    card = with_objects(faults=frozenset({Fault.REINIT_KEEPS_KEYS}))
    assert card.sw(initialize()) == "9000"
    assert 0xCC01 in card.status.keys  # R07 broken


def test_fault_identity_changes_on_init() -> None:
    card = with_objects(faults=frozenset({Fault.IDENTITY_CHANGES_ON_INIT}))
    before, generation = c_devaut(card), card.status.identity_generation
    assert card.sw(initialize()) == "9000"
    after = c_devaut(card)
    assert after != before  # R08 broken, yet the new chain is a valid one
    assert cvc.verify_c_devaut(after, cvc.load_test_root()).serial == card.token.serial
    assert card.status.identity_generation == generation + 1


def test_fault_key_use_without_login() -> None:
    good = with_objects()
    good.sw(select_applet())
    assert good.sw(sign(1, 0x73, b"x")) == "6982"
    bad = with_objects(faults=frozenset({Fault.KEY_USE_WITHOUT_LOGIN}))
    bad.sw(select_applet())
    assert bad.sw(sign(1, 0x73, b"x")) == "9000"  # R10 broken
    assert bad.sw(gakp(2, ec_body())) == "9000"


def test_fault_so_pin_authorizes_keys() -> None:
    card = initialized_card(faults=frozenset({Fault.SO_PIN_AUTHORIZES_KEYS}))
    assert card.sw(verify_so(SO)) == "9000"
    assert card.sw(gakp(1, ec_body())) == "9000"  # R09 broken


# --- firmware update (for the portal) -------------------------------------------------------------


@pytest.mark.parametrize("counted", [False, True])
def test_firmware_update_makes_a_new_identity_and_ships_again(counted: bool) -> None:
    card = with_objects()
    old_identity, old_serial = c_devaut(card), card.token.serial
    card.token.firmware_update(counted=counted)
    status = card.status
    assert not status.initialized and status.keys == (DEVICE_KEY,) and status.files == (C_DEVAUT,)
    assert status.identity_generation == 1 and status.so_blocked_updates == int(counted)
    assert not status.selected and not status.authenticated
    card.sw(select_applet())
    assert card.sw(verify_user(PIN)) == "6A88"
    new_identity = c_devaut(card)
    assert new_identity != old_identity
    chain = cvc.verify_c_devaut(new_identity, cvc.load_test_root())  # same root (R14)
    assert chain.serial == card.token.serial != old_serial
    assert card.sw(initialize(so=bytes(8))) == "9000"  # any code again (R21)
