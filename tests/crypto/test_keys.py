"""Applet keys: GAKP data → key + CV request; SIGN/DECIPHER verified through cvc.py's reading."""

from __future__ import annotations

import datetime as dt
import hashlib
import json

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils
from hypothesis import given, settings
from hypothesis import strategies as st

import openssl_ec

from hsm_lifecycle.emulator import identity, keys, weierstrass
from hsm_lifecycle import cvc, tlv
from hsm_lifecycle import protocol as p


def ec_body(
    curve: str,
    *,
    chr_: str | None = "UTEM123456700001",
    car: str | None = "UTCA00001",
    outer_car: str | None = None,
    drop: int | None = None,
    extra: bytes = b"",
    b_xor: int = 0,
) -> bytes:
    """GAKP data as OpenSC builds it for an EC key (`b_xor` makes it a curve nobody knows)."""
    d = cvc.CURVES[curve]
    size = d.field_bytes
    params = [
        (0x81, d.p.to_bytes(size, "big")),
        (0x82, d.a.to_bytes(size, "big")),
        (0x83, (d.b ^ b_xor).to_bytes(size, "big")),
        (0x84, d.generator),
        (0x85, d.n.to_bytes(d.order_bytes, "big")),
        (0x87, b"\x01"),
    ]
    key = tlv.encode_constructed(
        0x7F49,
        [tlv.encode(6, cvc.encode_oid(cvc.OID_TA_ECDSA_SHA256))]
        + [tlv.encode(t, v) for t, v in params if t != drop]
        + [extra],
    )
    out = tlv.encode(0x5F29, b"\x00")
    out += tlv.encode(0x42, car.encode()) if car else b""
    out += key + (tlv.encode(0x5F20, chr_.encode()) if chr_ else b"")
    return out + (tlv.encode(0x45, outer_car.encode()) if outer_car else b"")


def rsa_body(
    bits: int, exponent: bytes = b"\x01\x00\x01", oid: str = cvc.OID_TA_RSA_V1_5_SHA256
) -> bytes:
    key = tlv.encode_constructed(
        0x7F49,
        [
            tlv.encode(6, cvc.encode_oid(oid)),
            tlv.encode(0x82, exponent),
            tlv.encode(0x02, bits.to_bytes(2, "big")),
        ],
    )
    return (
        tlv.encode(0x5F29, b"\x00")
        + tlv.encode(0x42, b"UTCA00001")
        + key
        + tlv.encode(0x5F20, b"UTEM123456700002")
    )


@pytest.fixture(scope="module")
def device() -> identity.DeviceIdentity:
    return identity.manufacture_identity(1234567, today=dt.date(2026, 3, 1))


@pytest.fixture(scope="module")
def device_signer(device: identity.DeviceIdentity) -> keys.OuterSigner:
    return keys.OuterSigner(device.device_key, device.chr)


@pytest.fixture(scope="module")
def rsa_generated(device_signer: keys.OuterSigner) -> keys.GeneratedKey:
    return keys.generate_from_cv_body(rsa_body(2048), "X", device_signer)


@pytest.fixture(scope="module")
def ec_generated(device_signer: keys.OuterSigner) -> keys.GeneratedKey:
    return keys.generate_from_cv_body(ec_body("secp256r1"), "X", device_signer)


# --- GAKP --------------------------------------------------------------------------------------


@pytest.mark.parametrize("curve", keys.SUPPORTED_CURVES)
def test_ec_gakp_answers_an_authenticated_request(
    curve: str, device: identity.DeviceIdentity, device_signer: keys.OuterSigner
) -> None:
    generated = keys.generate_from_cv_body(ec_body(curve), "X", device_signer)
    assert generated.key.curve == curve and generated.chr == "UTEM123456700001"
    request = cvc.parse_request(generated.request)
    assert isinstance(request, cvc.AuthenticatedRequest) and generated.request[0] == 0x67
    assert request.outer_car == device.chr
    assert request.inner.car == "UTCA00001" and request.inner.chr == "UTEM123456700001"
    assert request.public_key.domain is cvc.CURVES[curve]  # full parameters, OpenSC reads them
    if cvc.CURVES[curve].native:
        cvc.verify_self_signed(request)
    else:  # a pure-Python curve: OpenSSL judges the self-signature
        inner = request.inner
        der = openssl_ec.plain_to_der(inner.signature)
        assert request.public_key.point is not None
        assert openssl_ec.verifies(curve, request.public_key.point, inner.body_raw, der, "sha256")
    chain = cvc.verify_c_devaut(device.c_devaut, cvc.load_test_root())
    cvc.verify_cv(
        request.signed_part,
        request.outer_signature,
        chain.device_public_key,
        cvc.OID_TA_ECDSA_SHA256,
    )


def test_body_outer_car_overrides_and_plain_request_without_signer(
    device_signer: keys.OuterSigner,
) -> None:
    overridden = cvc.parse_request(
        keys.generate_from_cv_body(
            ec_body("brainpoolP256r1", outer_car="UTOTHER00001"), "X", device_signer
        ).request
    )
    assert (
        isinstance(overridden, cvc.AuthenticatedRequest) and overridden.outer_car == "UTOTHER00001"
    )
    plain = keys.generate_from_cv_body(
        ec_body("brainpoolP256r1", chr_=None, car=None), "UTEM000000100001"
    )
    request = cvc.parse_request(plain.request)
    assert isinstance(request, cvc.CVCertificate) and plain.request[:2] == b"\x7f\x21"
    assert request.chr == plain.chr == "UTEM000000100001" and request.car is None
    cvc.verify_self_signed(request)


def test_rsa_gakp(rsa_generated: keys.GeneratedKey) -> None:
    assert (rsa_generated.key.kind, rsa_generated.key.bits) == ("rsa", 2048)
    public = cvc.request_public_key(rsa_generated.request)
    assert isinstance(public, rsa.RSAPublicKey) and public.public_numbers().e == 65537
    cvc.verify_self_signed(cvc.parse_request(rsa_generated.request))


def test_rsa_3072_and_pss_oid() -> None:
    generated = keys.generate_from_cv_body(rsa_body(3072, oid=cvc.OID_TA_RSA_PSS_SHA256), "X")
    assert generated.key.bits == 3072
    cvc.verify_self_signed(cvc.parse_request(generated.request))


@pytest.mark.parametrize(
    ("body", "error", "sw"),
    [
        (b"", keys.MalformedKeyDataError, 0x6A80),
        (b"\x5f\x29", keys.MalformedKeyDataError, 0x6A80),
        (tlv.encode(0x5F29, b"\x00"), keys.MalformedKeyDataError, 0x6A80),  # no 7F49
        (ec_body("secp256r1", drop=0x83), keys.MalformedKeyDataError, 0x6A80),
        (ec_body("secp256r1", extra=tlv.encode(0x86, b"\x04")), keys.MalformedKeyDataError, 0x6A80),
        (
            ec_body("secp256r1") + tlv.encode(0x42, b"X"),
            keys.MalformedKeyDataError,
            0x6A80,
        ),  # duplicate
        (ec_body("secp256r1") + tlv.encode(0x99, b""), keys.MalformedKeyDataError, 0x6A80),
        (ec_body("secp256r1", chr_="DÉ"), keys.MalformedKeyDataError, 0x6A80),
        (rsa_body(2048, exponent=b""), keys.MalformedKeyDataError, 0x6A80),
        (ec_body("secp256r1", b_xor=1), keys.UnsupportedKeyError, 0x6A81),  # unknown curve
        (rsa_body(512), keys.UnsupportedKeyError, 0x6A81),
        (rsa_body(2040), keys.UnsupportedKeyError, 0x6A81),  # not one of OpenSC's sizes
        (rsa_body(8192), keys.UnsupportedKeyError, 0x6A81),
        (rsa_body(2048, exponent=b"\x03"), keys.UnsupportedKeyError, 0x6A81),
        (rsa_body(2048, oid="1.2.3.4"), keys.UnsupportedKeyError, 0x6A81),
    ],
)
def test_refused_gakp_data(body: bytes, error: type[keys.KeyOperationError], sw: int) -> None:
    with pytest.raises(error) as caught:
        keys.generate_from_cv_body(body, "UTEM000000100001")
    assert caught.value.sw == sw


def test_pico_extras_are_ignored() -> None:
    body = ec_body("secp256r1") + tlv.encode(0x90, b"\x00\x10") + tlv.encode(0x92, b"\x01")
    assert keys.generate_from_cv_body(body, "X").key.curve == "secp256r1"


@given(st.binary(max_size=400))
@settings(deadline=None)
def test_hostile_gakp_raises_only_key_operation_error(body: bytes) -> None:
    try:
        keys.parse_key_template(body)
    except keys.KeyOperationError as exc:
        assert exc.sw in (0x6A80, 0x6A81)


@given(st.data())
@settings(max_examples=150, deadline=None)
def test_mutated_gakp_raises_only_key_operation_error(data: st.DataObject) -> None:
    body = bytearray(ec_body(data.draw(st.sampled_from(keys.SUPPORTED_CURVES))))
    for _ in range(data.draw(st.integers(1, 3))):
        body[data.draw(st.integers(0, len(body) - 1))] = data.draw(st.integers(0, 255))
    try:
        template = keys.parse_key_template(bytes(body))
    except keys.KeyOperationError:
        return
    assert template.curve is not None and template.curve.name in keys.SUPPORTED_CURVES


# --- SIGN ------------------------------------------------------------------------------------

MESSAGE = b"lifecycle conformance"
HASHES = {
    0x71: hashes.SHA1,
    0x72: hashes.SHA224,
    0x73: hashes.SHA256,
    0x74: hashes.SHA384,
    0x75: hashes.SHA512,
}


@pytest.mark.parametrize("algo", sorted(HASHES))
def test_ecdsa_sign_verifies_with_the_key_from_the_request(
    algo: int, ec_generated: keys.GeneratedKey
) -> None:
    public = cvc.request_public_key(ec_generated.request)
    assert isinstance(public, ec.EllipticCurvePublicKey)
    public.verify(keys.sign(ec_generated.key, algo, MESSAGE), MESSAGE, ec.ECDSA(HASHES[algo]()))
    digest = hashes.Hash(HASHES[algo]())
    digest.update(MESSAGE)
    raw_hash = digest.finalize()
    signature = keys.sign(ec_generated.key, p.ALGO_ECDSA_RAW, raw_hash)  # 70: hash given
    public.verify(signature, raw_hash, ec.ECDSA(utils.Prehashed(HASHES[algo]())))


def test_rsa_signatures_verify_with_the_key_from_the_request(
    rsa_generated: keys.GeneratedKey,
) -> None:
    public = cvc.request_public_key(rsa_generated.request)
    assert isinstance(public, rsa.RSAPublicKey)
    key = rsa_generated.key
    sha256 = hashlib.sha256(MESSAGE).digest()
    for algo, h in {
        0x31: hashes.SHA1,
        0x33: hashes.SHA256,
        0x34: hashes.SHA384,
        0x35: hashes.SHA512,
    }.items():
        public.verify(keys.sign(key, algo, MESSAGE), MESSAGE, padding.PKCS1v15(), h())
    for algo, h in {
        0x41: hashes.SHA1,
        0x43: hashes.SHA256,
        0x44: hashes.SHA384,
        0x45: hashes.SHA512,
    }.items():
        pss = padding.PSS(padding.MGF1(h()), h.digest_size)
        public.verify(keys.sign(key, algo, MESSAGE), MESSAGE, pss, h())
    pss = padding.PSS(padding.MGF1(hashes.SHA256()), 32)
    public.verify(
        keys.sign(key, p.ALGO_RSA_PSS, sha256), sha256, pss, utils.Prehashed(hashes.SHA256())
    )
    digest_info = bytes.fromhex("3031300d060960864801650304020105000420") + sha256
    public.verify(
        keys.sign(key, p.ALGO_RSA_PKCS1_DIGESTINFO, digest_info),
        MESSAGE,
        padding.PKCS1v15(),
        hashes.SHA256(),
    )
    # 20: raw private operation on a PKCS#1 block the caller padded itself.
    block = b"\x00\x01" + b"\xff" * (256 - 3 - len(digest_info)) + b"\x00" + digest_info
    public.verify(
        keys.sign(key, p.ALGO_RSA_RAW, block), MESSAGE, padding.PKCS1v15(), hashes.SHA256()
    )


def test_decipher(rsa_generated: keys.GeneratedKey) -> None:
    public = cvc.request_public_key(rsa_generated.request)
    assert isinstance(public, rsa.RSAPublicKey)
    secret = b"a 32-byte session key, say......"
    assert (
        keys.decipher(
            rsa_generated.key, p.ALGO_RSA_DECRYPT_PKCS1, public.encrypt(secret, padding.PKCS1v15())
        )
        == secret
    )
    n = public.public_numbers().n
    m = int.from_bytes(secret, "big")
    cryptogram = pow(m, 65537, n).to_bytes(256, "big")
    assert keys.decipher(rsa_generated.key, p.ALGO_RSA_DECRYPT_RAW, cryptogram) == m.to_bytes(256, "big")
    oaep = padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)
    assert keys.decipher(rsa_generated.key, p.ALGO_RSA_DECRYPT_OAEP, public.encrypt(secret, oaep)) == secret
    # No PKCS#1 padding: OpenSSL >= 3.2 answers a pseudo-random message (implicit rejection,
    # against Bleichenbacher/Marvin) where older versions fail; neither may leak the block.
    try:
        leaked = keys.decipher(rsa_generated.key, p.ALGO_RSA_DECRYPT_PKCS1, cryptogram)
    except keys.WrongInputError:
        return
    assert secret not in leaked


@pytest.mark.parametrize(
    ("which", "algo", "data", "error", "sw"),
    [
        ("ec", 0x33, MESSAGE, keys.AlgorithmNotSupportedError, 0x6A81),  # RSA algo on EC key
        ("ec", 0x99, MESSAGE, keys.AlgorithmNotSupportedError, 0x6A81),
        ("ec", 0x80, MESSAGE, keys.AlgorithmNotSupportedError, 0x6A81),  # ECDH is not SIGN
        ("ec", 0x70, bytes(65), keys.WrongInputError, 0x6A80),  # longer than SHA-512
        ("rsa", 0x73, MESSAGE, keys.AlgorithmNotSupportedError, 0x6A81),
        ("rsa", 0x21, MESSAGE, keys.AlgorithmNotSupportedError, 0x6A81),  # decipher algo to SIGN
        ("rsa", 0x22, MESSAGE, keys.AlgorithmNotSupportedError, 0x6A81),
        ("rsa", 0x20, bytes(255), keys.WrongInputError, 0x6A80),
        ("rsa", 0x20, b"\xff" * 256, keys.WrongInputError, 0x6A80),  # not below the modulus
        ("rsa", 0x30, bytes(246), keys.WrongInputError, 0x6A80),  # > k - 11
        ("rsa", 0x40, bytes(33), keys.WrongInputError, 0x6A80),
    ],
)
def test_sign_refusals(
    which: str,
    algo: int,
    data: bytes,
    error: type,
    sw: int,
    ec_generated: keys.GeneratedKey,
    rsa_generated: keys.GeneratedKey,
) -> None:
    key = ec_generated.key if which == "ec" else rsa_generated.key
    with pytest.raises(error) as caught:
        keys.sign(key, algo, data)
    assert caught.value.sw == sw


def test_ecdh_agrees_with_the_peer(ec_generated: keys.GeneratedKey) -> None:
    own = cvc.request_public_key(ec_generated.request)
    assert isinstance(own, ec.EllipticCurvePublicKey)
    peer = ec.generate_private_key(own.curve)
    point = peer.public_key().public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    answer = keys.decipher(ec_generated.key, p.ALGO_ECDH, point)
    assert answer == b"\x04" + peer.exchange(ec.ECDH(), own)


def test_decipher_refusals(
    ec_generated: keys.GeneratedKey, rsa_generated: keys.GeneratedKey
) -> None:
    with pytest.raises(keys.AlgorithmNotSupportedError):
        keys.decipher(ec_generated.key, p.ALGO_RSA_DECRYPT_PKCS1, bytes(32))
    with pytest.raises(keys.AlgorithmNotSupportedError):  # 20 is SIGN's raw RSA, not DECIPHER's
        keys.decipher(rsa_generated.key, p.ALGO_RSA_RAW, bytes(256))
    with pytest.raises(keys.AlgorithmNotSupportedError):
        keys.decipher(rsa_generated.key, p.ALGO_ECDH, bytes(256))
    with pytest.raises(keys.WrongInputError):  # compressed point
        keys.decipher(ec_generated.key, p.ALGO_ECDH, b"\x02" + bytes(32))
    with pytest.raises(keys.WrongInputError):  # not on the curve
        keys.decipher(ec_generated.key, p.ALGO_ECDH, b"\x04" + bytes(64))
    with pytest.raises(keys.AlgorithmNotSupportedError):
        keys.decipher(rsa_generated.key, p.ALGO_RSA_PKCS1_SHA256, bytes(256))
    with pytest.raises(keys.WrongInputError):
        keys.decipher(rsa_generated.key, p.ALGO_RSA_DECRYPT_PKCS1, bytes(255))


# --- storage ---------------------------------------------------------------------------------


def test_stored_key_round_trips(
    ec_generated: keys.GeneratedKey, rsa_generated: keys.GeneratedKey
) -> None:
    for generated in (ec_generated, rsa_generated):
        stored = generated.key
        again = keys.StoredKey.from_dict(json.loads(json.dumps(stored.to_dict())))
        assert again == stored == keys.StoredKey.from_bytes(stored.to_bytes())
        public = cvc.request_public_key(generated.request)
        assert again.private_key.public_key().public_numbers() == public.public_numbers()


def test_corrupt_stored_key(ec_generated: keys.GeneratedKey) -> None:
    good = ec_generated.key.to_dict()
    for broken in (
        {**good, "bits": 384},
        {**good, "pkcs8": "00"},
        {**good, "pkcs8": None},
        {k: v for k, v in good.items() if k != "kind"},
    ):
        with pytest.raises(keys.KeyStateError):
            keys.StoredKey.from_dict(broken)
    with pytest.raises(keys.KeyStateError):
        keys.StoredKey.from_bytes(b"\x30\x00")
    k1 = ec.generate_private_key(ec.SECP224R1())  # not a SmartCard-HSM curve
    with pytest.raises(keys.KeyStateError, match="unsupported curve"):
        keys.StoredKey.from_bytes(keys.StoredKey.from_private_key(k1).pkcs8)


def test_eeprom_estimates(rsa_key: rsa.RSAPrivateKey) -> None:
    def generated(c: str) -> keys.PrivateKey:
        d = cvc.CURVES[c]
        return ec.generate_private_key(d.curve()) if d.native else weierstrass.generate(d)

    sizes = {
        c: keys.StoredKey.from_private_key(generated(c)).eeprom_bytes()
        for c in keys.SUPPORTED_CURVES
    }
    assert sizes == {
        "secp192r1": 89, "secp256r1": 113, "brainpoolP256r1": 113, "secp256k1": 113,
        "secp384r1": 161, "brainpoolP384r1": 161, "brainpoolP512r1": 209, "secp521r1": 215,
        "brainpoolP192r1": 89, "brainpoolP192t1": 89, "secp192k1": 89, "brainpoolP224r1": 101,
        "brainpoolP224t1": 101, "brainpoolP256t1": 113, "brainpoolP320r1": 137,
        "brainpoolP320t1": 137, "brainpoolP384t1": 161, "brainpoolP512t1": 209,
    }  # fmt: skip
    assert keys.StoredKey.from_private_key(rsa_key).eeprom_bytes() == 916
    assert p.EEPROM_BYTES // sizes["secp256r1"] > 600  # hundreds of EC keys fit the 76 KB budget


# --- the pure-Python curves, judged by OpenSSL -------------------------------------------------

PURE_CURVES = [c for c in keys.SUPPORTED_CURVES if not cvc.CURVES[c].native]
_DIGESTS = {p.ALGO_ECDSA_SHA1: "sha1", p.ALGO_ECDSA_SHA224: "sha224", p.ALGO_ECDSA_SHA256: "sha256",
            p.ALGO_ECDSA_SHA384: "sha384", p.ALGO_ECDSA_SHA512: "sha512"}  # fmt: skip


@pytest.mark.parametrize("curve", PURE_CURVES)
def test_pure_curve_key_signs_deciphers_and_persists(
    curve: str, device_signer: keys.OuterSigner
) -> None:
    generated = keys.generate_from_cv_body(ec_body(curve), "X", device_signer)
    point = cvc.parse_request(generated.request).public_key.point
    assert point is not None and generated.key.kind == "ec" and generated.key.curve == curve
    message = b"pkcs11-tool --sign"
    for algo, digest in _DIGESTS.items():
        signature = keys.sign(generated.key, algo, message)  # SIGN answers DER
        assert openssl_ec.verifies(curve, point, message, signature, digest), hex(algo)
    prehashed = hashlib.sha256(message).digest()  # 70: OpenSC hashes, the card signs the hash
    signature = keys.sign(generated.key, p.ALGO_ECDSA_RAW, prehashed)
    assert openssl_ec.verifies_prehashed(curve, point, prehashed, signature)
    assert not openssl_ec.verifies_prehashed(curve, point, hashlib.sha256(b"x").digest(), signature)
    # OpenSC cuts SHA-384/512 to the field length before 70 (pkcs15-sec.c): still SHA-384 ECDSA.
    field = cvc.CURVES[curve].field_bytes
    cut = hashlib.sha384(message).digest()[:field]
    signature = keys.sign(generated.key, p.ALGO_ECDSA_RAW, cut)
    assert openssl_ec.verifies(curve, point, message, signature, "sha384")
    with pytest.raises(keys.WrongInputError):
        keys.sign(generated.key, p.ALGO_ECDSA_RAW, bytes(65))
    with pytest.raises(keys.AlgorithmNotSupportedError):
        keys.sign(generated.key, p.ALGO_RSA_PKCS1_SHA256, message)

    peer = weierstrass.generate(cvc.CURVES[curve])
    answer = keys.decipher(generated.key, p.ALGO_ECDH, peer.public_point)
    assert answer == b"\x04" + openssl_ec.derive(peer.to_pkcs8(), curve, point)
    with pytest.raises(keys.WrongInputError):
        keys.decipher(generated.key, p.ALGO_ECDH, b"\x04" + bytes(len(point) - 1))

    stored = generated.key
    again = keys.StoredKey.from_dict(json.loads(json.dumps(stored.to_dict())))
    assert again == stored == keys.StoredKey.from_bytes(stored.to_bytes())
    assert openssl_ec.public_point_of(stored.pkcs8) == point  # the state file is real PKCS#8
