"""DKEK key backup in the emulator: shares, WRAP KEY (80 72), UNWRAP KEY (80 74), the key blob."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from emu_helpers import PIN, SO, Card, fresh_card, initialize, verify_user
from emu_objects import DKEK_STATUS, ext4, gakp, read_binary, rsa_body, sign, ec_body

from hsm_lifecycle import cvc, protocol, tlv
from hsm_lifecycle.emulator import dkek as backup
from hsm_lifecycle.emulator import keys, weierstrass
from hsm_lifecycle.emulator.profile import Fault

SHARE_A = bytes(range(32))
SHARE_B = bytes(range(32, 64))
MESSAGE = b"a key that outlives its token"


def dkek_card(shares: tuple[bytes, ...] = (SHARE_A,), announce: int | None = None,
              faults: frozenset[Fault] = frozenset()) -> Card:
    """An initialized token announcing `announce` (default: all of `shares`) DKEK shares, the
    shares imported, the user PIN verified."""
    card = fresh_card(faults=faults)
    count = len(shares) if announce is None else announce
    assert card.sw(initialize(extra=bytes([0x92, 0x01, count]))) == "9000"
    for share in shares:
        assert card.sw(import_share(share)) == "9000"
    assert card.sw(verify_user(PIN)) == "9000"
    return card


def import_share(share: bytes) -> bytes:
    return bytes([0x80, 0x52, 0x00, 0x00, len(share)]) + share + b"\x00"


def wrap(key_id: int) -> bytes:
    return bytes([0x80, 0x72, key_id, 0x92, 0x00, 0x00, 0x00])


def unwrap(key_id: int, blob: bytes = b"") -> bytes:
    if not blob:
        return bytes([0x80, 0x74, key_id, 0x93])
    return ext4(0x80, 0x74, key_id, 0x93, blob)[:-2]  # case 3


def write_2f10(blob: bytes) -> bytes:
    data = tlv.encode(0x54, b"\x00\x00") + tlv.encode(0x53, blob)
    return bytes([0x00, 0xD7, 0x2F, 0x10, 0x00]) + len(data).to_bytes(2, "big") + data


def public_key(card: Card, key_id: int) -> ec.EllipticCurvePublicKey | rsa.RSAPublicKey:
    assert card.sw(read_binary(0xCE00 | key_id, le=None)) == "9000"
    key = cvc.request_public_key(card.data)
    assert isinstance(key, (ec.EllipticCurvePublicKey, rsa.RSAPublicKey))
    return key


def signs_for(card: Card, key_id: int, public: ec.EllipticCurvePublicKey | rsa.RSAPublicKey) -> None:
    if isinstance(public, ec.EllipticCurvePublicKey):
        signature, sw = card.send(sign(key_id, protocol.ALGO_ECDSA_SHA256, MESSAGE))
        assert sw == 0x9000
        public.verify(signature, MESSAGE, ec.ECDSA(hashes.SHA256()))
    else:
        signature, sw = card.send(sign(key_id, protocol.ALGO_RSA_PKCS1_SHA256, MESSAGE))
        assert sw == 0x9000
        public.verify(signature, MESSAGE, padding.PKCS1v15(), hashes.SHA256())


def test_shares_make_the_dkek_and_its_kcv() -> None:
    card = dkek_card((SHARE_A, SHARE_B))
    status, sw = card.send(DKEK_STATUS)
    dkek = bytes(a ^ b for a, b in zip(SHARE_A, SHARE_B))
    assert sw == 0x9000 and status == bytes([2, 0]) + backup.kcv(dkek)


@pytest.mark.parametrize("body", [ec_body("secp256r1"), ec_body("brainpoolP384r1"), rsa_body(2048)])
def test_a_wrapped_key_survives_reinitialization_and_moves_to_a_token_with_the_same_dkek(body: bytes) -> None:
    card = dkek_card()
    assert card.sw(gakp(1, body)) == "9000"
    public = public_key(card, 1)
    blob, sw = card.send(wrap(1))
    assert sw == 0x9000 and blob[:8] == backup.kcv(SHARE_A)
    # Re-initialize: the key and the DKEK are gone, the same share brings the DKEK back.
    assert card.sw(initialize(extra=b"\x92\x01\x01")) == "9000"
    assert card.sw(verify_user(PIN)) == "9000"
    assert card.sw(sign(1, protocol.ALGO_ECDSA_SHA256, MESSAGE)) == "6A88"
    assert card.sw(unwrap(1, blob)) == "6985"  # the share is not imported yet
    assert card.sw(import_share(SHARE_A)) == "9000"
    assert card.sw(unwrap(1, blob)) == "9000"
    signs_for(card, 1, public)
    # A second token holding the same DKEK takes it too, through EF 2F10 as OpenSC sends it.
    other = dkek_card()
    assert other.sw(write_2f10(blob)) == "9000"
    assert other.sw(unwrap(5)) == "9000"
    signs_for(other, 5, public)


def test_a_token_with_another_dkek_refuses_the_blob() -> None:
    card = dkek_card()
    assert card.sw(gakp(1, ec_body())) == "9000"
    blob, _ = card.send(wrap(1))
    other = dkek_card((SHARE_B,))
    before = other.status
    assert other.sw(unwrap(1, blob)) == "6A80"
    assert other.status == before
    tampered = blob[:-20] + bytes([blob[-20] ^ 1]) + blob[-19:]
    assert card.sw(unwrap(2, tampered)) == "6A80"  # the CMAC


def test_wrap_needs_a_complete_dkek_the_user_pin_and_a_key() -> None:
    plain = fresh_card()
    assert plain.sw(initialize()) == "9000" and plain.sw(verify_user(PIN)) == "9000"
    assert plain.sw(gakp(1, ec_body())) == "9000"
    assert plain.sw(wrap(1)) == "6D00"  # no DKEK at all: "not initialized for key wrap"
    pending = dkek_card((SHARE_A,), announce=2)
    assert pending.sw(wrap(1)) == "6985"  # a share is outstanding
    card = dkek_card()
    assert card.sw(wrap(1)) == "6A88"  # no key 1
    assert card.sw(wrap(0)) == "6A86"  # the device key never leaves
    assert card.sw("80720193000000") == "6A86"
    card.token.power_off()
    card.token.power_on()
    assert card.sw(bytes.fromhex("00A404000B") + protocol.AID + b"\x00") == "9000"
    assert card.sw(wrap(1)) == "6982"  # a new session: the PIN again


def test_reinitialization_wipes_the_dkek() -> None:
    card = dkek_card()
    assert card.sw(initialize(so=SO)) == "9000"  # no tag 92 this time
    assert card.sw(DKEK_STATUS) == "6A88"


def test_the_blob_round_trips_every_key_type() -> None:
    dkek = bytes(range(100, 132))
    for private in (ec.generate_private_key(ec.SECP521R1()), ec.generate_private_key(ec.SECP256K1()),
                    rsa.generate_private_key(65537, 1024),
                    weierstrass.generate(cvc.CURVES["brainpoolP320r1"]),  # a pure-Python curve
                    weierstrass.generate(cvc.CURVES["secp192k1"])):
        stored = keys.StoredKey.from_private_key(private)
        blob = backup.wrap(dkek, stored)
        assert (len(blob) - 8 - 1 - 12 - 6 - 16) % 16 == 0
        assert backup.unwrap(dkek, blob).pkcs8 == stored.pkcs8
        with pytest.raises(backup.WrongDkekError):
            backup.unwrap(bytes(32), blob)


def test_faults_break_r23() -> None:
    # Half a DKEK opens a blob made under that half.
    half = dkek_card()
    assert half.sw(gakp(1, ec_body())) == "9000"
    blob, _ = half.send(wrap(1))
    for faults, expected in ((frozenset(), "6985"), (frozenset({Fault.INCOMPLETE_DKEK_USED}), "9000")):
        pending = dkek_card((SHARE_A,), announce=2, faults=faults)
        assert pending.sw(unwrap(1, blob)) == expected
    # A blob from one token opens on a token with another DKEK.
    one = dkek_card(faults=frozenset({Fault.WRAP_UNDER_FIXED_KEY}))
    assert one.sw(gakp(1, ec_body())) == "9000"
    blob, _ = one.send(wrap(1))
    other = dkek_card((SHARE_B,), faults=frozenset({Fault.WRAP_UNDER_FIXED_KEY}))
    assert other.sw(unwrap(1, blob)) == "9000"
    # The DKEK outlives INITIALIZE.
    kept = dkek_card(faults=frozenset({Fault.DKEK_SURVIVES_INIT}))
    assert kept.sw(initialize()) == "9000"
    status, sw = kept.send(DKEK_STATUS)
    assert sw == 0x9000 and status[2:] == backup.kcv(SHARE_A)
