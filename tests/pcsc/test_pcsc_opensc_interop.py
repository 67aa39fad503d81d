"""OpenSC, unchanged, against the emulator behind pcscd: its own PKCS#11 self-test, keygen +
sign (+ decipher) for every key type the device documents, and DKEK key backup with
sc-hsm-tool. Fixtures and helpers are test_pcsc_opensc's.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from cryptography.hazmat.primitives import serialization

from pcsc_support import Emulators
from test_pcsc_opensc import PIN, PKCS11_READERS, SO_PIN, Tools, _sign, initialized, tools  # noqa: F401
from hsm_lifecycle.emulator.vpcd import vpcd_readers
from hsm_lifecycle.protocol import VPCD_PORT

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
    # SHA-384 OpenSC hashes itself and sends cut to the field length (24 bytes for secp192r1).
    signature = _sign(initialized, "11", "ECDSA-SHA384", message, tmp_path, "--signature-format", "openssl")
    key.verify(signature, message.read_bytes(), ec.ECDSA(hashes.SHA384()))


# The curves the emulator computes in pure Python (OpenSC 0.23 knows these four; it has no name
# for the twisted brainpool curves, which only OpenSC 0.27 lists). OpenSSL verifies, through its
# command line: `cryptography` has no such curves.
PURE_EC_KEY_TYPES = ("brainpoolP192r1", "brainpoolP224r1", "brainpoolP320r1", "secp192k1")


def _openssl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["openssl", *args], capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("curve", PURE_EC_KEY_TYPES)
def test_pkcs11_ec_keygen_sign_verify_for_the_pure_python_curves(
    initialized: Tools, tmp_path: Path, curve: str
) -> None:
    initialized.pkcs11("--login", "--pin", PIN, "--keypairgen", "--key-type", f"EC:{curve}", "--id", "13",
                       "--label", curve)
    message = tmp_path / "message.txt"
    message.write_bytes(f"signed with an emulated {curve} key".encode())
    public = tmp_path / "public.pem"
    public.write_text(initialized.run("pkcs15-tool", "--reader", initialized.reader, "--read-public-key", "13").stdout)
    described = _openssl("pkey", "-pubin", "-in", str(public), "-text", "-noout")
    assert described.returncode == 0 and f"ASN1 OID: {curve}" in described.stdout, described
    for mechanism, digest in (("ECDSA-SHA256", "sha256"), ("ECDSA-SHA384", "sha384"), ("ECDSA-SHA1", "sha1")):
        signature = tmp_path / f"{digest}.sig"
        signature.write_bytes(_sign(initialized, "13", mechanism, message, tmp_path, "--signature-format", "openssl"))
        verified = _openssl("dgst", f"-{digest}", "-verify", str(public), "-signature", str(signature), str(message))
        assert verified.returncode == 0 and "Verified OK" in verified.stdout, (mechanism, verified)
    other = tmp_path / "other.txt"
    other.write_bytes(b"not what the token signed")
    refused = _openssl("dgst", "-sha1", "-verify", str(public), "-signature", str(signature), str(other))
    assert refused.returncode == 1 and "Verification failure" in refused.stdout, refused


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


# --- DKEK key backup with sc-hsm-tool ---------------------------------------------------------

SHARE_PASSWORD = "a share password"


def _second_token(emulators: Emulators, tmp_path: Path) -> Tools:
    ports = [p for p in sorted(vpcd_readers()) if p < VPCD_PORT + PKCS11_READERS]
    served = emulators.start(ports=ports)
    home = tmp_path / "home-b"
    home.mkdir()
    with served.transport():
        pass
    return Tools(served, home)


def _init_with_share(tools: Tools, share: Path) -> None:
    out = tools.sc_hsm_tool("--initialize", "--so-pin", SO_PIN, "--pin", PIN, "--dkek-shares", "1")
    assert "failed" not in out, out
    assert "DKEK import pending, 1 share(s) still missing" in tools.sc_hsm_tool()
    out = tools.sc_hsm_tool("--import-dkek-share", str(share), "--password", SHARE_PASSWORD)
    assert "DKEK shares" in out and "DKEK key check value" in out, out


def _signature_verifies(tools: Tools, key_id: str, public: ec.EllipticCurvePublicKey, tmp_path: Path) -> None:
    message = tmp_path / "restored.txt"
    message.write_bytes(b"signed by a key restored from its DKEK blob")
    signature = _sign(tools, key_id, "ECDSA-SHA256", message, tmp_path, "--signature-format", "openssl")
    public.verify(signature, message.read_bytes(), ec.ECDSA(hashes.SHA256()))


def test_sc_hsm_tool_backs_a_key_up_across_reinitialization_and_into_a_second_token(
    tools: Tools, emulators: Emulators, tmp_path: Path
) -> None:
    share = tmp_path / "dkek-share.pbe"
    out = tools.sc_hsm_tool("--create-dkek-share", str(share), "--password", SHARE_PASSWORD)
    assert share.stat().st_size > 0, out
    _init_with_share(tools, share)
    kcv = tools.status()["DKEK key check value"]
    tools.pkcs11("--login", "--pin", PIN, "--keypairgen", "--key-type", "EC:prime256v1", "--id", "01",
                 "--label", "backed-up")
    assert "Key ref        : 1 (0x01)" in tools.run("pkcs15-tool", "--reader", tools.reader, "--dump").stdout
    public = _public_key(tools, "01")
    assert isinstance(public, ec.EllipticCurvePublicKey)
    wrapped = tmp_path / "key-01.wrapped"
    out = tools.sc_hsm_tool("--wrap-key", str(wrapped), "--key-reference", "1", "--pin", PIN)
    assert "failed" not in out and wrapped.stat().st_size > 100, out

    # Re-initialization wipes key and DKEK; the share brings the DKEK back, the blob the key.
    _init_with_share(tools, share)
    assert tools.status()["DKEK key check value"] == kcv
    assert "backed-up" not in tools.pkcs11("--login", "--pin", PIN, "--list-objects").stdout
    out = tools.sc_hsm_tool("--unwrap-key", str(wrapped), "--key-reference", "1", "--pin", PIN)
    assert "Key successfully imported" in out, out
    assert "backed-up" in tools.pkcs11("--login", "--pin", PIN, "--list-objects").stdout
    _signature_verifies(tools, "01", public, tmp_path)

    # A second token holding the same DKEK takes the key; one with another DKEK refuses it.
    other = _second_token(emulators, tmp_path)
    _init_with_share(other, share)
    out = other.sc_hsm_tool("--unwrap-key", str(wrapped), "--key-reference", "7", "--pin", PIN)
    assert "Key successfully imported" in out, out
    _signature_verifies(other, "01", public, tmp_path)
    # A random DKEK (tag 92 = 0) is another DKEK: the blob does not open. (No second share
    # file: sc-hsm-tool spends 10 million MD5 rounds on each one it creates or imports.)
    assert "failed" not in other.sc_hsm_tool("--initialize", "--so-pin", SO_PIN, "--pin", PIN, "--dkek-shares", "0")
    assert other.status()["DKEK key check value"] != kcv
    refused = other.run("sc-hsm-tool", "-r", other.reader, "--unwrap-key", str(wrapped), "--key-reference", "1",
                        "--pin", PIN, check=False)
    assert refused.returncode != 0 and "Wrapped key does not match DKEK" in refused.stderr, refused


# --- device models ------------------------------------------------------------------------------


def test_opensc_sees_a_nitrokey_hsm2_with_its_atr_and_version(emulators: Emulators, tmp_path: Path) -> None:
    from hsm_lifecycle.emulator import Profile

    ports = [p for p in sorted(vpcd_readers()) if p < VPCD_PORT + PKCS11_READERS]
    served = emulators.start(ports=ports, profile=Profile.for_model("nitrokey-hsm2"))
    home = tmp_path / "home-nk"
    home.mkdir()
    with served.transport():
        pass
    nk = Tools(served, home)
    assert nk.run("opensc-tool", "-r", nk.reader, "-a").stdout.strip() == \
        "3b:de:18:ff:81:91:fe:1f:c3:80:31:81:54:48:53:4d:31:73:80:21:40:81:07:1c"
    assert nk.run("opensc-tool", "-r", nk.reader, "-n").stdout.strip() == "SmartCard-HSM version 3.4"
