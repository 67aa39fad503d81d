"""OpenSC, unchanged, against the emulator behind pcscd: its own PKCS#11 self-test, keygen +
sign (+ decipher) for every key type the device documents, and DKEK key backup with
sc-hsm-tool. Fixtures and helpers are test_pcsc_opensc's.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from test_pcsc_opensc import PIN, Tools, initialized, tools  # noqa: F401  (fixtures)

pytestmark = [pytest.mark.pcscd, pytest.mark.opensc]


def test_pkcs11_tool_self_test_passes_with_an_rsa_2048_key(initialized: Tools) -> None:
    initialized.pkcs11("--login", "--pin", PIN, "--keypairgen", "--key-type", "rsa:2048", "--id", "01",
                       "--label", "rsa-key")
    done = initialized.pkcs11("--test", "--login", "--pin", PIN, check=False)
    out = done.stdout + done.stderr
    assert done.returncode == 0, out
    assert "No errors" in out, out
