"""Key generation and use in the emulator, per key type the device offers: how long GENERATE
ASYMMETRIC KEY PAIR, SIGN and (RSA) DECIPHER take through the in-process token, and how long
WRAP + UNWRAP of a key blob takes. RSA-4096 dominates: the PC/SC tests generate one such key.

`python -m bench.bench_keygen` prints the figures (seconds, median of `repeat` runs).
"""

from __future__ import annotations

import statistics
import time

from hsm_lifecycle.conformance.mapper import apdu
from hsm_lifecycle.cvc import CURVES, encode_oid
from hsm_lifecycle.emulator import VirtualToken
from hsm_lifecycle.emulator.keys import SUPPORTED_CURVES, SUPPORTED_RSA_BITS
from hsm_lifecycle.protocol import (
    AID,
    ALGO_ECDSA_SHA256,
    ALGO_RSA_DECRYPT_RAW,
    ALGO_RSA_PKCS1_SHA256,
    DEFAULT_USER_PIN,
    OID_TA_ECDSA_SHA256,
    OID_TA_RSA_V1_5_SHA256,
)
from hsm_lifecycle.tlv import encode, encode_constructed

MESSAGE = b"benchmark"


def _body(key: bytes) -> bytes:
    return encode(0x5F29, b"\x00") + encode(0x42, b"UTCA00001") + key + encode(0x5F20, b"UTCTBENCH00001")


def _ec(name: str) -> bytes:
    d = CURVES[name]
    size = d.field_bytes
    params = [(0x81, d.p.to_bytes(size, "big")), (0x82, d.a.to_bytes(size, "big")), (0x83, d.b.to_bytes(size, "big")),
              (0x84, d.generator), (0x85, d.n.to_bytes(d.order_bytes, "big")), (0x87, b"\x01")]
    return _body(encode_constructed(0x7F49, [encode(6, encode_oid(OID_TA_ECDSA_SHA256))] + [encode(t, v) for t, v in params]))


def _rsa(bits: int) -> bytes:
    return _body(encode_constructed(0x7F49, [encode(6, encode_oid(OID_TA_RSA_V1_5_SHA256)), encode(0x82, b"\x01\x00\x01"),
                                             encode(0x02, bits.to_bytes(2, "big"))]))


def _token() -> VirtualToken:
    token = VirtualToken.manufacture()
    token.power_on()
    for capdu in (apdu(0x00, 0xA4, 0x04, 0x00, AID, le=0),
                  apdu(0x80, 0x50, 0, 0, bytes.fromhex("80020001") + encode(0x81, DEFAULT_USER_PIN)
                       + encode(0x82, bytes.fromhex("3537363231383830")) + bytes.fromhex("910103") + bytes.fromhex("920100")),
                  apdu(0x00, 0x20, 0x00, 0x81, DEFAULT_USER_PIN)):
        assert token.transmit(capdu)[-2:] == b"\x90\x00"
    return token


def _timed(token: VirtualToken, capdu: bytes) -> float:
    began = time.perf_counter()
    rapdu = token.transmit(capdu)
    elapsed = time.perf_counter() - began
    assert rapdu[-2:] == b"\x90\x00", rapdu[-2:].hex()
    return elapsed


def run(repeat: int = 3) -> dict[str, float]:
    token = _token()
    types = [(f"ec_{c}", _ec(c), ALGO_ECDSA_SHA256) for c in SUPPORTED_CURVES]
    types += [(f"rsa_{b}", _rsa(b), ALGO_RSA_PKCS1_SHA256) for b in SUPPORTED_RSA_BITS]
    out: dict[str, float] = {}
    for name, body, algo in types:
        gen, sig, wrap = [], [], []
        for _ in range(repeat):
            gen.append(_timed(token, apdu(0x00, 0x46, 1, 0, body, le=0, extended=True)))
            sig.append(_timed(token, apdu(0x80, 0x68, 1, algo, MESSAGE, le=0, extended=True)))
            began = time.perf_counter()
            blob = token.transmit(apdu(0x80, 0x72, 1, 0x92, le=0, extended=True))[:-2]
            assert token.transmit(apdu(0x80, 0x74, 2, 0x93, blob))[-2:] == b"\x90\x00"
            wrap.append(time.perf_counter() - began)
        out[f"{name}_generate_s"] = statistics.median(gen)
        out[f"{name}_sign_s"] = statistics.median(sig)
        out[f"{name}_wrap_unwrap_s"] = statistics.median(wrap)
        if name.startswith("rsa_"):
            k = int(name[4:]) // 8
            out[f"{name}_decipher_s"] = _timed(token, apdu(0x80, 0x62, 1, ALGO_RSA_DECRYPT_RAW, b"\x00\x02" + b"\x11" * (k - 2),
                                                           le=0, extended=True))
    return out


if __name__ == "__main__":
    for key, value in run().items():
        print(f"{key}: {value:.4f}")
