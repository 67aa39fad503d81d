"""Emulated device identity: EF.C_DevAut chains to the test root; tampering is caught."""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from hsm_lifecycle.emulator import identity
from hsm_lifecycle import cvc, tlv

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def device() -> identity.DeviceIdentity:
    return identity.manufacture_identity(1234567, today=dt.date(2026, 3, 1))


def _signature_offsets(c_devaut: bytes) -> list[int]:
    """Offset of the first signature byte of each certificate in EF.C_DevAut."""
    offsets, pos = [], 0
    while pos < len(c_devaut):
        cert, end = tlv.decode_one(c_devaut, pos)
        sig = cert.children()[1]
        offsets.append(pos + cert.raw.index(sig.raw) + len(sig.raw) - len(sig.value))
        pos = end
    return offsets


def test_chain_verifies_to_the_test_root(device: identity.DeviceIdentity) -> None:
    chain = cvc.verify_c_devaut(device.c_devaut, cvc.load_test_root())
    assert chain.device_chr == device.chr == "UTEM123456700001"
    assert chain.serial == device.serial == "UTEM1234567"
    assert chain.dica_chr == identity.DICA_CHR and chain.root_chr == "UTSRCACC100001"
    assert chain.curve.name == "brainpoolP256r1"
    assert (
        chain.device_public_key.public_numbers() == device.device_key.public_key().public_numbers()
    )
    assert chain.device.body.chat == cvc.Chat(cvc.OID_CHAT_SMARTCARD_HSM, b"\x00")
    assert chain.device.public_key.domain is None  # only the point, like a real token
    assert (chain.device.body.effective, chain.device.body.expiry) == (
        dt.date(2026, 3, 1),
        dt.date(2031, 3, 1),
    )


def test_same_shape_as_a_real_token(device: identity.DeviceIdentity) -> None:
    real = (Path(__file__).parent / "vectors" / "nitrokey-DENK0404144-2f02.bin").read_bytes()
    ours = cvc.parse_cv_objects(device.c_devaut)
    theirs = cvc.parse_cv_objects(real)
    assert len(device.c_devaut) == len(real) == 464
    assert [len(o.raw) for o in ours] == [len(o.raw) for o in theirs] == [232, 232]


def test_not_accepted_by_the_real_root(device: identity.DeviceIdentity) -> None:
    with pytest.raises(cvc.ChainError, match="not the root DESRCACC100001"):
        cvc.verify_c_devaut(device.c_devaut, cvc.load_cardcontact_root())


@pytest.mark.parametrize(
    ("which", "who"),
    [
        (0, "device UTEM123456700001 not signed by DICA"),
        (1, "DICA UTDICA0100001 not signed by root"),
    ],
)
@pytest.mark.parametrize("delta", [0, 31, 63])  # first byte of r, last of r, last of s
def test_flipped_signature_byte_is_rejected(
    device: identity.DeviceIdentity, which: int, who: str, delta: int
) -> None:
    blob = bytearray(device.c_devaut)
    blob[_signature_offsets(device.c_devaut)[which] + delta] ^= 0x01
    with pytest.raises(cvc.ChainError, match=who):
        cvc.verify_c_devaut(bytes(blob), cvc.load_test_root())


def test_wrong_car_is_rejected_by_name(device: identity.DeviceIdentity) -> None:
    # Same length, so the framing stays valid and only the linkage check can object.
    forged = device.c_devaut.replace(b"\x42\x0dUTDICA0100001", b"\x42\x0dUTDICA0200001", 1)
    assert forged != device.c_devaut
    with pytest.raises(
        cvc.ChainError, match="names issuer UTDICA0200001, not the DICA UTDICA0100001"
    ):
        cvc.verify_c_devaut(forged, cvc.load_test_root())


def test_a_device_cert_signed_by_another_dica_is_rejected(device: identity.DeviceIdentity) -> None:
    impostor_key = ec.generate_private_key(cvc.CURVES["brainpoolP256r1"].curve())
    other = identity.Manufacturer(impostor_key, identity.Manufacturer.test().dica)
    forged = identity.manufacture_identity(7, manufacturer=other)
    with pytest.raises(cvc.ChainError, match="not signed by DICA"):
        cvc.verify_c_devaut(forged.c_devaut, cvc.load_test_root())


@pytest.mark.parametrize(
    ("mangle", "reason"),
    [
        (lambda b: b[:232], "two certificates"),
        (lambda b: b[232:] + b[:232], "names issuer"),  # order swapped
        (lambda b: b + b[:232], "two certificates"),
        (lambda b: b + b"\x00", "undecodable"),
        (lambda b: b[:-1], "undecodable"),
        (lambda b: b"", "undecodable"),
    ],
)
def test_misshapen_c_devaut_is_rejected(
    device: identity.DeviceIdentity, mangle, reason: str
) -> None:
    with pytest.raises(cvc.ChainError, match=reason):
        cvc.verify_c_devaut(mangle(device.c_devaut), cvc.load_test_root())


def test_each_manufacture_is_a_new_identity_under_the_same_root() -> None:
    a, b = identity.manufacture_identity(), identity.manufacture_identity(42)
    assert a.device_key_der != b.device_key_der
    assert b.chr == "UTEM000004200001" and len(a.chr) == 16
    assert a.chr.startswith("UTEM") and a.chr.endswith("00001") and a.chr[4:11].isdigit()
    for ident in (a, b):
        assert cvc.verify_c_devaut(ident.c_devaut, cvc.load_test_root()).serial == ident.serial
    again = identity.manufacture_identity(42)  # the portal's new identity, same serial (R14)
    assert again.serial == b.serial and again.c_devaut != b.c_devaut


@pytest.mark.parametrize("bad", [-1, 10**7])
def test_serial_number_range(bad: int) -> None:
    with pytest.raises(identity.IdentityError):
        identity.manufacture_identity(bad)


def test_state_round_trip_and_corruption(device: identity.DeviceIdentity) -> None:
    restored = identity.DeviceIdentity.from_dict(json.loads(json.dumps(device.to_dict())))
    assert restored == device
    other = identity.manufacture_identity(1)
    for broken in (
        {**device.to_dict(), "device_key": other.device_key_der.hex()},  # key ≠ certificate
        {**device.to_dict(), "chr": "UTEM999999900001"},
        {**device.to_dict(), "c_devaut": "7F21"},
        {k: v for k, v in device.to_dict().items() if k != "chr"},
        {**device.to_dict(), "device_key": 5},
    ):
        with pytest.raises(identity.IdentityError):
            identity.DeviceIdentity.from_dict(broken)


def test_challenge_signature(device: identity.DeviceIdentity) -> None:
    chain = cvc.verify_c_devaut(device.c_devaut, cvc.load_test_root())
    challenge = bytes(range(16))
    sig = identity.sign_challenge(device.device_key, challenge)
    assert identity.verify_challenge(chain.device_public_key, challenge, sig)
    assert not identity.verify_challenge(chain.device_public_key, challenge[::-1], sig)
    other = identity.manufacture_identity(3).device_key
    assert not identity.verify_challenge(
        chain.device_public_key, challenge, identity.sign_challenge(other, challenge)
    )
    with pytest.raises(identity.IdentityError):
        identity.sign_challenge(device.device_key, b"short")


def test_shipped_test_pki_is_what_the_script_makes() -> None:
    spec = importlib.util.spec_from_file_location(
        "make_test_pki", ROOT / "emulator" / "data" / "make_test_pki.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main(["--check"]) == 0
    pki = module.make()
    assert pki.root.raw == cvc.load_test_root().raw
    assert pki.dica.raw == identity.Manufacturer.test().dica.raw
    cvc.verify_self_signed(pki.root)
    assert (
        cvc.verify_certificate(pki.dica, pki.root.public_key, pki.root.public_key.domain).name
        == "brainpoolP256r1"
    )
    shipped = serialization.load_pem_private_key(
        (ROOT / "emulator/data/test-dica-key.pem").read_bytes(), None
    )
    assert shipped.public_key().public_numbers() == pki.dica_key.public_key().public_numbers()


def test_test_pki_readme_says_the_keys_are_test_keys() -> None:
    text = (ROOT / "emulator" / "data" / "README.md").read_text()
    assert "TEST" in text and "PUBLIC" in text.upper() and "test-dica-key.pem" in text
