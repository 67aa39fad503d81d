"""Pure-Python EC keys for the SmartCard-HSM curves `cryptography` does not implement.

Short-Weierstrass curves y² = x³ + ax + b over GF(p) (the domain is `cvc.EcDomain`, with its
parameters from SEC 2 / RFC 5639). Points are added in Jacobian coordinates (X, Y, Z) standing
for (X/Z², Y/Z³), so a scalar multiplication needs one inversion at the end instead of one per
step. Used only where `EcDomain.native` is false: key generation, ECDSA (SEC 1 §4.1.3) and
ECDH (SEC 1 §3.3.1).

An emulator, not a vault: the arithmetic is not constant-time.

Keys persist as PKCS#8 (RFC 5958) holding an ECPrivateKey (RFC 5915) on the named curve, the
same shape OpenSSL writes, so `openssl pkey` reads what the emulator stores.
"""

from __future__ import annotations

import functools
import secrets
from dataclasses import dataclass

from hsm_lifecycle import cvc, tlv

# Curve OIDs: brainpool RFC 5639 §4.1 (1.3.36.3.3.2.8.1.1.x), secp192k1 SEC 2 §A.2.
CURVE_OIDS = {
    "brainpoolP192r1": "1.3.36.3.3.2.8.1.1.3",
    "brainpoolP192t1": "1.3.36.3.3.2.8.1.1.4",
    "brainpoolP224r1": "1.3.36.3.3.2.8.1.1.5",
    "brainpoolP224t1": "1.3.36.3.3.2.8.1.1.6",
    "brainpoolP256t1": "1.3.36.3.3.2.8.1.1.8",
    "brainpoolP320r1": "1.3.36.3.3.2.8.1.1.9",
    "brainpoolP320t1": "1.3.36.3.3.2.8.1.1.10",
    "brainpoolP384t1": "1.3.36.3.3.2.8.1.1.12",
    "brainpoolP512t1": "1.3.36.3.3.2.8.1.1.14",
    "secp192k1": "1.3.132.0.31",
}
OID_EC_PUBLIC_KEY = "1.2.840.10045.2.1"  # RFC 5480 §2.1.1

Affine = tuple[int, int]
Jacobian = tuple[int, int, int]
_INFINITY: Jacobian = (1, 1, 0)


class PointError(ValueError):
    """Bytes that are not an uncompressed point of the curve, or the point at infinity."""


# ---------------------------------------------------------------------------------------------
# Point arithmetic


def _double(d: cvc.EcDomain, pt: Jacobian) -> Jacobian:
    x, y, z = pt
    p = d.p
    if z == 0 or y == 0:
        return _INFINITY
    yy = y * y % p
    s = 4 * x * yy % p
    zz = z * z % p
    m = (3 * x * x + d.a * zz * zz) % p
    x3 = (m * m - 2 * s) % p
    return x3, (m * (s - x3) - 8 * yy * yy) % p, 2 * y * z % p


def _add(d: cvc.EcDomain, p1: Jacobian, p2: Jacobian) -> Jacobian:
    if p1[2] == 0:
        return p2
    if p2[2] == 0:
        return p1
    p = d.p
    x1, y1, z1 = p1
    x2, y2, z2 = p2
    z1z1, z2z2 = z1 * z1 % p, z2 * z2 % p
    u1, u2 = x1 * z2z2 % p, x2 * z1z1 % p
    s1, s2 = y1 * z2 * z2z2 % p, y2 * z1 * z1z1 % p
    if u1 == u2:
        return _double(d, p1) if s1 == s2 else _INFINITY
    h, r = (u2 - u1) % p, (s2 - s1) % p
    hh = h * h % p
    hhh = h * hh % p
    v = u1 * hh % p
    x3 = (r * r - hhh - 2 * v) % p
    return x3, (r * (v - x3) - s1 * hhh) % p, h * z1 * z2 % p


def _to_affine(d: cvc.EcDomain, pt: Jacobian) -> Affine | None:
    x, y, z = pt
    if z == 0:
        return None
    zi = pow(z, -1, d.p)
    zi2 = zi * zi % d.p
    return x * zi2 % d.p, y * zi2 * zi % d.p


def multiply(d: cvc.EcDomain, k: int, point: Affine) -> Affine | None:
    """k·point (None for the point at infinity), by double-and-add from the top bit."""
    acc = _INFINITY
    base: Jacobian = (point[0], point[1], 1)
    for bit in bin(k)[2:]:
        acc = _double(d, acc)
        if bit == "1":
            acc = _add(d, acc, base)
    return _to_affine(d, acc)


def add(d: cvc.EcDomain, p1: Affine, p2: Affine) -> Affine | None:
    return _to_affine(d, _add(d, (*p1, 1), (*p2, 1)))


def on_curve(d: cvc.EcDomain, pt: Affine) -> bool:
    x, y = pt
    return 0 <= x < d.p and 0 <= y < d.p and (y * y - x * x * x - d.a * x - d.b) % d.p == 0


def decode_point(d: cvc.EcDomain, data: bytes) -> Affine:
    """04 || x || y, checked to lie on the curve (cofactor 1: then it is in the group)."""
    size = d.field_bytes
    if len(data) != 1 + 2 * size or data[0] != 0x04:
        raise PointError(f"not an uncompressed {d.name} point")
    pt = int.from_bytes(data[1 : 1 + size], "big"), int.from_bytes(data[1 + size :], "big")
    if not on_curve(d, pt):
        raise PointError(f"point is not on {d.name}")
    return pt


def encode_point(d: cvc.EcDomain, pt: Affine) -> bytes:
    size = d.field_bytes
    return b"\x04" + pt[0].to_bytes(size, "big") + pt[1].to_bytes(size, "big")


def generator(d: cvc.EcDomain) -> Affine:
    return decode_point(d, d.generator)


# ---------------------------------------------------------------------------------------------
# Keys


@dataclass(frozen=True)
class PrivateKey:
    """An EC private key d on a non-native curve; the public point is d·G."""

    domain: cvc.EcDomain
    d: int

    def __post_init__(self) -> None:
        if not 1 <= self.d < self.domain.n:
            raise ValueError(f"private value out of range for {self.domain.name}")

    @property
    def key_size(self) -> int:
        """Bits of the field, as `cryptography` reports an EC key's size."""
        return self.domain.p.bit_length()

    @functools.cached_property
    def public_point(self) -> bytes:
        pt = multiply(self.domain, self.d, generator(self.domain))
        assert pt is not None  # 1 <= d < n
        return encode_point(self.domain, pt)

    def sign_digest(self, digest: bytes) -> tuple[int, int]:
        """ECDSA (SEC 1 §4.1.3) over `digest`, truncated to the order's bit length."""
        n = self.domain.n
        e = _bits2int(digest, n)
        while True:
            k = secrets.randbelow(n - 1) + 1
            pt = multiply(self.domain, k, generator(self.domain))
            assert pt is not None
            r = pt[0] % n
            s = pow(k, -1, n) * (e + r * self.d) % n
            if r and s:
                return r, s

    def exchange(self, peer: bytes) -> bytes:
        """ECDH (SEC 1 §3.3.1): the x coordinate of d·peer, field-sized. PointError if the
        peer is not a point of the curve."""
        shared = multiply(self.domain, self.d, decode_point(self.domain, peer))
        if shared is None:
            raise PointError("shared point is the point at infinity")
        return shared[0].to_bytes(self.domain.field_bytes, "big")

    def to_pkcs8(self) -> bytes:
        """PKCS#8 (RFC 5958) with an RFC 5915 ECPrivateKey and the curve's named OID."""
        d = self.domain
        algorithm = tlv.encode(0x30, _oid(OID_EC_PUBLIC_KEY) + _oid(CURVE_OIDS[d.name]))
        ec_key = tlv.encode(
            0x30,
            tlv.encode(0x02, b"\x01")
            + tlv.encode(0x04, self.d.to_bytes(d.order_bytes, "big"))
            + tlv.encode(0xA1, tlv.encode(0x03, b"\x00" + self.public_point)),
        )
        return tlv.encode(0x30, tlv.encode(0x02, b"\x00") + algorithm + tlv.encode(0x04, ec_key))


def generate(domain: cvc.EcDomain) -> PrivateKey:
    return PrivateKey(domain, secrets.randbelow(domain.n - 1) + 1)


def verify_digest(domain: cvc.EcDomain, point: bytes, digest: bytes, r: int, s: int) -> bool:
    """ECDSA verification (SEC 1 §4.1.4); for self-checks, the tests verify with OpenSSL."""
    n = domain.n
    if not (1 <= r < n and 1 <= s < n):
        return False
    w = pow(s, -1, n)
    e = _bits2int(digest, n)
    u1 = multiply(domain, e * w % n, generator(domain))
    u2 = multiply(domain, r * w % n, decode_point(domain, point))
    total = u1 if u2 is None else u2 if u1 is None else add(domain, u1, u2)
    return total is not None and total[0] % n == r


def curve_of_pkcs8(der: bytes) -> str | None:
    """The non-native curve a PKCS#8 EC key names, or None (another key: `cryptography`'s)."""
    try:
        outer = tlv.decode_exact(der)
        fields = tlv.decode_all(outer.value)
        algorithm = tlv.decode_all(fields[1].value)
        if len(algorithm) != 2 or algorithm[1].tag != 0x06:
            return None
        named = cvc.decode_oid(algorithm[1].value)
    except (tlv.TlvError, cvc.CvcError, IndexError):
        return None
    return next((name for name, oid in CURVE_OIDS.items() if oid == named), None)


def load_pkcs8(der: bytes) -> PrivateKey:
    """Read back what `PrivateKey.to_pkcs8` wrote; ValueError if it is not that."""
    name = curve_of_pkcs8(der)
    if name is None:
        raise ValueError("not a PKCS#8 key on a pure-Python curve")
    try:
        fields = tlv.decode_all(tlv.decode_exact(der).value)
        ec_key = tlv.decode_all(tlv.decode_exact(fields[2].value).value)
        d = int.from_bytes(ec_key[1].value, "big")
    except (tlv.TlvError, IndexError) as exc:
        raise ValueError(f"malformed ECPrivateKey: {exc}") from exc
    return PrivateKey(cvc.CURVES[name], d)


def _bits2int(digest: bytes, n: int) -> int:
    e = int.from_bytes(digest, "big")
    excess = 8 * len(digest) - n.bit_length()
    return e >> excess if excess > 0 else e


def _oid(dotted: str) -> bytes:
    return tlv.encode(0x06, cvc.encode_oid(dotted))
