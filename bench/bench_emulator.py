"""Emulator throughput: APDUs per second for the two paths that dominate a campaign.

(a) a VERIFY status query on an in-memory token (no persistence: the fast path), and
(b) a wrong VERIFY on a file-backed token (one fsynced atomic state write per APDU, R17);
also (c) ECDSA P-256 SIGN (80 68 .. 73) in memory, the key-use path of a campaign.
Each figure is the median over `repeat` runs. `python -m bench.bench_emulator` prints them.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

from hsm_lifecycle.emulator import VirtualToken
from hsm_lifecycle import cvc, protocol, tlv

SELECT = bytes([0x00, 0xA4, 0x04, 0x00, len(protocol.AID)]) + protocol.AID + b"\x00"
QUERY_USER = bytes.fromhex("00200081")
PIN = protocol.DEFAULT_USER_PIN
WRONG_PIN = b"000000"
RETRIES = protocol.USER_PIN_TRIES_MAX


def _verify(pin: bytes) -> bytes:
    return bytes([0x00, 0x20, 0x00, protocol.PIN_USER, len(pin)]) + pin


def _initialize() -> bytes:
    body = (
        bytes.fromhex("80020001")
        + bytes([0x81, len(PIN)]) + PIN
        + bytes([0x82, 0x08]) + protocol.DEFAULT_SO_PIN
        + bytes([0x91, 0x01, RETRIES])
    )
    return bytes([0x80, 0x50, 0x00, 0x00, len(body)]) + body


def _ready(token: VirtualToken) -> VirtualToken:
    token.power_on()
    for capdu in (SELECT, _initialize()):
        if token.transmit(capdu)[-2:] != b"\x90\x00":
            raise RuntimeError(f"setup APDU {capdu.hex()} refused")
    return token


def query_rate(apdus: int = 5000) -> float:
    """Status queries per second, in memory."""
    token = _ready(VirtualToken.manufacture())
    start = time.perf_counter()
    for _ in range(apdus):
        token.transmit(QUERY_USER)
    return apdus / (time.perf_counter() - start)


def wrong_verify_rate(directory: Path, apdus: int = 200) -> float:
    """Wrong VERIFYs per second with file persistence; a right PIN (untimed) refills the
    counter before it runs out."""
    token = _ready(VirtualToken.manufacture(state_path=directory / "bench-token.json"))
    wrong, right = _verify(WRONG_PIN), _verify(PIN)
    elapsed = 0.0
    for done in range(apdus):
        if done % (RETRIES - 1) == 0:
            token.transmit(right)
        start = time.perf_counter()
        rapdu = token.transmit(wrong)
        elapsed += time.perf_counter() - start
        if rapdu[-2] != 0x63:
            raise RuntimeError(f"wrong VERIFY answered {rapdu.hex()}")
    return apdus / elapsed


def _gakp_p256() -> bytes:
    """GENERATE ASYMMETRIC KEY PAIR 01 for P-256 (CV body content, extended case 4)."""
    domain = cvc.CURVES["secp256r1"]
    size = domain.field_bytes
    key = b"".join(
        [
            tlv.encode(protocol.TAG_OID, cvc.encode_oid(protocol.OID_TA_ECDSA_SHA256)),
            tlv.encode(0x81, domain.p.to_bytes(size, "big")),
            tlv.encode(0x82, domain.a.to_bytes(size, "big")),
            tlv.encode(0x83, domain.b.to_bytes(size, "big")),
            tlv.encode(0x84, domain.generator),
            tlv.encode(0x85, domain.n.to_bytes(domain.order_bytes, "big")),
            tlv.encode(0x87, bytes([domain.h])),
        ]
    )
    body = tlv.encode(protocol.TAG_CV_CPI, b"\x00") + tlv.encode(protocol.TAG_CV_PUBLIC_KEY, key)
    return bytes([0x00, 0x46, 0x01, 0x00, 0x00]) + len(body).to_bytes(2, "big") + body + b"\x00\x00"


def sign_rate(apdus: int = 500) -> float:
    """ECDSA SIGN with SHA-256 per second, in memory, user logged in."""
    token = _ready(VirtualToken.manufacture())
    for capdu in (_verify(PIN), _gakp_p256()):
        if token.transmit(capdu)[-2:] != b"\x90\x00":
            raise RuntimeError(f"setup APDU {capdu.hex()} refused")
    message = bytes(range(32))
    capdu = bytes([0x80, 0x68, 0x01, protocol.ALGO_ECDSA_SHA256, 0x00, 0x00, len(message)]) + message + b"\x00\x00"
    start = time.perf_counter()
    for _ in range(apdus):
        token.transmit(capdu)
    return apdus / (time.perf_counter() - start)


def run(repeat: int = 5) -> dict[str, float]:
    """Median APDUs/second over `repeat` runs of each measurement."""
    queries = [query_rate() for _ in range(repeat)]
    wrong = []
    for _ in range(repeat):
        with tempfile.TemporaryDirectory(prefix="bench-emulator-") as tmp:
            wrong.append(wrong_verify_rate(Path(tmp)))
    signs = [sign_rate() for _ in range(repeat)]
    return {
        "verify_query_memory_apdus_per_s": statistics.median(queries),
        "verify_wrong_file_apdus_per_s": statistics.median(wrong),
        "sign_ecdsa_p256_memory_apdus_per_s": statistics.median(signs),
        "repeat": float(repeat),
    }


def main() -> None:
    results = run()
    print(f"VERIFY status query, in memory    : {results['verify_query_memory_apdus_per_s']:>10.0f} APDU/s")
    print(f"wrong VERIFY, file-persisted state: {results['verify_wrong_file_apdus_per_s']:>10.0f} APDU/s")
    print(f"ECDSA P-256 SIGN, in memory       : {results['sign_ecdsa_p256_memory_apdus_per_s']:>10.0f} APDU/s")
    print(f"(median of {int(results['repeat'])} runs)")


if __name__ == "__main__":
    main()
