"""OpenSC's own tools, unchanged, against the emulator behind pcscd: what a user would run.

Every test gets a fresh token. OpenSC's PKCS#11 module shows only the first 4 readers
(16 virtual slots, 4 per reader), so tokens for these tests sit on ports 35963..35966.
Signatures are verified independently with `cryptography`, with the public key read out of
the token through pkcs11-tool.
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from pcsc_support import Emulators, Served
from hsm_lifecycle.emulator.vpcd import vpcd_readers
from hsm_lifecycle.protocol import VPCD_PORT

pytestmark = [pytest.mark.pcscd, pytest.mark.opensc]

SO_PIN = "3537363231383830"
WRONG_SO_PIN = "0000000000000000"
PIN = "648219"
PKCS11_READERS = 4  # OpenSC: max_virtual_slots 16 / slots_per_card 4
MODULE_CANDIDATES = ("/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so", "/usr/lib/aarch64-linux-gnu/opensc-pkcs11.so",
                     "/usr/lib/opensc-pkcs11.so", "/usr/lib64/opensc-pkcs11.so")


def _module() -> str:
    for path in MODULE_CANDIDATES:
        if os.path.exists(path):
            return path
    pytest.skip("OpenSC's PKCS#11 module (opensc-pkcs11.so) was not found")


@dataclass
class Tools:
    """OpenSC's command-line tools pointed at one emulated token's reader."""

    served: Served
    home: Path

    @property
    def reader(self) -> str:
        return self.served.reader

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        # A private HOME keeps OpenSC's file cache (~/.cache/opensc) per test.
        env = {**os.environ, "HOME": str(self.home)}
        done = subprocess.run(list(args), capture_output=True, text=True, timeout=120, env=env)
        if check and done.returncode != 0:
            raise AssertionError(f"{' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
        return done

    def sc_hsm_tool(self, *args: str) -> str:
        done = self.run("sc-hsm-tool", "-r", self.reader, *args)
        return done.stdout + done.stderr  # sc-hsm-tool exits 0 even on failure: read its words

    def pkcs11(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.run("pkcs11-tool", "--module", _module(), "--slot-description", self.reader, *args, check=check)

    def status(self) -> dict[str, str]:
        return dict(re.findall(r"^(.+?)\s*:\s*(.+)$", self.sc_hsm_tool(), re.M))


@pytest.fixture
def tools(emulators: Emulators, tmp_path: Path) -> Tools:
    ports = [p for p in sorted(vpcd_readers()) if p < VPCD_PORT + PKCS11_READERS]
    served = emulators.start(ports=ports)
    home = tmp_path / "home"
    home.mkdir()
    with served.transport():  # waits until pcscd sees the card: OpenSC tools fail on an empty reader
        pass
    return Tools(served, home)


@pytest.fixture
def initialized(tools: Tools) -> Tools:
    out = tools.sc_hsm_tool("--initialize", "--so-pin", SO_PIN, "--pin", PIN)
    assert "failed" not in out, out
    return tools


def test_opensc_tool_identifies_a_smartcard_hsm(tools: Tools) -> None:
    atr = tools.run("opensc-tool", "-r", tools.reader, "-a").stdout.strip()
    assert atr == "3b:fe:18:00:00:81:31:fe:45:80:31:81:54:48:53:4d:31:73:80:21:40:81:07:fa"
    assert tools.run("opensc-tool", "-r", tools.reader, "-n").stdout.strip() == "SmartCard-HSM version 3.2"


def test_sc_hsm_tool_reports_a_shipped_token(tools: Tools) -> None:
    out = tools.sc_hsm_tool()
    assert re.search(r"^Version\s*: 3\.2$", out, re.M)
    assert "SmartCard-HSM has never been initialized. Please use --initialize to set SO-PIN and user PIN." in out


def test_sc_hsm_tool_initializes_and_reports_options_and_tries(initialized: Tools) -> None:
    out = initialized.sc_hsm_tool()
    assert "Config options" in out and "User PIN reset with SO-PIN enabled" in out
    status = initialized.status()
    assert status["SO-PIN tries left"] == "15" and status["User PIN tries left"] == "3"


def test_a_wrong_so_pin_is_refused_and_costs_exactly_one_try(initialized: Tools) -> None:
    out = initialized.sc_hsm_tool("--initialize", "--so-pin", WRONG_SO_PIN, "--pin", PIN)
    assert "PIN code or key incorrect" in out
    assert initialized.status()["SO-PIN tries left"] == "14"
    # The token was not re-initialized: the right SO-PIN still works, and restores the count.
    assert "failed" not in initialized.sc_hsm_tool("--initialize", "--so-pin", SO_PIN, "--pin", PIN)
    assert initialized.status()["SO-PIN tries left"] == "15"


def _public_key(tools: Tools, key_id: str, tmp: Path) -> ec.EllipticCurvePublicKey | rsa.RSAPublicKey:
    der = tmp / f"pub-{key_id}.der"
    tools.pkcs11("--read-object", "--type", "pubkey", "--id", key_id, "--output-file", str(der))
    key = serialization.load_der_public_key(der.read_bytes())
    assert isinstance(key, (ec.EllipticCurvePublicKey, rsa.RSAPublicKey))
    return key


def _sign(tools: Tools, key_id: str, mechanism: str, message: Path, tmp: Path, *extra: str) -> bytes:
    signature = tmp / f"sig-{key_id}.bin"
    tools.pkcs11("--login", "--pin", PIN, "--sign", "--id", key_id, "--mechanism", mechanism,
                 "--input-file", str(message), "--output-file", str(signature), *extra)
    return signature.read_bytes()


def test_pkcs11_lists_the_token_and_logs_in(initialized: Tools) -> None:
    listing = initialized.pkcs11("--list-token-slots").stdout
    assert initialized.reader in listing and "SmartCard-HSM" in listing
    assert "token initialized" in listing and "PIN initialized" in listing
    initialized.pkcs11("--login", "--pin", PIN, "--list-objects")
    wrong = initialized.pkcs11("--login", "--pin", "000000", "--list-objects", check=False)
    assert wrong.returncode != 0 and "CKR_PIN_INCORRECT" in wrong.stdout + wrong.stderr


def test_pkcs11_generates_an_ec_p256_key_and_its_signature_verifies(initialized: Tools, tmp_path: Path) -> None:
    initialized.pkcs11("--login", "--pin", PIN, "--keypairgen", "--key-type", "EC:prime256v1", "--id", "01",
                       "--label", "ec-key")
    message = tmp_path / "message.txt"
    message.write_bytes(b"signed by the emulated SmartCard-HSM through pcscd")
    signature = _sign(initialized, "01", "ECDSA-SHA256", message, tmp_path, "--signature-format", "openssl")
    key = _public_key(initialized, "01", tmp_path)
    assert isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == "secp256r1"
    key.verify(signature, message.read_bytes(), ec.ECDSA(hashes.SHA256()))


def test_pkcs11_generates_an_rsa_2048_key_and_its_signature_verifies(initialized: Tools, tmp_path: Path) -> None:
    initialized.pkcs11("--login", "--pin", PIN, "--keypairgen", "--key-type", "rsa:2048", "--id", "02",
                       "--label", "rsa-key")
    message = tmp_path / "message.txt"
    message.write_bytes(b"an RSA signature from the emulated token")
    signature = _sign(initialized, "02", "SHA256-RSA-PKCS", message, tmp_path)
    key = _public_key(initialized, "02", tmp_path)
    assert isinstance(key, rsa.RSAPublicKey) and key.key_size == 2048
    key.verify(signature, message.read_bytes(), padding.PKCS1v15(), hashes.SHA256())


def test_pkcs11_lists_and_deletes_keys_and_pkcs15_tool_shows_them(initialized: Tools) -> None:
    for key_id, key_type in (("01", "EC:prime256v1"), ("02", "EC:prime256v1")):
        initialized.pkcs11("--login", "--pin", PIN, "--keypairgen", "--key-type", key_type, "--id", key_id,
                           "--label", f"key-{key_id}")
    objects = initialized.pkcs11("--login", "--pin", PIN, "--list-objects").stdout
    assert objects.count("Private Key Object; EC") == 2
    dump = initialized.run("pkcs15-tool", "--reader", initialized.reader, "--dump").stdout
    assert "key-01" in dump and "key-02" in dump and "Private EC Key" in dump
    initialized.pkcs11("--login", "--pin", PIN, "--delete-object", "--type", "privkey", "--id", "02")
    objects = initialized.pkcs11("--login", "--pin", PIN, "--list-objects").stdout
    assert objects.count("Private Key Object; EC") == 1 and "key-02" not in objects.split("Public Key Object")[0]


def test_pkcs11_unblocks_the_user_pin_with_the_so_pin(initialized: Tools) -> None:
    for _ in range(3):
        initialized.pkcs11("--login", "--pin", "000000", "--list-objects", check=False)
    blocked = initialized.pkcs11("--login", "--pin", PIN, "--list-objects", check=False)
    assert blocked.returncode != 0 and "CKR_PIN_LOCKED" in blocked.stdout + blocked.stderr
    assert "User PIN locked" in initialized.sc_hsm_tool()
    initialized.pkcs11("--login", "--login-type", "so", "--so-pin", SO_PIN, "--init-pin", "--new-pin", PIN)
    initialized.pkcs11("--login", "--pin", PIN, "--list-objects")
    status = initialized.status()
    assert status["User PIN tries left"] == "3" and status["SO-PIN tries left"] == "15"
