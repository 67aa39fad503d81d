"""OpenSC, unchanged, against the emulator behind pcscd: its own PKCS#11 self-test, keygen +
sign (+ decipher) for every key type the device documents, and DKEK key backup with
sc-hsm-tool. Fixtures and helpers are test_pcsc_opensc's.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from cryptography.hazmat.primitives import serialization

from test_pcsc_opensc import PIN, Tools, _sign, initialized, tools  # noqa: F401  (fixtures)

pytestmark = [pytest.mark.pcscd, pytest.mark.opensc]


def test_pkcs11_tool_self_test_passes_with_an_rsa_2048_key(initialized: Tools) -> None:
    initialized.pkcs11("--login", "--pin", PIN, "--keypairgen", "--key-type", "rsa:2048", "--id", "01",
                       "--label", "rsa-key")
    done = initialized.pkcs11("--test", "--login", "--pin", PIN, check=False)
    out = done.stdout + done.stderr
    assert done.returncode == 0, out
    assert "No errors" in out, out


def _public_key(tools: Tools, key_id: str) -> ec.EllipticCurvePublicKey | rsa.RSAPublicKey:
    # pkcs15-tool, not pkcs11-tool --read-object: OpenSC 0.23's pkcs11-tool fails to build an
    # EC public key from a 49- or 97-byte point ("cannot create EVP_PKEY"), whatever the card.
    pem = tools.run("pkcs15-tool", "--reader", tools.reader, "--read-public-key", key_id).stdout
    key = serialization.load_pem_public_key(pem.encode())
    assert isinstance(key, (ec.EllipticCurvePublicKey, rsa.RSAPublicKey))
    return key


# Every key type OpenSC offers for the device that the emulator implements (docs/emulator.md).
EC_KEY_TYPES = ("secp192r1", "prime256v1", "secp384r1", "secp521r1", "brainpoolP256r1", "brainpoolP384r1",
                "brainpoolP512r1", "secp256k1")
RSA_BITS = (1024, 1536, 2048, 3072, 4096)


@pytest.mark.parametrize("curve", EC_KEY_TYPES)
def test_pkcs11_ec_keygen_sign_verify_for_every_curve(initialized: Tools, tmp_path: Path, curve: str) -> None:
    initialized.pkcs11("--login", "--pin", PIN, "--keypairgen", "--key-type", f"EC:{curve}", "--id", "11",
                       "--label", curve)
    message = tmp_path / "message.txt"
    message.write_bytes(f"signed with an emulated {curve} key".encode())
    signature = _sign(initialized, "11", "ECDSA-SHA256", message, tmp_path, "--signature-format", "openssl")
    key = _public_key(initialized, "11")
    expected = "secp256r1" if curve == "prime256v1" else curve
    assert isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == expected
    key.verify(signature, message.read_bytes(), ec.ECDSA(hashes.SHA256()))


@pytest.mark.parametrize("bits", RSA_BITS)
def test_pkcs11_rsa_keygen_sign_verify_decrypt_for_every_size(initialized: Tools, tmp_path: Path, bits: int) -> None:
    initialized.pkcs11("--login", "--pin", PIN, "--keypairgen", "--key-type", f"rsa:{bits}", "--id", "12",
                       "--label", f"rsa-{bits}")
    message = tmp_path / "message.txt"
    message.write_bytes(f"signed with an emulated RSA-{bits} key".encode())
    signature = _sign(initialized, "12", "SHA256-RSA-PKCS", message, tmp_path)
    key = _public_key(initialized, "12")
    assert isinstance(key, rsa.RSAPublicKey) and key.key_size == bits
    key.verify(signature, message.read_bytes(), padding.PKCS1v15(), hashes.SHA256())
    secret = b"a session key for the token"
    cryptogram = tmp_path / "cryptogram.bin"
    cryptogram.write_bytes(key.encrypt(secret, padding.PKCS1v15()))
    plain = tmp_path / "plain.bin"
    initialized.pkcs11("--login", "--pin", PIN, "--decrypt", "--id", "12", "--mechanism", "RSA-PKCS",
                       "--input-file", str(cryptogram), "--output-file", str(plain))
    assert plain.read_bytes() == secret
