"""DKEK key backup: the SmartCard-HSM key blob that WRAP KEY answers and UNWRAP KEY takes.

Byte layout (CardContact's key backup format; facts as pico-hsm `kek.c` reads and writes it):

    KCV (8) | key type (1) | default algorithm OID (2-byte length + DER value)
    | allowed algorithms (2-byte length + list) | access conditions (2 + ...) | key OID (2 + ...)
    | AES-256-CBC(Kenc, IV 0) of [8 random bytes | key size in bits (2) | fields | 80 00.. pad]
    | AES-CMAC(Kmac) over everything before it (16)

with KCV = SHA-256(DKEK)[:8], Kenc = SHA-256(DKEK || 00000001), Kmac = SHA-256(DKEK || 00000002).
Each field is a 2-byte length and a big-endian value. Key types: 5 RSA (d, n, e), 6 RSA CRT
(dP, dQ, p, qInv, q, n, e), 12 EC (a, b, p, n, G, d, Q). The emulator writes 6 and 12 and reads
5, 6 and 12. A blob whose KCV or CMAC does not match this DKEK is refused: a key wrapped under one
DKEK unwraps only where the same DKEK is held.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from cryptography.hazmat.primitives import cmac, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from hsm_lifecycle import cvc
from hsm_lifecycle import protocol as p
from hsm_lifecycle.emulator import weierstrass
from hsm_lifecycle.emulator.keys import PrivateKey, StoredKey

KEY_TYPE_RSA = 5
KEY_TYPE_RSA_CRT = 6
KEY_TYPE_EC = 12
KCV_BYTES = 8
MAC_BYTES = 16
RANDOM_PREFIX = 8
BLOCK = 16
DKEK_BYTES = p.DKEK_SHARE_LENGTH


class BlobError(ValueError):
    """A key blob this DKEK cannot open: another DKEK, tampered, or not a key blob."""


class WrongDkekError(BlobError):
    """The blob's key check value names another DKEK."""


def kcv(dkek: bytes) -> bytes:
    """Key check value: the first 8 bytes of SHA-256 over the DKEK."""
    return hashlib.sha256(dkek).digest()[:KCV_BYTES]


def _derived(dkek: bytes, counter: int) -> bytes:
    return hashlib.sha256(dkek + counter.to_bytes(4, "big")).digest()


def _mac(dkek: bytes, data: bytes) -> bytes:
    signer = cmac.CMAC(algorithms.AES(_derived(dkek, 2)))
    signer.update(data)
    return signer.finalize()


def _cbc(dkek: bytes) -> Cipher[modes.CBC]:
    return Cipher(algorithms.AES(_derived(dkek, 1)), modes.CBC(bytes(BLOCK)))


def _field(value: bytes) -> bytes:
    return len(value).to_bytes(2, "big") + value


def _uint(value: int, size: int | None = None) -> bytes:
    return value.to_bytes(size or max(1, (value.bit_length() + 7) // 8), "big")


def _key_fields(key: PrivateKey) -> tuple[int, int, list[bytes]]:
    """(key type, size in bits, fields) of a private key."""
    if isinstance(key, (ec.EllipticCurvePrivateKey, weierstrass.PrivateKey)):
        if isinstance(key, weierstrass.PrivateKey):
            domain, d, point = key.domain, key.d, key.public_point
        else:
            domain = cvc.domain_of(key.curve)
            d = key.private_numbers().private_value
            point = key.public_key().public_bytes(
                serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
            )
        size = domain.field_bytes
        fields = [_uint(domain.a, size), _uint(domain.b, size), _uint(domain.p, size),
                  _uint(domain.n, domain.order_bytes), domain.generator,
                  _uint(d, domain.order_bytes), point]  # fmt: skip
        return KEY_TYPE_EC, domain.p.bit_length(), fields
    numbers = key.private_numbers()
    public = numbers.public_numbers
    fields = [_uint(numbers.dmp1), _uint(numbers.dmq1), _uint(numbers.p), _uint(numbers.iqmp),
              _uint(numbers.q), _uint(public.n), _uint(public.e)]  # fmt: skip
    return KEY_TYPE_RSA_CRT, key.key_size, fields


def wrap(dkek: bytes, key: StoredKey) -> bytes:
    """The key blob for `key` under `dkek`."""
    key_type, bits, fields = _key_fields(key.private_key)
    oid = p.OID_TA_ECDSA_SHA256 if key_type == KEY_TYPE_EC else p.OID_TA_RSA_V1_5_SHA256
    header = (
        kcv(dkek)
        + bytes([key_type])
        + _field(cvc.encode_oid(oid))
        + _field(b"")  # allowed algorithms: none restricted
        + _field(b"")  # access conditions
        + _field(b"")  # key OID
    )
    plain = secrets.token_bytes(RANDOM_PREFIX) + bits.to_bytes(2, "big") + b"".join(map(_field, fields))
    if len(plain) % BLOCK:
        plain += b"\x80" + bytes(-(len(plain) + 1) % BLOCK)
    encryptor = _cbc(dkek).encryptor()
    body = header + encryptor.update(plain) + encryptor.finalize()
    return body + _mac(dkek, body)


def unwrap(dkek: bytes, blob: bytes) -> StoredKey:
    """The key inside `blob`; WrongDkekError for another DKEK, BlobError for anything else."""
    if len(blob) < KCV_BYTES + 1 + 8 + BLOCK + MAC_BYTES:
        raise BlobError(f"a {len(blob)}-byte blob is too short to be a key blob")
    if not hmac.compare_digest(blob[:KCV_BYTES], kcv(dkek)):
        raise WrongDkekError("the blob was wrapped under another DKEK")
    body, mac = blob[:-MAC_BYTES], blob[-MAC_BYTES:]
    if not hmac.compare_digest(_mac(dkek, body), mac):
        raise BlobError("the blob's CMAC does not verify")
    key_type = body[KCV_BYTES]
    offset = KCV_BYTES + 1
    for _ in range(4):  # algorithm OID, allowed algorithms, access conditions, key OID
        offset += 2 + int.from_bytes(body[offset : offset + 2], "big")
    encrypted = body[offset:]
    if not encrypted or len(encrypted) % BLOCK:
        raise BlobError("the encrypted key is not whole AES blocks")
    decryptor = _cbc(dkek).decryptor()
    plain = decryptor.update(encrypted) + decryptor.finalize()
    fields = _split_fields(plain[RANDOM_PREFIX + 2 :])
    try:
        key = StoredKey.from_private_key(_private_key(key_type, fields))
        _ = key.private_key  # a curve the card does not offer is refused here
    except (ValueError, cvc.CvcError, IndexError) as exc:  # KeyStateError is a ValueError
        raise BlobError(f"the blob holds no usable key: {exc}") from exc
    return key


def _split_fields(data: bytes) -> list[bytes]:
    fields = []
    offset = 0
    while offset + 2 <= len(data) and data[offset] != 0x80:
        size = int.from_bytes(data[offset : offset + 2], "big")
        if offset + 2 + size > len(data):
            break  # the padding
        fields.append(data[offset + 2 : offset + 2 + size])
        offset += 2 + size
    return fields


def _private_key(key_type: int, fields: list[bytes]) -> PrivateKey:
    num = [int.from_bytes(f, "big") for f in fields]
    if key_type == KEY_TYPE_EC:
        a, b, p_, n, g, d = num[0], num[1], num[2], num[3], fields[4], num[5]
        domain = cvc.match_domain(p_, a, b, g, n, None)
        if not domain.native:
            return weierstrass.PrivateKey(domain, d)
        return ec.derive_private_key(d, domain.curve())
    if key_type == KEY_TYPE_RSA_CRT:
        dp, dq, p_, qinv, q, n, e = num[:7]
        d = pow(e, -1, (p_ - 1) * (q - 1))
        return rsa.RSAPrivateNumbers(p_, q, d, dp, dq, qinv, rsa.RSAPublicNumbers(e, n)).private_key()
    if key_type == KEY_TYPE_RSA:
        d, n, e = num[:3]
        p_, q = rsa.rsa_recover_prime_factors(n, e, d)
        numbers = rsa.RSAPrivateNumbers(
            p_, q, d, rsa.rsa_crt_dmp1(d, p_), rsa.rsa_crt_dmq1(d, q), rsa.rsa_crt_iqmp(p_, q),
            rsa.RSAPublicNumbers(e, n),
        )
        return numbers.private_key()
    raise ValueError(f"key type {key_type} is not RSA (5, 6) or EC (12)")
