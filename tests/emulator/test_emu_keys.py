"""Keys (§4): GAKP for every supported key type, SIGN / DECIPHER checked with the public key of
the CV request, access rules (R09, R10, R11, R20), refusals that change nothing, DKEK, GET
CHALLENGE."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils
from emu_helpers import (
    PIN,
    PIN2,
    SO,
    WRONG_PIN,
    Card,
    change_user,
    fresh_card,
    initialize,
    initialized_card,
    select_applet,
    verify_so,
    verify_user,
)
import openssl_ec
from emu_objects import (
    DKEK_STATUS,
    decipher,
    ec_body,
    gakp,
    get_challenge,
    read_binary,
    rsa_body,
    sign,
    tlv,
)

from hsm_lifecycle import cvc, protocol
from hsm_lifecycle.emulator import VirtualToken, weierstrass

MESSAGE = b"the lifecycle is the single source of truth"


def logged_in(**kwargs: object) -> Card:
    card = initialized_card(**kwargs)  # type: ignore[arg-type]
    assert card.sw(verify_user(PIN)) == "9000"
    return card


def device_public_key(card: Card) -> ec.EllipticCurvePublicKey:
    card.sw(read_binary(protocol.FID_C_DEVAUT))
    chain = cvc.verify_c_devaut(card.data, cvc.load_test_root())
    return chain.device_public_key


@pytest.fixture(scope="module")
def rsa_card() -> Card:
    card = logged_in()
    assert card.sw(gakp(2, rsa_body(2048))) == "9000"
    return card


def rsa_public(card: Card, key_id: int = 2) -> rsa.RSAPublicKey:
    card.sw(read_binary(0xCE00 | key_id))
    key = cvc.request_public_key(card.data)
    assert isinstance(key, rsa.RSAPublicKey)
    return key


# --- GENERATE ASYMMETRIC KEY PAIR ----------------------------------------------------------------


@pytest.mark.parametrize("curve", ["secp256r1", "brainpoolP256r1", "secp384r1"])
def test_gakp_ec_answers_a_device_signed_request_and_keeps_it(curve: str) -> None:
    card = logged_in()
    body = ec_body(curve, chr_="UTEM000000100007")
    request, sw = card.send(gakp(7, body))
    assert sw == 0x9000
    parsed = cvc.parse_request(request)
    assert isinstance(parsed, cvc.AuthenticatedRequest)
    assert parsed.inner.chr == "UTEM000000100007" and parsed.inner.car == "UTCA00001"
    cvc.verify_self_signed(parsed)
    # The outer signature is the device key's (CC00): device attestation of the new key.
    assert parsed.outer_car == card.status.device_chr
    cvc.verify_cv(parsed.signed_part, parsed.outer_signature, device_public_key(card),
                  protocol.OID_TA_ECDSA_SHA256)
    public = cvc.request_public_key(request)
    assert isinstance(public, ec.EllipticCurvePublicKey) and public.curve.name == curve
    assert card.sw(read_binary(0xCE07)) == "6282" and card.data == request
    assert 0xCC07 in card.status.keys


@pytest.mark.parametrize("curve", ["brainpoolP320r1", "secp192k1", "brainpoolP512t1"])
def test_gakp_on_a_pure_python_curve_signs_derives_and_survives_reopening(curve: str, tmp_path: Path) -> None:
    """The curves `cryptography` lacks, end to end over APDUs; OpenSSL verifies."""
    path = tmp_path / "token.json"
    card = Card(VirtualToken.manufacture(state_path=path))
    card.token.power_on()
    for capdu in (select_applet(), initialize(), verify_user(PIN)):
        assert card.sw(capdu) == "9000"
    request, sw = card.send(gakp(3, ec_body(curve)))
    assert sw == 0x9000
    parsed = cvc.parse_request(request)
    assert isinstance(parsed, cvc.AuthenticatedRequest) and parsed.public_key.domain is cvc.CURVES[curve]
    point = parsed.public_key.point
    assert point is not None
    assert openssl_ec.verifies(curve, point, parsed.inner.body_raw, openssl_ec.plain_to_der(parsed.inner.signature),
                               "sha256")  # the self-signature of the request
    cvc.verify_cv(parsed.signed_part, parsed.outer_signature, device_public_key(card), protocol.OID_TA_ECDSA_SHA256)
    signature, sw = card.send(sign(3, protocol.ALGO_ECDSA_SHA256, MESSAGE))
    assert sw == 0x9000 and openssl_ec.verifies(curve, point, MESSAGE, signature, "sha256")
    assert not openssl_ec.verifies(curve, point, MESSAGE + b".", signature, "sha256")
    # Reopened from its state file, the token still holds and uses the key.
    reopened = Card(VirtualToken.open(path))
    reopened.token.power_on()
    assert reopened.sw(select_applet()) == "9000" and reopened.sw(verify_user(PIN)) == "9000"
    digest = hashlib.sha512(MESSAGE).digest()
    signature, sw = reopened.send(sign(3, protocol.ALGO_ECDSA_RAW, digest))
    assert sw == 0x9000 and openssl_ec.verifies(curve, point, MESSAGE, signature, "sha512")
    peer = ec_peer(curve)
    shared, sw = reopened.send(decipher(3, protocol.ALGO_ECDH, peer.public_point))
    assert sw == 0x9000 and shared == b"\x04" + openssl_ec.derive(peer.to_pkcs8(), curve, point)
    assert reopened.sw(decipher(3, protocol.ALGO_ECDH, b"\x04" + bytes(len(point) - 1))) == "6A80"


def ec_peer(curve: str) -> weierstrass.PrivateKey:
    return weierstrass.generate(cvc.CURVES[curve])


@pytest.mark.parametrize("bits", [2048, 3072])
def test_gakp_rsa(bits: int) -> None:
    card = logged_in()
    request, sw = card.send(gakp(3, rsa_body(bits)))
    assert sw == 0x9000
    public = cvc.request_public_key(request)
    assert isinstance(public, rsa.RSAPublicKey) and public.key_size == bits
    cvc.verify_self_signed(cvc.parse_request(request))


def test_gakp_without_chr_uses_the_serial() -> None:
    card = logged_in()
    request, sw = card.send(gakp(4, ec_body(chr_=None)))
    assert sw == 0x9000
    assert cvc.parse_request(request).inner.chr == f"{card.token.serial}00004"


def test_gakp_replaces_an_existing_key_id() -> None:
    card = logged_in()
    first, _ = card.send(gakp(1, ec_body()))
    second, sw = card.send(gakp(1, ec_body()))
    assert sw == 0x9000 and first != second
    assert card.status.keys.count(0xCC01) == 1
    card.sw(read_binary(0xCE01))
    assert card.data == second


@pytest.mark.parametrize(
    ("capdu", "expected"),
    [
        (gakp(1, b"\x7f\x49\x05\x06\x03\x00"), "6A80"),  # malformed TLV
        (gakp(1, ec_body()[:-3]), "6A80"),  # truncated
        (gakp(1, tlv(0x5F29, b"\x00")), "6A80"),  # no 7F49
        (gakp(1, ec_body("secp256r1").replace(b"\x5a\xc6\x35\xd8", b"\x5a\xc6\x35\xd9")), "6A81"),  # unknown curve
        (gakp(1, rsa_body(2040)), "6A81"),  # not one of the sizes OpenSC offers
        (gakp(0, ec_body()), "6A86"),  # the device key cannot be replaced
        (bytes.fromhex("00460101") + b"\x00" + len(ec_body()).to_bytes(2, "big") + ec_body() + b"\x00\x00", "6A86"),
        (bytes.fromhex("00460100000000"), "6700"),  # no body
    ],
)
def test_gakp_refusals_change_nothing(capdu: bytes, expected: str) -> None:
    card = logged_in()
    before = card.status
    assert card.sw(capdu) == expected
    assert card.status == before


# --- access rules ------------------------------------------------------------------------------------


def test_key_commands_uninitialized_are_6a88() -> None:
    card = fresh_card()
    for capdu in (gakp(1, ec_body()), sign(1, 0x73, MESSAGE), decipher(1, 0x21, bytes(256))):
        assert card.sw(capdu) == "6A88"
    assert card.status.keys == (protocol.FID_DEVICE_KEY,)


def test_key_use_needs_the_user_pin_not_the_so_pin() -> None:
    card = initialized_card()
    assert card.sw(gakp(1, ec_body())) == "6982"
    assert card.sw(verify_so(SO)) == "9000"
    assert card.sw(gakp(1, ec_body())) == "6982"  # R09
    assert card.sw(verify_user(PIN)) == "9000"
    assert card.sw(gakp(1, ec_body())) == "9000"
    assert card.sw(sign(1, 0x73, MESSAGE)) == "9000"


@pytest.mark.parametrize("end", ["select", "reset", "power", "wrong-pin"])
def test_session_end_stops_key_use(end: str) -> None:
    card = logged_in()
    assert card.sw(gakp(1, ec_body())) == "9000"
    if end == "select":
        card.sw(select_applet())
    elif end == "reset":
        card.token.reset()
        card.sw(select_applet())
    elif end == "power":
        card.token.power_off()
        card.token.power_on()
        card.sw(select_applet())
    else:
        card.sw(verify_user(WRONG_PIN))
    assert card.sw(sign(1, 0x73, MESSAGE)) == "6982"


def test_transport_pin_blocks_key_use_until_changed() -> None:
    card = fresh_card()
    assert card.sw(initialize(options=protocol.OPTION_TRANSPORT_PIN)) == "9000"
    assert card.sw(verify_user(PIN)) == "6984"
    assert card.sw(gakp(1, ec_body())) == "6982"
    assert card.sw(change_user(PIN, PIN2)) == "9000"
    assert card.sw(verify_user(PIN2)) == "9000"
    assert card.sw(gakp(1, ec_body())) == "9000"


def test_blocked_user_cannot_use_keys() -> None:
    card = logged_in()
    assert card.sw(gakp(1, ec_body())) == "9000"
    for _ in range(3):
        card.sw(verify_user(WRONG_PIN))
    assert card.sw(verify_user(PIN)) == "6983"
    assert card.sw(sign(1, 0x73, MESSAGE)) == "6982"


# --- SIGN / DECIPHER ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ec_card() -> Card:
    card = logged_in()
    assert card.sw(gakp(1, ec_body())) == "9000"
    return card


def ec_public(card: Card) -> ec.EllipticCurvePublicKey:
    card.sw(read_binary(0xCE01))
    key = cvc.request_public_key(card.data)
    assert isinstance(key, ec.EllipticCurvePublicKey)
    return key


@pytest.mark.parametrize(
    ("algo", "hash_cls"),
    [(0x71, hashes.SHA1), (0x72, hashes.SHA224), (0x73, hashes.SHA256), (0x74, hashes.SHA384),
     (0x75, hashes.SHA512)],
)
def test_ecdsa_with_hash_verifies(ec_card: Card, algo: int, hash_cls: type[hashes.HashAlgorithm]) -> None:
    signature, sw = ec_card.send(sign(1, algo, MESSAGE))
    assert sw == 0x9000
    ec_public(ec_card).verify(signature, MESSAGE, ec.ECDSA(hash_cls()))


@pytest.mark.parametrize("hash_cls", [hashes.SHA256, hashes.SHA384, hashes.SHA1])
def test_ecdsa_raw_hash_verifies(ec_card: Card, hash_cls: type[hashes.HashAlgorithm]) -> None:
    digest = hashes.Hash(hash_cls())
    digest.update(MESSAGE)
    value = digest.finalize()
    signature, sw = ec_card.send(sign(1, protocol.ALGO_ECDSA_RAW, value))
    assert sw == 0x9000
    ec_public(ec_card).verify(signature, value, ec.ECDSA(utils.Prehashed(hash_cls())))


def test_ecdsa_raw_takes_a_hash_cut_to_the_field_length_as_opensc_sends_it(ec_card: Card) -> None:
    # OpenSC hashes SHA-384/512 itself and sends the leftmost field-length bytes (pkcs15-sec.c);
    # for this P-256 key a SHA-512 hash becomes 32 bytes, and 31 bytes is a shorter hash.
    digest = hashes.Hash(hashes.SHA512())
    digest.update(MESSAGE)
    value = digest.finalize()
    signature, sw = ec_card.send(sign(1, protocol.ALGO_ECDSA_RAW, value[:32]))
    assert sw == 0x9000
    ec_public(ec_card).verify(signature, MESSAGE, ec.ECDSA(hashes.SHA512()))
    short = b"\x01" * 31
    signature, sw = ec_card.send(sign(1, protocol.ALGO_ECDSA_RAW, short))
    assert sw == 0x9000
    # A hash shorter than the order is taken as the number it is (SEC 1 §4.1.3 step 5).
    ec_public(ec_card).verify(signature, b"\x00" + short, ec.ECDSA(utils.Prehashed(hashes.SHA256())))


def test_ecdsa_signature_is_not_reusable_for_another_message(ec_card: Card) -> None:
    signature, _ = ec_card.send(sign(1, 0x73, MESSAGE))
    with pytest.raises(Exception):
        ec_public(ec_card).verify(signature, MESSAGE + b"!", ec.ECDSA(hashes.SHA256()))


def test_rsa_pkcs1_signatures_verify(rsa_card: Card) -> None:
    public = rsa_public(rsa_card)
    signature, sw = rsa_card.send(sign(2, protocol.ALGO_RSA_PKCS1_SHA256, MESSAGE))
    assert sw == 0x9000 and len(signature) == 256
    public.verify(signature, MESSAGE, padding.PKCS1v15(), hashes.SHA256())
    # 30: the caller sends the DigestInfo (what OpenSC does for CKM_RSA_PKCS).
    digest = hashlib.sha256(MESSAGE).digest()
    digest_info = bytes.fromhex("3031300d060960864801650304020105000420") + digest
    signature, sw = rsa_card.send(sign(2, protocol.ALGO_RSA_PKCS1_DIGESTINFO, digest_info))
    assert sw == 0x9000
    public.verify(signature, digest, padding.PKCS1v15(), utils.Prehashed(hashes.SHA256()))


def test_rsa_pss_signatures_verify(rsa_card: Card) -> None:
    public = rsa_public(rsa_card)
    pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
    signature, sw = rsa_card.send(sign(2, protocol.ALGO_RSA_PSS_SHA256, MESSAGE))
    assert sw == 0x9000
    public.verify(signature, MESSAGE, pss, hashes.SHA256())
    digest = hashlib.sha256(MESSAGE).digest()
    signature, sw = rsa_card.send(sign(2, protocol.ALGO_RSA_PSS, digest))
    assert sw == 0x9000
    public.verify(signature, digest, pss, utils.Prehashed(hashes.SHA256()))


def test_rsa_decipher(rsa_card: Card) -> None:
    public = rsa_public(rsa_card)
    cryptogram = public.encrypt(b"session key 1234", padding.PKCS1v15())
    plain, sw = rsa_card.send(decipher(2, protocol.ALGO_RSA_DECRYPT_PKCS1, cryptogram))
    assert (plain, sw) == (b"session key 1234", 0x9000)
    # 21 answers the whole block, padding included: OpenSC strips it on the host.
    block, sw = rsa_card.send(decipher(2, protocol.ALGO_RSA_DECRYPT_RAW, cryptogram))
    assert sw == 0x9000 and len(block) == 256 and block[:2] == b"\x00\x02"
    assert block.endswith(b"\x00session key 1234")
    oaep = padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)
    plain, sw = rsa_card.send(decipher(2, protocol.ALGO_RSA_DECRYPT_OAEP, public.encrypt(b"k" * 16, oaep)))
    assert (plain, sw) == (b"k" * 16, 0x9000)


@pytest.mark.parametrize(
    ("key_id", "algo", "data", "expected"),
    [
        (1, 0x99, MESSAGE, "6A81"),  # unknown algorithm byte
        (1, protocol.ALGO_RSA_PKCS1_SHA256, MESSAGE, "6A81"),  # RSA algorithm, EC key
        (1, protocol.ALGO_ECDH, MESSAGE, "6A81"),  # ECDH is DECIPHER, not SIGN
        (1, protocol.ALGO_ECDSA_RAW, b"\x01" * 65, "6A80"),  # longer than any hash
        (9, 0x73, MESSAGE, "6A88"),  # no such key
    ],
)
def test_sign_refusals(ec_card: Card, key_id: int, algo: int, data: bytes, expected: str) -> None:
    before = ec_card.status
    assert ec_card.sw(sign(key_id, algo, data)) == expected
    assert ec_card.status == before


def test_sign_without_data_is_6700(ec_card: Card) -> None:
    assert ec_card.sw("80680173") == "6700"


def test_decipher_refusals(rsa_card: Card, ec_card: Card) -> None:
    assert rsa_card.sw(decipher(2, 0x21, b"\x01" * 10)) == "6A80"  # not k bytes
    assert rsa_card.sw(decipher(2, 0x22, b"\x01" * 10)) == "6A80"
    assert rsa_card.sw(decipher(2, 0x99, bytes(256))) == "6A81"
    assert rsa_card.sw(decipher(2, 0x20, bytes(256))) == "6A81"  # SIGN's raw RSA
    assert ec_card.sw(decipher(1, 0x21, bytes(32))) == "6A81"  # EC key
    assert ec_card.sw(decipher(1, protocol.ALGO_ECDH, b"\x04" + bytes(64))) == "6A80"  # off the curve
    assert rsa_card.sw(decipher(8, 0x21, bytes(256))) == "6A88"


def test_device_key_signs_for_device_authentication(ec_card: Card) -> None:
    challenge = b"portal challenge"
    signature, sw = ec_card.send(sign(0, 0x73, challenge))
    assert sw == 0x9000
    device_public_key(ec_card).verify(signature, challenge, ec.ECDSA(hashes.SHA256()))


# --- GET CHALLENGE, DKEK ------------------------------------------------------------------------------


def test_get_challenge() -> None:
    card = fresh_card()
    assert card.sw(get_challenge(None)) == "6700"
    assert card.sw(get_challenge(8)) == "9000" and len(card.data) == 8
    first = card.data
    card.sw(get_challenge(8))
    assert card.data != first
    assert card.sw(get_challenge(0)) == "9000" and len(card.data) == 256
    assert card.sw("00840000000400") == "9000" and len(card.data) == 1024
    assert card.sw("00840000000401") == "6700"
    assert card.sw("0084010008") == "6A86"


def test_dkek_status_without_dkek_is_6a88() -> None:
    assert fresh_card().sw(DKEK_STATUS) == "6A88"
    assert initialized_card().sw(DKEK_STATUS) == "6A88"  # sc-hsm-tool default: no tag 92


def test_dkek_shares_status_and_import() -> None:
    card = fresh_card()
    assert card.sw(initialize(extra=tlv(0x92, b"\x02"))) == "9000"
    assert card.sw(DKEK_STATUS) == "9000" and card.data == bytes([2, 2]) + bytes(8)
    assert card.sw(verify_user(PIN)) == "9000"
    assert card.sw(gakp(1, ec_body())) == "6985"  # waits for every share
    share_a, share_b = bytes(range(32)), bytes(range(100, 132))
    assert card.sw(b"\x80\x52\x00\x00\x20" + share_a) == "9000" and card.data[:2] == b"\x02\x01"
    assert card.sw(b"\x80\x52\x00\x00\x20" + share_b) == "9000"
    expected_kcv = hashlib.sha256(bytes(a ^ b for a, b in zip(share_a, share_b))).digest()[:8]
    assert card.data == b"\x02\x00" + expected_kcv
    assert card.sw(b"\x80\x52\x00\x00\x20" + share_b) == "6985"
    assert card.sw(b"\x80\x52\x00\x00\x10" + share_b[:16]) == "6700"
    assert card.sw(gakp(1, ec_body())) == "9000"


def test_dkek_random_when_zero_shares() -> None:
    card = fresh_card()
    assert card.sw(initialize(extra=tlv(0x92, b"\x00"))) == "9000"
    assert card.sw(DKEK_STATUS) == "9000"
    assert card.data[:2] == b"\x00\x00" and card.data[2:] != bytes(8)
