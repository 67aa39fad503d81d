"""The mapper sends exactly design.md's APDUs and tracks the PINs from the device's answers."""

from __future__ import annotations

import pytest

from hsm_lifecycle.conformance.mapper import ALT_SO_PIN, ALT_USER_PIN, Mapper, PinBook, apdu
from hsm_lifecycle.conformance.trace import TraceRecorder, TracingTransport
from hsm_lifecycle.conformance.transport.inprocess import InProcessTransport
from hsm_lifecycle.emulator import VirtualToken
from hsm_lifecycle import cvc, tlv
from hsm_lifecycle.protocol import AID, DEFAULT_SO_PIN, DEFAULT_USER_PIN
from hsm_lifecycle.model.commands import Command as C


@pytest.fixture
def wired():
    recorder = TraceRecorder()
    mapper = Mapper(TracingTransport(InProcessTransport(VirtualToken.manufacture()), recorder))
    mapper.select()
    return mapper, recorder


def sent(recorder: TraceRecorder) -> str:
    return recorder.lines[-1].cmd


def test_design_table_apdus(wired):
    mapper, rec = wired
    so, pin = DEFAULT_SO_PIN.hex().upper(), DEFAULT_USER_PIN.hex().upper()
    assert mapper.run(C.select(), uninitialized=True) == "9000" and sent(rec) == "00A404000B" + AID.hex().upper() + "00"
    assert mapper.run(C.query_user(), uninitialized=True) == "6A88" and sent(rec) == "00200081"
    assert mapper.run(C.query_so(), uninitialized=True) == "6A88" and sent(rec) == "00200088"
    assert mapper.run(C.initialize("right", 0x0001, 3), uninitialized=True) == "9000"
    assert sent(rec) == f"8050000019800200018106{pin}8208{so}910103"
    assert mapper.run(C.verify_user("wrong"), uninitialized=False) == "63C2" and sent(rec) == "0020008106303030303030"
    assert mapper.run(C.verify_user("wrong_length"), uninitialized=False) == "6A80" and sent(rec) == "00200081053132333435"
    assert mapper.run(C.verify_user("right"), uninitialized=False) == "9000" and sent(rec) == f"0020008106{pin}"
    assert mapper.run(C.reset_retry_counter("wrong", False), uninitialized=False) == "63CE"
    assert sent(rec) == "002C018108" + "00" * 8
    assert mapper.run(C.change_so_pin("right"), uninitialized=False) == "9000"
    assert sent(rec) == f"0024008810{so}{ALT_SO_PIN.hex().upper()}"
    assert mapper.run(C.delete_key(), uninitialized=False) in ("6A82", "6982") and sent(rec) == "00E4020002CC01"


def test_pins_toggle_only_when_the_device_accepts(wired):
    mapper, _ = wired
    mapper.run(C.initialize("right", 0x0001, 3), uninitialized=True)
    assert mapper.run(C.change_user_pin("wrong"), uninitialized=False) == "63C2"
    assert mapper.pins.user_pin == DEFAULT_USER_PIN
    assert mapper.run(C.change_user_pin("right"), uninitialized=False) == "9000"
    assert mapper.pins.user_pin == ALT_USER_PIN
    # The wrong PIN has the current PIN's length: CHANGE 81 splits old||new by it.
    assert len(mapper.pins.wrong_user_pin) == len(ALT_USER_PIN)
    assert mapper.run(C.change_user_pin("wrong"), uninitialized=False) == "63C2"
    assert mapper.run(C.reset_retry_counter("right", True), uninitialized=False) == "9000"
    assert mapper.pins.user_pin == DEFAULT_USER_PIN and mapper.pins.at_origin


def test_first_initialize_with_any_code_records_it_as_the_so_pin(wired):
    mapper, _ = wired
    assert mapper.run(C.initialize("wrong", 0x0001, 3), uninitialized=True) == "9000"
    assert mapper.pins.so_pin == ALT_SO_PIN
    assert mapper.run(C.change_so_pin("right"), uninitialized=False) == "9000"


def test_keys_get_the_next_free_id_and_signing_uses_the_newest(wired):
    mapper, rec = wired
    mapper.run(C.initialize("right", 0x0001, 3), uninitialized=True)
    mapper.run(C.verify_user("right"), uninitialized=False)
    assert mapper.run(C.generate_key(), uninitialized=False) == "9000"
    assert rec.lines[-2].cmd == "80580000000000", "ENUMERATE (extended Le) first"
    assert sent(rec).startswith("0046010000")
    assert mapper.run(C.generate_key(), uninitialized=False) == "9000" and mapper.keys == [1, 2]
    assert mapper.run(C.sign(), uninitialized=False) == "9000" and sent(rec).startswith("80680273")
    assert mapper.run(C.delete_key(), uninitialized=False) == "9000" and sent(rec) == "00E4020002CC02"
    assert mapper.key_ids() == {1}


def test_gakp_body_is_a_p256_cv_body_template(wired):
    mapper, _ = wired
    items = {item.tag: item for item in tlv.decode_all(mapper._gakp)}
    assert list(items) == [0x5F29, 0x42, 0x7F49, 0x5F20]
    key = {item.tag: item.value for item in tlv.decode_all(items[0x7F49].value)}
    assert cvc.decode_oid(key[0x06]) == "0.4.0.127.0.7.2.2.2.2.3"
    assert 0x86 not in key, "a template: the card makes the point"
    domain = cvc.match_domain(*(int.from_bytes(key[t], "big") for t in (0x81, 0x82, 0x83)), key[0x84], int.from_bytes(key[0x85], "big"), key[0x87][0])
    assert domain.name == "secp256r1"


def test_identity_read_is_the_whole_ef(wired):
    mapper, _ = wired
    chain = cvc.verify_c_devaut(mapper.read_identity(), cvc.load_test_root())
    assert chain.serial == mapper.transport.describe()["serial"]


def test_pinbook_never_uses_an_owner_pin_as_wrong():
    book = PinBook.create(b"000000", bytes(8))
    assert book.wrong_user_pin not in book.user and book.wrong_so not in book.so
    assert book.user[1] != book.user[0] and book.so[1] != book.so[0]


@pytest.mark.parametrize(
    ("args", "encoded"),
    [
        ((0x00, 0x20, 0x00, 0x81), "00200081"),
        ((0x00, 0x20, 0x00, 0x81, b"123456"), "0020008106313233343536"),
        ((0x80, 0x58, 0x00, 0x00, b"", 0, True), "80580000000000"),
        ((0x00, 0x46, 0x01, 0x00, b"\x01" * 300, 0, True), "00460100" + "00012C" + "01" * 300 + "0000"),
    ],
)
def test_apdu_encoding(args, encoded):
    assert apdu(*args).hex().upper() == encoded


def test_widened_alphabet_apdus(wired):
    """DECIPHER, the data object, CC00 and the wrong-length PINs: the bytes of protocol-digest §4."""
    mapper, rec = wired
    so, pin = DEFAULT_SO_PIN.hex().upper(), DEFAULT_USER_PIN.hex().upper()
    alt_so = ALT_SO_PIN.hex().upper()
    mapper.run(C.initialize("right", 0x0001, 3), uninitialized=True)
    assert mapper.run(C.verify_user("over_long"), uninitialized=False) == "6A80"
    assert sent(rec) == "0020008111" + b"12345678901234567".hex().upper()
    assert mapper.run(C.change_user_pin("wrong_length"), uninitialized=False) == "6A80"
    assert sent(rec) == f"002400810B{pin}3132333435"
    assert mapper.run(C.change_so_pin("wrong_length"), uninitialized=False) == "6A80"
    assert sent(rec) == f"002400880F{so[:14]}{alt_so}"
    assert mapper.run(C.change_so_pin("over_long"), uninitialized=False) == "6A80"
    assert sent(rec) == f"0024008811{so}00{alt_so}"
    assert mapper.run(C.reset_retry_counter("wrong_length", False), uninitialized=False) == "6A80"
    assert sent(rec) == f"002C018107{so[:14]}"
    assert mapper.run(C.reset_retry_counter("over_long", True), uninitialized=False) == "6A80"
    assert sent(rec) == f"002C008119{so}" + b"12345678901234567".hex().upper()
    assert mapper.run(C.initialize("wrong_length"), uninitialized=False) == "6A80"
    assert sent(rec) == f"8050000018800200018106{pin}8207{so[:14]}910103"
    assert mapper.run(C.query_so(), uninitialized=False) == "63CF", "no SO try spent"
    # Without login: refused, and nothing written.
    assert mapper.run(C.write_data(), uninitialized=False) == "6982"
    assert rec.lines[-2].cmd == "80580000000000", "ENUMERATE once, to choose a free CDxx"
    body = "54020000" + "53" + f"{len(b'hsm-lifecycle: only the user PIN reads this'):02X}" + b"hsm-lifecycle: only the user PIN reads this".hex().upper()
    assert sent(rec) == f"00D7CD01{len(body) // 2:02X}{body}" and mapper.data_fid == 0xCD01
    assert mapper.run(C.read_protected(), uninitialized=False) == "6982" and sent(rec) == "00B1CD0104540200002B"
    assert mapper.run(C.verify_user("right"), uninitialized=False) == "9000"
    assert mapper.run(C.read_protected(), uninitialized=False) == "6A82"
    assert mapper.run(C.write_data(), uninitialized=False) == "9000"
    assert mapper.run(C.read_protected(), uninitialized=False) == "9000"
    assert mapper.run(C.decipher(), uninitialized=False) == "6A88" and sent(rec).startswith("80620180000041" + "04")
    assert mapper.run(C.generate_key(), uninitialized=False) == "9000"
    assert mapper.run(C.decipher(), uninitialized=False) == "9000"
    assert sent(rec) == "80620180000041" + mapper_point() + "0000"
    assert mapper.run(C.device_sign(), uninitialized=False) == "9000" and sent(rec).startswith("80680073000020")
    assert mapper.device_key is not None
    assert mapper.run(C.warm_reset(), uninitialized=False) == "9000" and sent(rec).startswith("00A40400")
    assert mapper.run(C.read_protected(), uninitialized=False) == "6982", "the warm reset ended the session"


def mapper_point() -> str:
    return cvc.CURVES["secp256r1"].generator.hex().upper()


def test_device_sign_tells_a_changed_device_key(wired):
    """A 9000 from CC00 that does not verify under the key read from 2F02 before is reported."""
    from cryptography.hazmat.primitives.asymmetric import ec

    mapper, _ = wired
    mapper.run(C.initialize("right", 0x0001, 3), uninitialized=True)
    mapper.run(C.verify_user("right"), uninitialized=False)
    mapper.device_key = ec.generate_private_key(ec.SECP256R1()).public_key()  # not this token's
    assert mapper.run(C.device_sign(), uninitialized=False) == "device-key-differs"
