"""CVC codec: curves, OIDs, dates, round trips, real-world vectors, hostile input."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from hypothesis import given, settings
from hypothesis import strategies as st

from hsm_lifecycle import cvc, tlv

VECTORS = Path(__file__).parent / "vectors"
# Real Nitrokey HSM 2 DENK0404144 (fw 4.1): device CVC || DICA CVC, 464 bytes (digest §5).
NITROKEY_2F02 = (VECTORS / "nitrokey-DENK0404144-2f02.bin").read_bytes()
# pico-hsm board ESP2202E14A: a 67 authenticated request, then a self-signed 7F21.
PICO_2F02 = (VECTORS / "pico-ESP2202E14A-2f02.bin").read_bytes()
CARDCONTACT_ROOT_SHA256 = "453a391015c5fbb60116c838ed613591828bf62ac8a1aca276ce4e60525ec3e3"
NITROKEY_2F02_SHA256 = "1b7763b72b871f37a4cc43808b72d65a915a488420fa18c0137f8389260d9aa4"


# --- curves ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(n for n, d in cvc.CURVES.items() if d.native))
def test_domain_parameters_agree_with_cryptography(name: str) -> None:
    d = cvc.CURVES[name]
    assert d.curve().name == name
    g = d.generator
    gx, gy = int.from_bytes(g[1 : 1 + d.field_bytes], "big"), int.from_bytes(
        g[1 + d.field_bytes :], "big"
    )
    assert (gy * gy - (gx**3 + d.a * gx + d.b)) % d.p == 0  # G is on y² = x³ + ax + b over p
    # n is G's order: (n-1)·G = -G.
    minus_g = ec.derive_private_key(d.n - 1, d.curve()).public_key().public_numbers()
    assert (minus_g.x, minus_g.y) == (gx, d.p - gy)
    with pytest.raises(ValueError):
        ec.derive_private_key(d.n, d.curve())
    q = ec.generate_private_key(d.curve()).public_key().public_numbers()
    assert (q.y * q.y - (q.x**3 + d.a * q.x + d.b)) % d.p == 0


def test_match_domain_recognises_exactly_the_known_curves() -> None:
    d = cvc.CURVES["brainpoolP256r1"]
    assert cvc.match_domain(d.p, d.a, d.b, d.generator, d.n, 1) is d
    assert cvc.match_domain(d.p, d.a, d.b, d.generator, d.n, None) is d
    with pytest.raises(cvc.UnsupportedAlgorithmError):
        cvc.match_domain(d.p, d.a, d.b ^ 1, d.generator, d.n, 1)
    with pytest.raises(cvc.UnsupportedAlgorithmError):
        cvc.match_domain(d.p, d.a, d.b, d.generator, d.n, 4)


# --- OIDs, dates, references -------------------------------------------------------------------


def test_oid_known_encodings() -> None:
    assert cvc.encode_oid(cvc.OID_TA_ECDSA_SHA256).hex().upper() == "04007F00070202020203"
    assert cvc.encode_oid(cvc.OID_CHAT_SMARTCARD_HSM).hex().upper() == "2B0601040181C31F030101"
    assert cvc.decode_oid(bytes.fromhex("2B0601040181C31F030101")) == "1.3.6.1.4.1.24991.3.1.1"


@given(
    st.integers(0, 2).flatmap(
        lambda first: st.tuples(
            st.just(first),
            st.integers(0, 39 if first < 2 else 10**6),
            st.lists(st.integers(0, 2**64), max_size=8),
        )
    )
)
def test_oid_round_trip(arcs: tuple[int, int, list[int]]) -> None:
    dotted = ".".join(str(a) for a in [arcs[0], arcs[1], *arcs[2]])
    assert cvc.decode_oid(cvc.encode_oid(dotted)) == dotted


@given(st.binary(max_size=20))
def test_oid_decoder_hostile(raw: bytes) -> None:
    try:
        cvc.decode_oid(raw)
    except cvc.CvcError:
        pass


@given(st.dates(dt.date(2000, 1, 1), dt.date(2099, 12, 31)))
def test_date_round_trip(day: dt.date) -> None:
    raw = cvc.encode_date(day)
    assert len(raw) == 6 and max(raw) <= 9
    assert cvc.decode_date(raw, "d") == day


@pytest.mark.parametrize(
    "hexdate", ["020600050208FF", "0206000502", "02060005020A", "020613050208", "020602030300"]
)
def test_bad_dates_refused(hexdate: str) -> None:
    with pytest.raises(cvc.CvcError):
        cvc.decode_date(bytes.fromhex(hexdate), "date")


@pytest.mark.parametrize("ref", [b"", b"A" * 17, b"DE\x00X", "DÉ".encode()])
def test_bad_references_refused(ref: bytes) -> None:
    with pytest.raises(cvc.CvcError):
        cvc.decode_reference(ref, "CHR")


def test_serial_derivation() -> None:
    assert cvc.serial_from_chr("DENK040414400000") == "DENK0404144"
    assert cvc.serial_from_chr("UTEM123456700001") == "UTEM1234567"
    assert cvc.serial_from_chr("ABC00001") == "ABC"
    with pytest.raises(cvc.CvcError, match="shorter than 8"):
        cvc.serial_from_chr("AB00001")


# --- signatures --------------------------------------------------------------------------------


@given(st.integers(1, 2**256 - 1), st.integers(1, 2**256 - 1))
def test_plain_der_signature_round_trip(r: int, s: int) -> None:
    plain = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    assert cvc.ecdsa_der_to_plain(cvc.ecdsa_plain_to_der(plain, 32), 32) == plain


def test_plain_signature_of_wrong_length_is_invalid() -> None:
    with pytest.raises(cvc.SignatureInvalidError, match="63 bytes"):
        cvc.ecdsa_plain_to_der(bytes(63), 32)


@pytest.mark.parametrize(
    "oid", [cvc.OID_TA_RSA_V1_5_SHA256, cvc.OID_TA_RSA_PSS_SHA256, "0.4.0.127.0.7.2.2.2.1.6"]
)
def test_rsa_certificate_issue_and_verify(oid: str, rsa_key: rsa.RSAPrivateKey) -> None:
    body = cvc.CvBody(
        car="UTRSA0000001",
        public_key=cvc.CvPublicKey.from_cryptography(rsa_key.public_key(), oid),
        chr="UTRSA0000001",
    )
    cert = cvc.CVCertificate.decode(cvc.issue(body, rsa_key, oid).raw)
    assert cert.body == body and len(cert.signature) == 256
    cvc.verify_self_signed(cert)
    bad = bytearray(cert.raw)
    bad[-1] ^= 1
    with pytest.raises(cvc.SignatureInvalidError):
        cvc.verify_self_signed(cvc.CVCertificate.decode(bytes(bad)))


def test_signature_scheme_must_fit_the_key(rsa_key: rsa.RSAPrivateKey) -> None:
    with pytest.raises(cvc.CvcError):
        cvc.sign_cv(b"x", rsa_key, cvc.OID_TA_ECDSA_SHA256)
    with pytest.raises(cvc.UnsupportedAlgorithmError):
        cvc.algorithm("1.2.3")


# --- structures --------------------------------------------------------------------------------


@given(
    curve=st.sampled_from(["secp256r1", "brainpoolP256r1", "secp384r1"]),
    with_domain=st.booleans(),
    chr_=st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=16),
    car=st.none() | st.just("UTCA00001"),
    dates=st.none()
    | st.tuples(
        st.dates(dt.date(2000, 1, 1), dt.date(2099, 1, 1)),
        st.dates(dt.date(2000, 1, 1), dt.date(2099, 1, 1)),
    ),
    role=st.none() | st.sampled_from([0x00, 0x80, 0xC0]),
    ext=st.none() | st.binary(max_size=10),
)
@settings(max_examples=40, deadline=None)
def test_certificate_round_trip(curve, with_domain, chr_, car, dates, role, ext) -> None:
    key = ec.generate_private_key(cvc.CURVES[curve].curve())
    body = cvc.CvBody(
        car=car,
        public_key=cvc.CvPublicKey.from_cryptography(
            key.public_key(), cvc.OID_TA_ECDSA_SHA256, with_domain
        ),
        chr=chr_,
        chat=None if role is None else cvc.Chat(cvc.OID_CHAT_SMARTCARD_HSM, bytes([role])),
        effective=dates and dates[0],
        expiry=dates and dates[1],
        extensions=ext,
    )
    cert = cvc.issue(body, key, cvc.OID_TA_ECDSA_SHA256)
    parsed = cvc.CVCertificate.decode(cert.raw)
    assert parsed == cert
    assert len(parsed.signature) == 2 * cvc.CURVES[curve].order_bytes
    cvc.verify_certificate(parsed, parsed.public_key, cvc.CURVES[curve])


def test_certificate_shape_errors() -> None:
    root = cvc.load_test_root()
    with pytest.raises(cvc.CvcError, match="trailing"):
        cvc.CVCertificate.decode(root.raw + b"\x00")
    body = tlv.decode_exact(root.raw).children()[0]
    with pytest.raises(cvc.CvcError, match="exactly 7F4E then 5F37"):
        cvc.CVCertificate.decode(tlv.encode(0x7F21, body.raw))
    with pytest.raises(cvc.CvcError, match="neither"):
        cvc.parse_request(tlv.encode(0x30, b""))


# --- the real world ----------------------------------------------------------------------------


def test_shipped_cardcontact_root_is_the_published_one() -> None:
    root = cvc.load_cardcontact_root()
    assert hashlib.sha256(root.raw).hexdigest() == CARDCONTACT_ROOT_SHA256
    assert root.chr == root.car == "DESRCACC100001"
    assert root.public_key.domain is cvc.CURVES["brainpoolP256r1"]
    assert (root.body.effective, root.body.expiry) == (dt.date(2012, 11, 9), dt.date(2032, 11, 8))
    cvc.verify_self_signed(root)


def test_real_nitrokey_chain_verifies_to_cardcontact_root() -> None:
    assert hashlib.sha256(NITROKEY_2F02).hexdigest() == NITROKEY_2F02_SHA256
    chain = cvc.verify_c_devaut(NITROKEY_2F02, cvc.load_cardcontact_root())
    assert (chain.device_chr, chain.dica_chr, chain.serial) == (
        "DENK040414400000",
        "DEDINK0400001",
        "DENK0404144",
    )
    assert chain.path == "/DESRCACC1/DEDINK04/DENK0404144"
    assert chain.curve.name == "brainpoolP256r1"
    assert chain.device.body.chat == cvc.Chat(cvc.OID_CHAT_SMARTCARD_HSM, b"\x00")
    assert chain.dica.body.extensions == b""
    assert (chain.device.body.effective, chain.device.body.expiry) == (
        dt.date(2026, 5, 28),
        dt.date(2031, 5, 27),
    )


def test_real_nitrokey_chain_refused_by_the_test_root() -> None:
    with pytest.raises(cvc.ChainError, match="not the root UTSRCACC100001"):
        cvc.verify_c_devaut(NITROKEY_2F02, cvc.load_test_root())


def test_cardcontact_root_with_another_key_refuses_the_real_chain() -> None:
    """Control: the root's key is really used (its point replaced by G, a valid point)."""
    root = cvc.load_cardcontact_root()
    domain = root.public_key.domain
    assert domain is not None
    fake_body = dataclasses.replace(
        root.body, public_key=cvc.CvPublicKey(root.public_key.oid, domain, domain.generator)
    )
    fake = cvc.CVCertificate(fake_body, fake_body.encode(), root.signature, b"")
    with pytest.raises(cvc.ChainError, match="DICA DEDINK0400001 not signed by root"):
        cvc.verify_c_devaut(NITROKEY_2F02, fake)


def test_pico_authenticated_request_outer_signature_covers_inner_and_outer_car() -> None:
    first, _ = tlv.decode_one(PICO_2F02)
    request = cvc.parse_request(first.raw)
    assert isinstance(request, cvc.AuthenticatedRequest)
    assert request.outer_car == request.inner.chr == "ESP2202E14A00001"
    assert request.public_key.domain is cvc.CURVES["secp256k1"]
    cvc.verify_self_signed(request)
    key = request.public_key.to_cryptography()
    cvc.verify_cv(request.signed_part, request.outer_signature, key, request.public_key.oid)
    with pytest.raises(cvc.SignatureInvalidError):
        cvc.verify_cv(request.inner.raw, request.outer_signature, key, request.public_key.oid)


def test_pico_2f02_is_refused_with_a_reason() -> None:
    with pytest.raises(cvc.ChainError, match="unexpected tag.*5F4C"):
        cvc.verify_c_devaut(PICO_2F02, cvc.load_cardcontact_root())


# --- hostile input -----------------------------------------------------------------------------


@given(st.data())
@settings(max_examples=300, deadline=None)
def test_mutated_real_chain_raises_only_chain_error(data: st.DataObject) -> None:
    blob = bytearray(NITROKEY_2F02)
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(blob) - 1))
        blob[i] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(blob)))
    mutated = bytes(blob[:cut]) + data.draw(st.binary(max_size=3))
    try:
        chain = cvc.verify_c_devaut(mutated, cvc.load_cardcontact_root())
    except cvc.ChainError:
        return
    # Accepted only if every signed byte is intact (mutations in unsigned framing may pass).
    assert chain.device_chr == "DENK040414400000"
    assert chain.device.body_raw in NITROKEY_2F02 and chain.dica.body_raw in NITROKEY_2F02


@given(st.binary(max_size=500))
def test_random_bytes_raise_only_cvc_error(data: bytes) -> None:
    for decoder in (cvc.parse_cv_objects, cvc.parse_request, cvc.CVCertificate.decode):
        try:
            decoder(data)
        except cvc.CvcError:
            pass


@given(st.data())
@settings(max_examples=200, deadline=None)
def test_structured_garbage_inside_a_certificate(data: st.DataObject) -> None:
    """Well-framed TLV with hostile contents reaches the field decoders."""
    tags = [
        0x5F29,
        0x42,
        0x5F20,
        0x7F4C,
        0x5F25,
        0x5F24,
        0x65,
        0x06,
        0x53,
        0x81,
        0x82,
        0x83,
        0x84,
        0x85,
        0x86,
        0x87,
    ]
    inner = b"".join(
        tlv.encode(t, v)
        for t, v in data.draw(
            st.lists(st.tuples(st.sampled_from(tags), st.binary(max_size=70)), max_size=8)
        )
    )
    key = tlv.encode(
        0x7F49,
        data.draw(
            st.sampled_from(
                [b"", inner, tlv.encode(6, cvc.encode_oid(cvc.OID_TA_ECDSA_SHA256)) + inner]
            )
        ),
    )
    body = tlv.encode(0x7F4E, tlv.encode(0x5F29, b"\x00") + key + inner)
    cert = tlv.encode(0x7F21, body + tlv.encode(0x5F37, bytes(64)))
    try:
        parsed = cvc.CVCertificate.decode(cert)
        parsed.public_key.to_cryptography(cvc.CURVES["brainpoolP256r1"])
        cvc.verify_self_signed(parsed)
    except cvc.CvcError:
        pass
