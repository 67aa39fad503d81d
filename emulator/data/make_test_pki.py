"""Make (or check) the project's TEST device PKI: root UTSRCACC100001 and DICA UTDICA0100001.

    python emulator/data/make_test_pki.py           # write the files
    python emulator/data/make_test_pki.py --check   # exit 1 unless the shipped files match

Reproducible on purpose: the keys are derived from fixed labels and the ECDSA signatures are
deterministic (RFC 6979), so running it again gives the same bytes and `--check` (also run by
tests/crypto) proves the committed files are exactly what this script makes. The private keys
are therefore public: this PKI proves nothing about any real device. See README.md here.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import sys
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from hsm_lifecycle import cvc

HERE = Path(__file__).resolve().parent
PUBLIC_DATA = HERE.parent.parent / "hsm_lifecycle" / "data"

ROOT_CHR = cvc.TEST_ROOT_CHR
DICA_CHR = "UTDICA0100001"
ROOT_VALIDITY = (dt.date(2025, 1, 1), dt.date(2049, 12, 31))
DICA_VALIDITY = (dt.date(2025, 1, 1), dt.date(2044, 12, 31))
ROOT_KEY_FILE = "test-root-key.pem"
DICA_KEY_FILE = "test-dica-key.pem"
DICA_CERT_FILE = f"{DICA_CHR}.cvc"
ROOT_CERT_FILE = f"{ROOT_CHR}.cvc"


@dataclass(frozen=True)
class TestPki:
    root_key: ec.EllipticCurvePrivateKey
    root: cvc.CVCertificate
    dica_key: ec.EllipticCurvePrivateKey
    dica: cvc.CVCertificate

    def files(self) -> dict[Path, bytes]:
        return {
            PUBLIC_DATA / ROOT_CERT_FILE: self.root.raw,
            HERE / DICA_CERT_FILE: self.dica.raw,
            HERE / ROOT_KEY_FILE: _pem(self.root_key),
            HERE / DICA_KEY_FILE: _pem(self.dica_key),
        }


def _derived_key(label: str) -> ec.EllipticCurvePrivateKey:
    domain = cvc.CURVES["brainpoolP256r1"]
    seed = int.from_bytes(
        hashlib.sha512(f"hsm-lifecycle test PKI: {label}".encode()).digest(), "big"
    )
    return ec.derive_private_key(seed % (domain.n - 1) + 1, domain.curve())


def _pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def make() -> TestPki:
    oid = cvc.OID_TA_ECDSA_SHA256
    root_key = _derived_key(ROOT_CHR)
    root_body = cvc.CvBody(
        car=ROOT_CHR,
        public_key=cvc.CvPublicKey.from_cryptography(root_key.public_key(), oid),
        chr=ROOT_CHR,
        chat=cvc.Chat(cvc.OID_CHAT_SMARTCARD_HSM, bytes([cvc.ROLE_CVCA])),
        effective=ROOT_VALIDITY[0],
        expiry=ROOT_VALIDITY[1],
    )
    root = cvc.issue(root_body, root_key, oid, deterministic=True)
    dica_key = _derived_key(DICA_CHR)
    dica_body = cvc.CvBody(
        car=ROOT_CHR,
        # Like the real DICAs: only the point; the curve is the root's.
        public_key=cvc.CvPublicKey.from_cryptography(dica_key.public_key(), oid, False),
        chr=DICA_CHR,
        chat=cvc.Chat(cvc.OID_CHAT_SMARTCARD_HSM, bytes([cvc.ROLE_DV])),
        effective=DICA_VALIDITY[0],
        expiry=DICA_VALIDITY[1],
        extensions=b"",
    )
    dica = cvc.issue(dica_body, root_key, oid, deterministic=True)
    return TestPki(root_key, root, dica_key, dica)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    args = parser.parse_args(argv)
    files = make().files()
    if args.check:
        stale = [
            path for path, data in files.items() if not path.is_file() or path.read_bytes() != data
        ]
        for path in stale:
            print(f"differs: {path}", file=sys.stderr)
        return 1 if stale else 0
    for path, data in files.items():
        path.write_bytes(data)
        print(f"wrote {path} ({len(data)} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
