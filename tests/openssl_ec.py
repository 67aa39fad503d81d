"""OpenSSL's command line as the independent judge of the emulator's pure-Python curves.

Everything here asks `openssl` (its own built-in curves): the curve's parameters and OID, the
public key of a private value, whether a signature verifies, the ECDH secret. Nothing is
computed with `hsm_lifecycle.emulator.weierstrass`.
"""

from __future__ import annotations

import functools
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import utils

from hsm_lifecycle import tlv

OPENSSL_NAMES = {"secp192r1": "prime192v1", "secp256r1": "prime256v1"}


@dataclass(frozen=True)
class OpenSslCurve:
    oid_der: bytes  # 06 len value
    p: int
    a: int
    b: int
    g: bytes
    n: int
    h: int


def _run(*args: str, data: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["openssl", *args], input=data, capture_output=True, timeout=60)


@functools.cache
def curve(name: str) -> OpenSslCurve:
    """OpenSSL's ECParameters (RFC 3279 §2.3.5) of its built-in curve `name`."""
    openssl_name = OPENSSL_NAMES.get(name, name)
    named = _run("ecparam", "-name", openssl_name, "-outform", "DER")
    explicit = _run("ecparam", "-name", openssl_name, "-param_enc", "explicit", "-outform", "DER")
    assert named.returncode == 0 and explicit.returncode == 0, named.stderr + explicit.stderr
    version, field_id, shape, base, order, *cofactor = tlv.decode_all(
        tlv.decode_exact(explicit.stdout).value
    )
    assert version.value == b"\x01"
    field_type, prime = tlv.decode_all(field_id.value)
    a, b = tlv.decode_all(shape.value)[:2]
    num = lambda item: int.from_bytes(item.value, "big")  # noqa: E731
    return OpenSslCurve(
        named.stdout, num(prime), num(a), num(b), base.value, num(order),
        num(cofactor[0]) if cofactor else 1,
    )  # fmt: skip


def spki(name: str, point: bytes) -> bytes:
    """SubjectPublicKeyInfo (RFC 5480) for `point` on the named curve."""
    algorithm = tlv.encode(0x06, bytes.fromhex("2a8648ce3d0201")) + curve(name).oid_der
    return tlv.encode(0x30, tlv.encode(0x30, algorithm) + tlv.encode(0x03, b"\x00" + point))


def public_point_of(pkcs8: bytes) -> bytes:
    """The public point OpenSSL derives from a PKCS#8 private key."""
    out = _run("pkey", "-inform", "DER", "-pubout", "-outform", "DER", data=pkcs8)
    assert out.returncode == 0, out.stderr
    bit_string = tlv.decode_all(tlv.decode_exact(out.stdout).value)[1]
    return bit_string.value[1:]


def verifies(name: str, point: bytes, message: bytes, der_signature: bytes, digest: str) -> bool:
    """`openssl dgst -<digest> -verify` of an ECDSA signature over `message`."""
    with tempfile.TemporaryDirectory() as tmp:
        key, sig = Path(tmp, "pub.der"), Path(tmp, "sig.der")
        key.write_bytes(spki(name, point))
        sig.write_bytes(der_signature)
        out = _run("dgst", f"-{digest}", "-verify", str(key), "-keyform", "DER",
                   "-signature", str(sig), data=message)  # fmt: skip
    assert out.returncode in (0, 1), out.stderr
    return out.returncode == 0


def verifies_prehashed(name: str, point: bytes, digest: bytes, der_signature: bytes) -> bool:
    """`openssl pkeyutl -verify` of an ECDSA signature over an already computed hash."""
    with tempfile.TemporaryDirectory() as tmp:
        key, sig = Path(tmp, "pub.der"), Path(tmp, "sig.der")
        key.write_bytes(spki(name, point))
        sig.write_bytes(der_signature)
        out = _run("pkeyutl", "-verify", "-pubin", "-inkey", str(key), "-keyform", "DER",
                   "-sigfile", str(sig), data=digest)  # fmt: skip
    return out.returncode == 0 and b"Verified Successfully" in out.stdout


def plain_to_der(signature: bytes) -> bytes:
    half = len(signature) // 2
    r, s = int.from_bytes(signature[:half], "big"), int.from_bytes(signature[half:], "big")
    return utils.encode_dss_signature(r, s)


def derive(pkcs8: bytes, name: str, peer_point: bytes) -> bytes:
    """`openssl pkeyutl -derive`: the ECDH secret (x coordinate) of our key and the peer."""
    with tempfile.TemporaryDirectory() as tmp:
        own, peer = Path(tmp, "own.der"), Path(tmp, "peer.der")
        own.write_bytes(pkcs8)
        peer.write_bytes(spki(name, peer_point))
        out = _run("pkeyutl", "-derive", "-inkey", str(own), "-keyform", "DER",
                   "-peerkey", str(peer), "-peerform", "DER")  # fmt: skip
    assert out.returncode == 0, out.stderr
    return out.stdout
