"""The pure-Python curves, judged by OpenSSL: parameters, OIDs, public keys, ECDSA, ECDH."""

from __future__ import annotations

import hashlib

import pytest

from hsm_lifecycle import cvc
from hsm_lifecycle.emulator import weierstrass as w

import openssl_ec

PURE = sorted(name for name, d in cvc.CURVES.items() if not d.native)


def test_the_pure_curves_are_the_ones_opensc_lists_beyond_cryptography() -> None:
    assert PURE == sorted([
        "brainpoolP192r1", "brainpoolP224r1", "brainpoolP320r1", "secp192k1",
        "brainpoolP192t1", "brainpoolP224t1", "brainpoolP256t1", "brainpoolP320t1",
        "brainpoolP384t1", "brainpoolP512t1",
    ])  # fmt: skip
    assert set(w.CURVE_OIDS) == set(PURE)


@pytest.mark.parametrize("name", PURE)
def test_parameters_and_oid_agree_with_openssl(name: str) -> None:
    d, ref = cvc.CURVES[name], openssl_ec.curve(name)
    assert (d.p, d.a, d.b, d.generator, d.n, d.h) == (ref.p, ref.a, ref.b, ref.g, ref.n, ref.h)
    assert ref.oid_der == b"\x06" + bytes([len(ref.oid_der) - 2]) + cvc.encode_oid(
        w.CURVE_OIDS[name]
    )


@pytest.mark.parametrize("name", PURE)
def test_group_laws_on_the_generator(name: str) -> None:
    d = cvc.CURVES[name]
    g = w.generator(d)
    assert w.multiply(d, d.n, g) is None  # n·G = O: n is G's order
    assert w.multiply(d, d.n - 1, g) == (g[0], d.p - g[1])  # (n-1)·G = -G
    two_g = w.multiply(d, 2, g)
    assert two_g is not None and w.add(d, g, g) == two_g and w.on_curve(d, two_g)
    assert w.add(d, two_g, g) == w.multiply(d, 3, g)
    assert w.add(d, g, (g[0], d.p - g[1])) is None  # G + (-G) = O


@pytest.mark.parametrize("name", PURE)
@pytest.mark.parametrize("d_value", [1, 2, 3, 0xDEADBEEF, -1])
def test_public_points_are_the_ones_openssl_derives(name: str, d_value: int) -> None:
    """Known answers: k·G for small, mid and largest k, as OpenSSL computes it."""
    d = cvc.CURVES[name]
    key = w.PrivateKey(d, d_value % d.n)
    assert openssl_ec.public_point_of(key.to_pkcs8()) == key.public_point
    assert w.load_pkcs8(key.to_pkcs8()) == key and w.curve_of_pkcs8(key.to_pkcs8()) == name


@pytest.mark.parametrize("name", PURE)
def test_ecdsa_signatures_verify_in_openssl(name: str) -> None:
    d = cvc.CURVES[name]
    key = w.generate(d)
    message = b"signed on " + name.encode()
    for digest in ("sha1", "sha224", "sha256", "sha384", "sha512"):
        r, s = key.sign_digest(hashlib.new(digest, message).digest())
        der = openssl_ec.plain_to_der(r.to_bytes(d.order_bytes, "big") + s.to_bytes(d.order_bytes, "big"))
        assert openssl_ec.verifies(name, key.public_point, message, der, digest), digest
        assert w.verify_digest(d, key.public_point, hashlib.new(digest, message).digest(), r, s)
    # The check can fail: a signature by another key, or over another message, is refused.
    other = w.generate(d)
    r, s = other.sign_digest(hashlib.sha256(message).digest())
    der = openssl_ec.plain_to_der(r.to_bytes(d.order_bytes, "big") + s.to_bytes(d.order_bytes, "big"))
    assert not openssl_ec.verifies(name, key.public_point, message, der, "sha256")
    assert not openssl_ec.verifies(name, other.public_point, message + b"!", der, "sha256")


@pytest.mark.parametrize("name", PURE)
def test_ecdh_agrees_with_openssl(name: str) -> None:
    d = cvc.CURVES[name]
    own, peer = w.generate(d), w.generate(d)
    secret = own.exchange(peer.public_point)
    assert secret == openssl_ec.derive(own.to_pkcs8(), name, peer.public_point)
    assert secret == peer.exchange(own.public_point)


def test_points_off_the_curve_are_refused() -> None:
    d = cvc.CURVES["brainpoolP320r1"]
    key = w.generate(d)
    good = key.public_point
    for bad in (b"\x04" + bytes(2 * d.field_bytes), good[:-1] + bytes([good[-1] ^ 1]),
                b"\x02" + good[1 : 1 + d.field_bytes], good + b"\x00",
                b"\x04" + d.p.to_bytes(d.field_bytes, "big") + good[1 + d.field_bytes :]):  # fmt: skip
        with pytest.raises(w.PointError):
            key.exchange(bad)
    with pytest.raises(ValueError):
        w.PrivateKey(d, 0)
    with pytest.raises(ValueError):
        w.PrivateKey(d, d.n)
    with pytest.raises(ValueError):
        w.load_pkcs8(b"\x30\x00")
