"""BER-TLV as smart cards use it (ISO 7816-4 §5.2, the subset BSI TR-03110 CVCs need).

A tag is an int whose big-endian bytes are the tag bytes as sent (0x42, 0x5F20, 0x7F49).
Lengths are short (00..7F) or long (81 xx, 82 xxxx, 83 xxxxxx). Decoding is strict, because
the input comes from devices and fuzzers: every malformation raises `TlvError` (a ValueError),
never IndexError or the like. Non-minimal long lengths (81 05) are accepted, as BER allows and
some cards emit them; `Tlv.raw` keeps the exact bytes received, so signatures are checked over
what was signed and not over a re-encoding.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

MAX_TAG_BYTES = 3
MAX_LENGTH = 0xFFFFFF  # 83 xxxxxx: the longest length form a card uses
_CONSTRUCTED = 0x20


class TlvError(ValueError):
    """Malformed BER-TLV: truncated, trailing bytes, bad tag or length, or a missing child."""


@dataclass(frozen=True)
class Tlv:
    """One decoded data object. `raw` is the complete encoding as it was received."""

    tag: int
    value: bytes
    raw: bytes = field(default=b"", compare=False, repr=False)

    @property
    def constructed(self) -> bool:
        return is_constructed(self.tag)

    def children(self) -> list[Tlv]:
        """The data objects inside a constructed object's value (must cover it exactly)."""
        if not self.constructed:
            raise TlvError(f"tag {self.tag:X} is primitive, it has no children")
        return decode_all(self.value)

    def encode(self) -> bytes:
        return encode(self.tag, self.value)


def tag_bytes(tag: int) -> bytes:
    """The bytes of a tag int, validated as a well-formed BER tag."""
    if tag <= 0:
        raise TlvError(f"invalid tag {tag!r}")
    raw = tag.to_bytes((tag.bit_length() + 7) // 8, "big")
    if len(raw) > MAX_TAG_BYTES:
        raise TlvError(f"tag {tag:X} longer than {MAX_TAG_BYTES} bytes")
    multi = raw[0] & 0x1F == 0x1F
    if not multi and len(raw) != 1:
        raise TlvError(f"tag {tag:X}: first byte does not announce subsequent bytes")
    if multi:
        if len(raw) == 1:
            raise TlvError(f"tag {tag:X}: subsequent byte missing")
        # Every subsequent byte but the last has bit 8 set; the last has it clear.
        if any(b & 0x80 == 0 for b in raw[1:-1]) or raw[-1] & 0x80:
            raise TlvError(f"tag {tag:X}: malformed subsequent bytes")
    return raw


def is_constructed(tag: int) -> bool:
    first = tag_bytes(tag)[0]
    return bool(first & _CONSTRUCTED)


def encode_length(length: int) -> bytes:
    """Minimal length encoding: short form below 128, then 81/82/83."""
    if length < 0 or length > MAX_LENGTH:
        raise TlvError(f"length {length} out of range")
    if length < 0x80:
        return bytes([length])
    size = (length.bit_length() + 7) // 8
    return bytes([0x80 | size]) + length.to_bytes(size, "big")


def encode(tag: int, value: bytes) -> bytes:
    """Encode one data object."""
    return tag_bytes(tag) + encode_length(len(value)) + bytes(value)


def encode_constructed(tag: int, children: Iterable[bytes]) -> bytes:
    """Encode a constructed object from already encoded children."""
    if not is_constructed(tag):
        raise TlvError(f"tag {tag:X} is primitive")
    return encode(tag, b"".join(children))


def _read_tag(data: bytes, offset: int) -> tuple[int, int]:
    if offset >= len(data):
        raise TlvError(f"truncated: tag expected at offset {offset}")
    first = data[offset]
    if first in (0x00, 0xFF):
        raise TlvError(f"invalid tag byte {first:02X} at offset {offset}")
    end = offset + 1
    if first & 0x1F == 0x1F:
        while True:
            if end >= len(data):
                raise TlvError(f"truncated tag at offset {offset}")
            if end - offset >= MAX_TAG_BYTES:
                raise TlvError(f"tag at offset {offset} longer than {MAX_TAG_BYTES} bytes")
            byte = data[end]
            end += 1
            if not byte & 0x80:
                break
    return int.from_bytes(data[offset:end], "big"), end


def _read_length(data: bytes, offset: int) -> tuple[int, int]:
    if offset >= len(data):
        raise TlvError(f"truncated: length expected at offset {offset}")
    first = data[offset]
    if first < 0x80:
        return first, offset + 1
    size = first & 0x7F
    if size == 0:
        raise TlvError(f"indefinite length at offset {offset} not allowed")
    if size > 3:
        raise TlvError(f"length of {size} bytes at offset {offset} too long")
    end = offset + 1 + size
    if end > len(data):
        raise TlvError(f"truncated length at offset {offset}")
    return int.from_bytes(data[offset + 1 : end], "big"), end


def decode_one(data: bytes, offset: int = 0) -> tuple[Tlv, int]:
    """Decode the object starting at `offset`; returns it and the offset just after it."""
    data = bytes(data)
    if offset < 0:
        raise TlvError("negative offset")
    tag, pos = _read_tag(data, offset)
    length, pos = _read_length(data, pos)
    end = pos + length
    if end > len(data):
        raise TlvError(
            f"tag {tag:X} at offset {offset}: length {length} exceeds the "
            f"{len(data) - pos} bytes left"
        )
    return Tlv(tag, data[pos:end], data[offset:end]), end


def decode_exact(data: bytes) -> Tlv:
    """Decode exactly one object; trailing bytes are an error."""
    tlv, end = decode_one(data)
    if end != len(data):
        raise TlvError(f"{len(data) - end} trailing bytes after tag {tlv.tag:X}")
    return tlv


def decode_all(data: bytes) -> list[Tlv]:
    """Decode a sequence of objects that covers `data` exactly (empty input: empty list)."""
    data = bytes(data)
    items: list[Tlv] = []
    pos = 0
    while pos < len(data):
        tlv, pos = decode_one(data, pos)
        items.append(tlv)
    return items


def find(items: Sequence[Tlv], tag: int) -> Tlv | None:
    """The first object with `tag`, or None."""
    return next((t for t in items if t.tag == tag), None)


def require(items: Sequence[Tlv], tag: int, where: str = "") -> Tlv:
    """The first object with `tag`; TlvError naming `where` if there is none."""
    found = find(items, tag)
    if found is None:
        raise TlvError(f"tag {tag:X} missing{' in ' + where if where else ''}")
    return found


def require_unique(items: Sequence[Tlv], where: str = "") -> dict[int, Tlv]:
    """Index objects by tag, refusing duplicates (a hostile input could smuggle a second CHR)."""
    index: dict[int, Tlv] = {}
    for item in items:
        if item.tag in index:
            raise TlvError(f"duplicate tag {item.tag:X}{' in ' + where if where else ''}")
        index[item.tag] = item
    return index
