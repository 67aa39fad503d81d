"""Private keys of the emulated SmartCard-HSM applet: generation from GAKP data, SIGN, DECIPHER.

GENERATE ASYMMETRIC KEY PAIR data is the content of a CV certificate body (protocol digest §4):
`5F29` CPI, `42` CAR, `7F49` {06 OID, EC: 81..85 [87] | RSA: 02 modulus bits [82 exponent]},
`5F20` CHR, optional `45` outer CAR; pico's extras `90`/`91`/`92` are accepted and ignored.
The answer is a CV request: `67` {7F21 self-signed by the new key, 42 outer CAR, 5F37 by the
device key} when an outer signer is given, else the plain `7F21`.

Every refusal is a `KeyOperationError` whose `sw` is the status word the applet answers:

* `MalformedKeyDataError` → 6A80: GAKP data not well-formed (TLV, missing, duplicate or
  unknown tags, bad values).
* `UnsupportedKeyError` → 6A81: well-formed, but a curve, RSA size or exponent, or algorithm
  OID the card does not offer (curves: SUPPORTED_CURVES; RSA: SUPPORTED_RSA_BITS, e 65537).
* `AlgorithmNotSupportedError` → 6A81: SIGN/DECIPHER algorithm byte unknown, or one for the
  other key type (DECIPHER: RSA 21/22/23, EC 80).
* `WrongInputError` → 6A80: input of the wrong length or size for the algorithm, or a
  decryption that fails.

`KeyStateError` (not an SW) means a state-file entry is corrupt.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Literal, Union

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils

from hsm_lifecycle import cvc
from hsm_lifecycle import protocol as p
from hsm_lifecycle import tlv
from hsm_lifecycle.emulator import weierstrass

# EC keys on curves `cryptography` does not implement are `weierstrass.PrivateKey`s.
PrivateKey = Union[ec.EllipticCurvePrivateKey, rsa.RSAPrivateKey, weierstrass.PrivateKey]
KeyKind = Literal["ec", "rsa"]

# The device's key set as OpenSC offers it for the SmartCard-HSM (card-sc-hsm.c `sc_hsm_init`
# RSA sizes; pkcs15-sc-hsm.c `curves[]`, the twisted brainpool curves since OpenSC 0.27).
# CardContact: "Domain parameter for the elliptic curve can be chosen arbitrarily during key
# generation"; the emulator takes OpenSC's named curves only (docs/emulator.md).
SUPPORTED_CURVES = (
    "secp192r1",
    "secp256r1",
    "secp384r1",
    "secp521r1",
    "brainpoolP256r1",
    "brainpoolP384r1",
    "brainpoolP512r1",
    "secp256k1",
    "brainpoolP192r1",
    "brainpoolP224r1",
    "brainpoolP320r1",
    "secp192k1",
    "brainpoolP192t1",
    "brainpoolP224t1",
    "brainpoolP256t1",
    "brainpoolP320t1",
    "brainpoolP384t1",
    "brainpoolP512t1",
)
SUPPORTED_RSA_BITS = (1024, 1536, 2048, 3072, 4096)
RSA_EXPONENT = 65537
TAG_KEY_SIZE = 0x02  # RSA modulus bits inside GAKP's 7F49
_PICO_EXTRAS = {0x90, 0x91, 0x92}  # use counter, allowed algorithms, key domain
_GAKP_TAGS = {p.TAG_CV_CPI, p.TAG_CV_CAR, p.TAG_CV_PUBLIC_KEY, p.TAG_CV_CHR, p.TAG_CV_OUTER_CAR}
_KEY_OBJECT_OVERHEAD = 16  # FID, key type, use counter, algorithm list: a guess, see eeprom_bytes


class KeyOperationError(ValueError):
    """A key operation the applet refuses; `sw` is the status word to answer."""

    sw: int = p.SW.WRONG_DATA


class MalformedKeyDataError(KeyOperationError):
    sw = p.SW.WRONG_DATA


class UnsupportedKeyError(KeyOperationError):
    sw = p.SW.FUNCTION_NOT_SUPPORTED


class AlgorithmNotSupportedError(KeyOperationError):
    sw = p.SW.FUNCTION_NOT_SUPPORTED


class WrongInputError(KeyOperationError):
    sw = p.SW.WRONG_DATA


class KeyStateError(ValueError):
    """A stored key entry is corrupt or inconsistent."""


# ---------------------------------------------------------------------------------------------
# Stored key


@dataclass(frozen=True)
class StoredKey:
    """A private key as the applet keeps it; PKCS#8 DER is the persisted form."""

    pkcs8: bytes

    @classmethod
    def from_private_key(cls, key: PrivateKey) -> StoredKey:
        if isinstance(key, weierstrass.PrivateKey):
            return cls(key.to_pkcs8())
        return cls(
            key.private_bytes(
                serialization.Encoding.DER,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )

    @functools.cached_property
    def private_key(self) -> PrivateKey:
        if weierstrass.curve_of_pkcs8(self.pkcs8) is not None:
            try:
                return weierstrass.load_pkcs8(self.pkcs8)
            except ValueError as exc:
                raise KeyStateError(f"stored key is not a PKCS#8 EC key: {exc}") from exc
        try:
            # The state file is checksummed and holds only keys we generated: skip OpenSSL's
            # RSA consistency check, which costs ~25 ms per RSA-2048 key at every token open.
            key = serialization.load_der_private_key(
                self.pkcs8, password=None, unsafe_skip_rsa_key_validation=True
            )
        except (ValueError, TypeError) as exc:
            raise KeyStateError(f"stored key is not a PKCS#8 key: {exc}") from exc
        if isinstance(key, ec.EllipticCurvePrivateKey):
            if key.curve.name not in SUPPORTED_CURVES:
                raise KeyStateError(f"stored key on unsupported curve {key.curve.name}")
            return key
        if isinstance(key, rsa.RSAPrivateKey):
            return key
        raise KeyStateError(f"stored key of unsupported type {type(key).__name__}")

    @property
    def kind(self) -> KeyKind:
        return "rsa" if isinstance(self.private_key, rsa.RSAPrivateKey) else "ec"

    @property
    def curve(self) -> str | None:
        key = self.private_key
        if isinstance(key, weierstrass.PrivateKey):
            return key.domain.name
        return key.curve.name if isinstance(key, ec.EllipticCurvePrivateKey) else None

    @property
    def bits(self) -> int:
        return self.private_key.key_size

    def eeprom_bytes(self) -> int:
        """Bytes of token EEPROM the key object takes (the applet's storage budget).

        A model, not a measurement: what the card must keep to use the key. EC: private
        scalar + public point; RSA: CRT parts p, q, dP, dQ, qInv + modulus + exponent; plus a
        fixed object header. P-256: 113, RSA-2048: 916, RSA-3072: 1364. The CV request (CExx)
        and PRKD (C4xx) are separate files the applet counts itself.
        """
        key = self.private_key
        if self.curve is not None:
            domain = cvc.CURVES[self.curve]
            return domain.order_bytes + 1 + 2 * domain.field_bytes + _KEY_OBJECT_OVERHEAD
        k = (key.key_size + 7) // 8
        return 5 * (k // 2) + k + 4 + _KEY_OBJECT_OVERHEAD

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form; kind/curve/bits are for people reading the state file."""
        return {
            "kind": self.kind,
            "curve": self.curve,
            "bits": self.bits,
            "pkcs8": self.pkcs8.hex(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StoredKey:
        try:
            key = cls(bytes.fromhex(data["pkcs8"]))
            described = (data["kind"], data["curve"], data["bits"])
        except (KeyError, TypeError, ValueError) as exc:
            raise KeyStateError(f"corrupt key entry: {exc}") from exc
        if described != (key.kind, key.curve, key.bits):
            raise KeyStateError(
                f"key entry says {described}, key is {(key.kind, key.curve, key.bits)}"
            )
        return key

    def to_bytes(self) -> bytes:
        return self.pkcs8

    @classmethod
    def from_bytes(cls, data: bytes) -> StoredKey:
        key = cls(bytes(data))
        _ = key.private_key  # validate now, not at first use
        return key


# ---------------------------------------------------------------------------------------------
# GENERATE ASYMMETRIC KEY PAIR


@dataclass(frozen=True)
class KeyTemplate:
    """GAKP data, decoded."""

    cpi: int
    car: str | None
    chr: str | None
    oid: str
    curve: cvc.EcDomain | None  # EC keys
    rsa_bits: int | None  # RSA keys
    rsa_exponent: int | None
    outer_car: str | None


@dataclass(frozen=True)
class OuterSigner:
    """The key that signs the authenticated request (GAKP P2; 00 = the device key)."""

    private_key: cvc.PrivateKey
    car: str  # default outer CAR: the signer's CHR (the device CHR for key 00)
    oid: str = cvc.OID_TA_ECDSA_SHA256


@dataclass(frozen=True)
class GeneratedKey:
    key: StoredKey
    request: bytes  # the GAKP answer, also what the applet stores in CExx
    chr: str


def parse_key_template(body: bytes) -> KeyTemplate:
    """Decode GAKP data; MalformedKeyDataError / UnsupportedKeyError as documented above."""
    try:
        items = tlv.decode_all(body)
        idx = tlv.require_unique(items, "GAKP data")
        unknown = set(idx) - _GAKP_TAGS - _PICO_EXTRAS
        if unknown:
            raise MalformedKeyDataError(f"unexpected tag(s) {sorted(unknown)} in GAKP data")
        if p.TAG_CV_PUBLIC_KEY not in idx:
            raise MalformedKeyDataError("GAKP data has no public key template 7F49")
        cpi = idx[p.TAG_CV_CPI].value if p.TAG_CV_CPI in idx else b"\x00"
        if len(cpi) != 1:
            raise MalformedKeyDataError("CPI must be one byte")

        def ref(tag: int, what: str) -> str | None:
            return cvc.decode_reference(idx[tag].value, what) if tag in idx else None

        key_idx = tlv.require_unique(idx[p.TAG_CV_PUBLIC_KEY].children(), "7F49")
        oid_item = key_idx.get(p.TAG_OID)
        if oid_item is None:
            raise MalformedKeyDataError("7F49 has no algorithm OID")
        oid = cvc.decode_oid(oid_item.value)
        scheme = cvc.algorithm(oid).scheme
        curve, bits, exponent = (
            (_ec_template(key_idx), None, None)
            if scheme == "ecdsa"
            else (None, *_rsa_template(key_idx))
        )
        return KeyTemplate(
            cpi[0],
            ref(p.TAG_CV_CAR, "CAR"),
            ref(p.TAG_CV_CHR, "CHR"),
            oid,
            curve,
            bits,
            exponent,
            ref(p.TAG_CV_OUTER_CAR, "outer CAR"),
        )
    except cvc.UnsupportedAlgorithmError as exc:
        raise UnsupportedKeyError(str(exc)) from exc
    except (tlv.TlvError, cvc.CvcError) as exc:
        raise MalformedKeyDataError(str(exc)) from exc


def _ec_template(idx: dict[int, tlv.Tlv]) -> cvc.EcDomain:
    extra = set(idx) - {p.TAG_OID, 0x81, 0x82, 0x83, 0x84, 0x85, 0x87}
    if extra:
        raise MalformedKeyDataError(f"unexpected tag(s) {sorted(extra)} in EC key template")
    missing = [t for t in (0x81, 0x82, 0x83, 0x84, 0x85) if t not in idx]
    if missing:
        raise MalformedKeyDataError(f"EC domain parameter(s) {missing} missing")

    def num(tag: int) -> int:
        if not idx[tag].value:
            raise MalformedKeyDataError(f"EC parameter {tag:X} empty")
        return int.from_bytes(idx[tag].value, "big")

    domain = cvc.match_domain(
        num(0x81),
        num(0x82),
        num(0x83),
        idx[0x84].value,
        num(0x85),
        num(0x87) if 0x87 in idx else None,
    )
    if domain.name not in SUPPORTED_CURVES:
        raise UnsupportedKeyError(f"curve {domain.name} not supported")
    return domain


def _rsa_template(idx: dict[int, tlv.Tlv]) -> tuple[int, int]:
    extra = set(idx) - {p.TAG_OID, TAG_KEY_SIZE, 0x82}
    if extra:
        raise MalformedKeyDataError(f"unexpected tag(s) {sorted(extra)} in RSA key template")
    size = idx.get(TAG_KEY_SIZE)
    if size is None or not 1 <= len(size.value) <= 2:
        raise MalformedKeyDataError("RSA key size 02 missing or not 1..2 bytes")
    bits = int.from_bytes(size.value, "big")
    exponent = int.from_bytes(idx[0x82].value, "big") if 0x82 in idx else RSA_EXPONENT
    if 0x82 in idx and not 1 <= len(idx[0x82].value) <= 4:
        raise MalformedKeyDataError("RSA exponent 82 not 1..4 bytes")
    if bits not in SUPPORTED_RSA_BITS:
        raise UnsupportedKeyError(f"RSA-{bits} not supported (only {SUPPORTED_RSA_BITS})")
    if exponent != RSA_EXPONENT:
        raise UnsupportedKeyError(f"RSA exponent {exponent} not supported (only 65537)")
    return bits, exponent


def generate_from_cv_body(
    body: bytes, chr_fallback: str, outer: OuterSigner | None = None
) -> GeneratedKey:
    """GAKP: parse `body`, make the key pair, and build the CV request the card answers.

    `chr_fallback` is the CHR when the body has no 5F20. `outer` signs an authenticated
    request (67); its CAR is the body's `45` if present, else `outer.car`. Without `outer`
    the answer is the plain self-signed 7F21.
    """
    template = parse_key_template(body)
    private: PrivateKey
    public: cvc.CvPublicKey
    try:
        if template.curve is not None and not template.curve.native:
            # An EC template always names an ECDSA OID (parse_key_template chose it by OID).
            private = weierstrass.generate(template.curve)
            public = cvc.CvPublicKey(template.oid, template.curve, private.public_point)
        else:
            if template.curve is not None:
                private = ec.generate_private_key(template.curve.curve())
            else:
                assert template.rsa_bits is not None and template.rsa_exponent is not None
                private = rsa.generate_private_key(template.rsa_exponent, template.rsa_bits)
            public = cvc.CvPublicKey.from_cryptography(private.public_key(), template.oid)
        chr_ = template.chr or chr_fallback
        body_ = cvc.CvBody(car=template.car, public_key=public, chr=chr_, cpi=template.cpi)
        request = cvc.issue(body_, private, template.oid)
        if outer is None:
            answer = request.raw
        else:
            outer_car = template.outer_car or outer.car
            answer = cvc.authenticate_request(request, outer.private_key, outer.oid, outer_car).raw
    except cvc.CvcError as exc:  # an OID of the wrong family for the key, an odd CHR
        raise MalformedKeyDataError(str(exc)) from exc
    return GeneratedKey(StoredKey.from_private_key(private), answer, chr_)


# ---------------------------------------------------------------------------------------------
# SIGN and DECIPHER

_ECDSA_HASHES: dict[int, type[hashes.HashAlgorithm]] = {
    p.ALGO_ECDSA_SHA1: hashes.SHA1,
    p.ALGO_ECDSA_SHA224: hashes.SHA224,
    p.ALGO_ECDSA_SHA256: hashes.SHA256,
    p.ALGO_ECDSA_SHA384: hashes.SHA384,
    p.ALGO_ECDSA_SHA512: hashes.SHA512,
}
_PKCS1_HASHES: dict[int, type[hashes.HashAlgorithm]] = {
    p.ALGO_RSA_PKCS1_SHA1: hashes.SHA1,
    p.ALGO_RSA_PKCS1_SHA256: hashes.SHA256,
    p.ALGO_RSA_PKCS1_SHA384: hashes.SHA384,
    p.ALGO_RSA_PKCS1_SHA512: hashes.SHA512,
}
_PSS_HASHES: dict[int, type[hashes.HashAlgorithm]] = {
    p.ALGO_RSA_PSS_SHA1: hashes.SHA1,
    p.ALGO_RSA_PSS_SHA256: hashes.SHA256,
    p.ALGO_RSA_PSS_SHA384: hashes.SHA384,
    p.ALGO_RSA_PSS_SHA512: hashes.SHA512,
}
# A precomputed hash is recognised by its length (algorithms 70 and 40).
_HASH_BY_LENGTH: dict[int, type[hashes.HashAlgorithm]] = {
    20: hashes.SHA1,
    28: hashes.SHA224,
    32: hashes.SHA256,
    48: hashes.SHA384,
    64: hashes.SHA512,
}
EC_SIGN_ALGORITHMS = frozenset({p.ALGO_ECDSA_RAW, *_ECDSA_HASHES})
# 70 takes a hash computed outside, of any length up to SHA-512's: OpenSC sends SHA-384 and
# SHA-512 hashes cut to the key's field length (pkcs15-sec.c, PKCS#11 v2.30 §6.3.1).
ECDSA_RAW_MAX = 64
RSA_SIGN_ALGORITHMS = frozenset(
    {p.ALGO_RSA_RAW, p.ALGO_RSA_PKCS1_DIGESTINFO, p.ALGO_RSA_PSS, *_PKCS1_HASHES, *_PSS_HASHES}
)
RSA_DECIPHER_ALGORITHMS = frozenset(
    {p.ALGO_RSA_DECRYPT_RAW, p.ALGO_RSA_DECRYPT_PKCS1, p.ALGO_RSA_DECRYPT_OAEP}
)
EC_DECIPHER_ALGORITHMS = frozenset({p.ALGO_ECDH})


def _hash_for(data: bytes) -> hashes.HashAlgorithm:
    try:
        return _HASH_BY_LENGTH[len(data)]()
    except KeyError:
        raise WrongInputError(f"{len(data)} bytes is not the length of a supported hash") from None


def _pss(hash_alg: hashes.HashAlgorithm) -> padding.PSS:
    # Salt as long as the hash: the PKCS#11 convention OpenSC uses for CKM_*_PKCS_PSS.
    return padding.PSS(mgf=padding.MGF1(hash_alg), salt_length=hash_alg.digest_size)


def sign(key: StoredKey, algo: int, data: bytes) -> bytes:
    """SIGN (80 68): ECDSA answers DER, RSA the k-byte signature. Errors as documented."""
    private = key.private_key
    if isinstance(private, (ec.EllipticCurvePrivateKey, weierstrass.PrivateKey)):
        if algo not in EC_SIGN_ALGORITHMS:
            raise AlgorithmNotSupportedError(f"algorithm {algo:02X} not for an EC key")
        if algo != p.ALGO_ECDSA_RAW:
            hasher = hashes.Hash(_ECDSA_HASHES[algo]())
            hasher.update(data)
            return _ecdsa(private, hasher.finalize())
        if not 1 <= len(data) <= ECDSA_RAW_MAX:
            raise WrongInputError(f"{len(data)} bytes is not a hash: 1 to {ECDSA_RAW_MAX} bytes")
        return _ecdsa(private, data)
    if algo not in RSA_SIGN_ALGORITHMS:
        raise AlgorithmNotSupportedError(f"algorithm {algo:02X} not for an RSA key")
    if algo == p.ALGO_RSA_RAW:
        return _rsa_raw(private, data)
    if algo == p.ALGO_RSA_PKCS1_DIGESTINFO:
        return _rsa_raw(private, _emsa_pkcs1_v15(data, _modulus_bytes(private)))
    if algo in _PKCS1_HASHES:
        return private.sign(data, padding.PKCS1v15(), _PKCS1_HASHES[algo]())
    if algo == p.ALGO_RSA_PSS:
        hash_alg = _hash_for(data)
        return private.sign(data, _pss(hash_alg), utils.Prehashed(hash_alg))
    hash_alg = _PSS_HASHES[algo]()
    return private.sign(data, _pss(hash_alg), hash_alg)


def _ecdsa(private: ec.EllipticCurvePrivateKey | weierstrass.PrivateKey, digest: bytes) -> bytes:
    """ECDSA over `digest` (its leftmost bits up to the order's length), answered in DER."""
    if isinstance(private, ec.EllipticCurvePrivateKey):
        if len(digest) in _HASH_BY_LENGTH:
            return private.sign(digest, ec.ECDSA(utils.Prehashed(_HASH_BY_LENGTH[len(digest)]())))
        # OpenSC cuts a hash the card does not compute to the field length (SHA-384 for a
        # 192-bit key is 24 bytes), a length `Prehashed` refuses: the same ECDSA, in pure Python.
        domain = cvc.domain_of(private.curve)
        private = weierstrass.PrivateKey(domain, private.private_numbers().private_value)
    return utils.encode_dss_signature(*private.sign_digest(digest))


def decipher(key: StoredKey, algo: int, data: bytes) -> bytes:
    """DECIPHER (80 62). RSA: 21 raw (answers the k-byte block), 22 PKCS#1 v1.5 and 23 OAEP
    with SHA-256 (answer the message). EC: 80 ECDH with an uncompressed point (answers 04 ||
    the shared x coordinate)."""
    private = key.private_key
    if isinstance(private, (ec.EllipticCurvePrivateKey, weierstrass.PrivateKey)):
        if algo not in EC_DECIPHER_ALGORITHMS:
            raise AlgorithmNotSupportedError(f"decipher algorithm {algo:02X} not for an EC key")
        return _ecdh(private, data)
    if algo not in RSA_DECIPHER_ALGORITHMS:
        raise AlgorithmNotSupportedError(f"decipher algorithm {algo:02X} not for an RSA key")
    if algo == p.ALGO_RSA_DECRYPT_RAW:
        return _rsa_raw(private, data)
    if len(data) != _modulus_bytes(private):
        raise WrongInputError("cryptogram length differs from the modulus length")
    scheme: padding.AsymmetricPadding = (
        padding.PKCS1v15()
        if algo == p.ALGO_RSA_DECRYPT_PKCS1
        else padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)
    )
    try:
        # OpenSSL >= 3.2 does implicit rejection for PKCS#1 v1.5: bad padding yields a
        # pseudo-random message rather than an error, so no padding oracle; else 6A80.
        return private.decrypt(data, scheme)
    except ValueError:
        raise WrongInputError("decryption failed") from None


def _ecdh(private: ec.EllipticCurvePrivateKey | weierstrass.PrivateKey, point: bytes) -> bytes:
    if point[:1] != b"\x04":
        raise WrongInputError("ECDH input must be an uncompressed point (04 || x || y)")
    if isinstance(private, weierstrass.PrivateKey):
        try:
            return b"\x04" + private.exchange(point)
        except weierstrass.PointError:
            raise WrongInputError("ECDH input is not a point on the key's curve") from None
    try:
        peer = ec.EllipticCurvePublicKey.from_encoded_point(private.curve, point)
    except ValueError:
        raise WrongInputError("ECDH input is not a point on the key's curve") from None
    return b"\x04" + private.exchange(ec.ECDH(), peer)


def _modulus_bytes(key: rsa.RSAPrivateKey) -> int:
    return (key.key_size + 7) // 8


def _emsa_pkcs1_v15(digest_info: bytes, k: int) -> bytes:
    """EM = 00 01 FF..FF 00 || T (RFC 8017 §9.2), T being the caller's DigestInfo."""
    if not digest_info or len(digest_info) > k - 11:
        raise WrongInputError(
            f"DigestInfo of {len(digest_info)} bytes does not fit {k}-byte modulus"
        )
    return b"\x00\x01" + b"\xff" * (k - 3 - len(digest_info)) + b"\x00" + digest_info


def _rsa_raw(key: rsa.RSAPrivateKey, data: bytes) -> bytes:
    """m^d mod n, by CRT. `cryptography` has no raw RSA; its key supplies the numbers."""
    k = _modulus_bytes(key)
    numbers = key.private_numbers()
    n = numbers.public_numbers.n
    m = int.from_bytes(data, "big")
    if len(data) != k or m >= n:
        raise WrongInputError("raw RSA input must be k bytes and less than the modulus")
    m1 = pow(m, numbers.dmp1, numbers.p)
    m2 = pow(m, numbers.dmq1, numbers.q)
    h = (numbers.iqmp * (m1 - m2)) % numbers.p
    return (m2 + h * numbers.q).to_bytes(k, "big")
