"""Device identity of an emulated token: key CC00 and EF.C_DevAut (2F02), issued by the test DICA.

The emulator plays manufacturer with the shipped TEST PKI (emulator/data/README.md): a fresh
brainpoolP256r1 device key, and a device CVC signed by the test DICA, followed by the DICA CVC,
exactly the shape of a real token's 2F02 (protocol digest §5). Manufacturing and the firmware
update portal (R14: a new identity under the same root) both call `manufacture_identity`.
"""

from __future__ import annotations

import datetime as dt
import functools
import secrets
from dataclasses import dataclass
from importlib import resources
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from hsm_lifecycle import cvc

DEVICE_CHR_PREFIX = "UTEM"  # "UT" country code of test references, "EM" emulator
DEVICE_SEQUENCE = "00001"
SERIAL_DIGITS = 7
DEVICE_VALIDITY_YEARS = 5
DEVICE_CURVE = "brainpoolP256r1"  # inherited from the root, like the real token's
DICA_CHR = "UTDICA0100001"
# A root and DICA no one publishes: where a faulty firmware loader issues identities from
# (the update-under-other-root fault). Made afresh per process; nothing trusts them.
OTHER_ROOT_CHR = "UTSRCACC900001"
OTHER_DICA_CHR = "UTDICA0900001"
CHALLENGE_MIN, CHALLENGE_MAX = 8, 1024


class IdentityError(ValueError):
    """An identity cannot be made or restored (bad serial number, corrupt state)."""


@dataclass(frozen=True)
class Manufacturer:
    """The issuing side: the DICA key and certificate device CVCs are signed with."""

    dica_key: ec.EllipticCurvePrivateKey
    dica: cvc.CVCertificate

    @classmethod
    def test(cls) -> Manufacturer:
        """The shipped TEST DICA (emulator/data), issued by the test root UTSRCACC100001."""
        return _test_manufacturer()

    @classmethod
    def unpublished(cls) -> Manufacturer:
        """A DICA under a root no one publishes (OTHER_ROOT_CHR), for a faulty loader."""
        return _unpublished_manufacturer()

    def issue_device_certificate(
        self, public_key: ec.EllipticCurvePublicKey, chr_: str, effective: dt.date
    ) -> cvc.CVCertificate:
        expiry = _add_years(effective, DEVICE_VALIDITY_YEARS)
        if self.dica.body.expiry is not None:
            expiry = min(expiry, self.dica.body.expiry)
        body = cvc.CvBody(
            car=self.dica.chr,
            # Only the point (86): the curve is inherited from the issuer chain (§5).
            public_key=cvc.CvPublicKey.from_cryptography(
                public_key, cvc.OID_TA_ECDSA_SHA256, include_domain=False
            ),
            chr=chr_,
            chat=cvc.Chat(cvc.OID_CHAT_SMARTCARD_HSM, bytes([cvc.ROLE_TERMINAL])),
            effective=effective,
            expiry=expiry,
        )
        return cvc.issue(body, self.dica_key, self.dica.public_key.oid)


@functools.cache
def _test_manufacturer() -> Manufacturer:
    data = resources.files("hsm_lifecycle.emulator").joinpath("data")
    key = serialization.load_pem_private_key(
        data.joinpath("test-dica-key.pem").read_bytes(), password=None
    )
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise IdentityError("test DICA key is not an EC key")
    return Manufacturer(
        key, cvc.CVCertificate.decode(data.joinpath(f"{DICA_CHR}.cvc").read_bytes())
    )


@functools.cache
def _unpublished_manufacturer() -> Manufacturer:
    oid = cvc.OID_TA_ECDSA_SHA256
    curve = cvc.CURVES[DEVICE_CURVE].curve()
    root_key, dica_key = ec.generate_private_key(curve), ec.generate_private_key(curve)
    today = dt.date.today()
    body = cvc.CvBody(
        car=OTHER_ROOT_CHR,
        # The domain travels with the DICA: no one has the root that would carry it.
        public_key=cvc.CvPublicKey.from_cryptography(dica_key.public_key(), oid),
        chr=OTHER_DICA_CHR,
        chat=cvc.Chat(cvc.OID_CHAT_SMARTCARD_HSM, bytes([cvc.ROLE_DV])),
        effective=today,
        expiry=_add_years(today, 20),
    )
    return Manufacturer(dica_key, cvc.issue(body, root_key, oid))


def new_device_key_der() -> bytes:
    """PKCS#8 DER of a fresh key on the device curve, with no certificate naming it."""
    return _der(ec.generate_private_key(cvc.CURVES[DEVICE_CURVE].curve()))


def _der(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _add_years(day: dt.date, years: int) -> dt.date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February
        return day.replace(year=day.year + years, day=28)


@dataclass(frozen=True)
class DeviceIdentity:
    """What a token keeps across INITIALIZE (R08): the device key and EF.C_DevAut."""

    device_key_der: bytes  # PKCS#8 DER of key CC00
    c_devaut: bytes  # EF 2F02: device CVC || DICA CVC
    chr: str

    @property
    def serial(self) -> str:
        """As OpenSC shows it: the CHR minus its last 5 characters."""
        return cvc.serial_from_chr(self.chr)

    @functools.cached_property
    def device_key(self) -> ec.EllipticCurvePrivateKey:
        key = serialization.load_der_private_key(self.device_key_der, password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise IdentityError("device key is not an EC key")
        return key

    def to_dict(self) -> dict[str, str]:
        """JSON-able form for the emulator's state file."""
        return {
            "chr": self.chr,
            "device_key": self.device_key_der.hex(),
            "c_devaut": self.c_devaut.hex(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DeviceIdentity:
        """Restore from `to_dict`; IdentityError if the entry is corrupt or inconsistent."""
        try:
            identity = cls(
                bytes.fromhex(data["device_key"]), bytes.fromhex(data["c_devaut"]), data["chr"]
            )
            certificate = cvc.parse_cv_objects(identity.c_devaut)[0]
            public = identity.device_key.public_key()
        except (KeyError, TypeError, ValueError) as exc:
            raise IdentityError(f"corrupt device identity: {exc}") from exc
        if not isinstance(certificate, cvc.CVCertificate) or certificate.chr != identity.chr:
            raise IdentityError("device identity: CHR does not match EF.C_DevAut")
        if certificate.public_key.point != public.public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        ):
            raise IdentityError("device identity: key does not match its certificate")
        return identity


def device_chr(serial_number: int) -> str:
    """UTEM + 7 digits + 00001: 16 characters, the length of a real token's CHR."""
    if not 0 <= serial_number < 10**SERIAL_DIGITS:
        raise IdentityError(f"serial number must be 0..{10**SERIAL_DIGITS - 1}")
    return f"{DEVICE_CHR_PREFIX}{serial_number:0{SERIAL_DIGITS}d}{DEVICE_SEQUENCE}"


def manufacture_identity(
    serial_number: int | None = None,
    *,
    manufacturer: Manufacturer | None = None,
    today: dt.date | None = None,
) -> DeviceIdentity:
    """A fresh device key and EF.C_DevAut chaining to the test root (or `manufacturer`'s).

    `serial_number` picks the CHR's digits (random if None); the portal passes the token's
    current one to keep its serial across a firmware update, or None for a new one.
    """
    issuer = manufacturer or Manufacturer.test()
    chr_ = device_chr(
        secrets.randbelow(10**SERIAL_DIGITS) if serial_number is None else serial_number
    )
    key = ec.generate_private_key(cvc.CURVES[DEVICE_CURVE].curve())
    cert = issuer.issue_device_certificate(key.public_key(), chr_, today or dt.date.today())
    return DeviceIdentity(_der(key), cert.raw + issuer.dica.raw, chr_)


def sign_challenge(device_key: ec.EllipticCurvePrivateKey, challenge: bytes) -> bytes:
    """Device authentication for the portal: ECDSA-SHA-256 over the challenge, DER.

    The same answer SIGN 73 with key 00 would give.
    """
    if not CHALLENGE_MIN <= len(challenge) <= CHALLENGE_MAX:
        raise IdentityError(f"challenge must be {CHALLENGE_MIN}..{CHALLENGE_MAX} bytes")
    return device_key.sign(challenge, ec.ECDSA(hashes.SHA256()))


def verify_challenge(
    public_key: ec.EllipticCurvePublicKey, challenge: bytes, signature: bytes
) -> bool:
    """The portal's check of `sign_challenge`, with the key from a verified DeviceChain."""
    try:
        public_key.verify(signature, challenge, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return False
    return True
