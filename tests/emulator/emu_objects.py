"""APDU builders for files and keys (§4), written from the digest for the emulator's tests."""

from __future__ import annotations

from hsm_lifecycle import cvc, protocol


def tlv(tag: int, value: bytes) -> bytes:
    """BER-TLV with long lengths (values here can exceed 127 bytes)."""
    from hsm_lifecycle import tlv as codec

    return codec.encode(tag, value)


def ext4(cla: int, ins: int, p1: int, p2: int, data: bytes, le: int = 0) -> bytes:
    """Extended case 4 (Le 0000 = 65536)."""
    return bytes([cla, ins, p1, p2, 0]) + len(data).to_bytes(2, "big") + data + le.to_bytes(2, "big")


def ec_body(
    curve: str = "secp256r1", chr_: str | None = "UTEM000000100001", car: str = "UTCA00001"
) -> bytes:
    """GAKP data for an EC key: CPI, CAR, 7F49 with explicit domain parameters, CHR."""
    domain = cvc.CURVES[curve]
    size = domain.field_bytes
    key = (
        tlv(protocol.TAG_OID, cvc.encode_oid(protocol.OID_TA_ECDSA_SHA256))
        + tlv(0x81, domain.p.to_bytes(size, "big"))
        + tlv(0x82, domain.a.to_bytes(size, "big"))
        + tlv(0x83, domain.b.to_bytes(size, "big"))
        + tlv(0x84, domain.generator)
        + tlv(0x85, domain.n.to_bytes(domain.order_bytes, "big"))
        + tlv(0x87, bytes([domain.h]))
    )
    return _body(key, chr_, car)


def rsa_body(bits: int = 2048, chr_: str = "UTEM000000100002", car: str = "UTCA00001") -> bytes:
    key = (
        tlv(protocol.TAG_OID, cvc.encode_oid(protocol.OID_TA_RSA_V1_5_SHA256))
        + tlv(0x82, bytes.fromhex("010001"))
        + tlv(0x02, bits.to_bytes(2, "big"))
    )
    return _body(key, chr_, car)


def _body(key: bytes, chr_: str | None, car: str) -> bytes:
    body = (
        tlv(protocol.TAG_CV_CPI, b"\x00")
        + tlv(protocol.TAG_CV_CAR, car.encode())
        + tlv(protocol.TAG_CV_PUBLIC_KEY, key)
    )
    return body + (tlv(protocol.TAG_CV_CHR, chr_.encode()) if chr_ is not None else b"")


def gakp(key_id: int, body: bytes) -> bytes:
    return ext4(0x00, 0x46, key_id, 0x00, body)


def sign(key_id: int, algo: int, data: bytes) -> bytes:
    return ext4(0x80, 0x68, key_id, algo, data)


def decipher(key_id: int, algo: int, data: bytes) -> bytes:
    return ext4(0x80, 0x62, key_id, algo, data)


def enumerate_objects() -> bytes:
    return bytes.fromhex("80580000000000")


def list_fids(data: bytes) -> list[int]:
    assert len(data) % 2 == 0
    return [int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2)]


def select_ef(fid: int, p2: int = 0x00) -> bytes:
    return bytes([0x00, 0xA4, 0x00, p2, 0x02]) + fid.to_bytes(2, "big") + (b"\x00" if p2 != 0x0C else b"")


def read_binary(fid: int = 0x0000, offset: int = 0, le: int | None = 0, extended: bool = True) -> bytes:
    head = bytes([0x00, 0xB1]) + fid.to_bytes(2, "big")
    data = bytes([0x54, 0x02]) + offset.to_bytes(2, "big")
    if le is None:
        return head + bytes([len(data)]) + data
    if extended:
        return head + b"\x00" + len(data).to_bytes(2, "big") + data + le.to_bytes(2, "big")
    return head + bytes([len(data)]) + data + bytes([le])


def update_binary(fid: int, offset: int, chunk: bytes) -> bytes:
    data = bytes([0x54, 0x02]) + offset.to_bytes(2, "big") + tlv(0x53, chunk)
    head = bytes([0x00, 0xD7]) + fid.to_bytes(2, "big")
    if len(data) < 256:
        return head + bytes([len(data)]) + data
    return head + b"\x00" + len(data).to_bytes(2, "big") + data


def delete(fid: int) -> bytes:
    return bytes.fromhex("00E4020002") + fid.to_bytes(2, "big")


def get_challenge(le: int | None) -> bytes:
    return bytes.fromhex("00840000") + (b"" if le is None else bytes([le]))


DKEK_STATUS = bytes.fromhex("8052000000")
