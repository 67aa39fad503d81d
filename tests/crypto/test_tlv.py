"""BER-TLV codec: known encodings, round trips, and hostile input (only TlvError escapes)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hsm_lifecycle import tlv
from hsm_lifecycle.tlv import Tlv, TlvError

# Tags a CVC uses, one-, two- and three-byte forms.
TAGS = [0x42, 0x53, 0x65, 0x67, 0x86, 0x5F20, 0x5F29, 0x5F37, 0x7F21, 0x7F49, 0x7F4E, 0x9F8101]


@pytest.mark.parametrize(
    ("length", "encoded"),
    [
        (0, "00"),
        (0x7F, "7F"),
        (0x80, "8180"),
        (0xFF, "81FF"),
        (0x100, "820100"),
        (0xFFFF, "82FFFF"),
        (0x10000, "83010000"),
    ],
)
def test_length_forms(length: int, encoded: str) -> None:
    assert tlv.encode_length(length).hex().upper() == encoded


def test_multi_byte_tags_and_long_lengths_decode() -> None:
    value = bytes(300)
    raw = tlv.encode(0x7F49, value)
    assert raw[:5].hex().upper() == "7F4982012C"
    item = tlv.decode_exact(raw)
    assert (item.tag, item.value, item.raw, item.constructed) == (0x7F49, value, raw, True)


def test_non_minimal_length_is_accepted_and_raw_kept() -> None:
    raw = bytes.fromhex("428103414243")  # 81 03 where 03 alone would do
    item = tlv.decode_exact(raw)
    assert item.value == b"ABC" and item.raw == raw


def test_children_and_find() -> None:
    inner = tlv.encode(0x5F29, b"\x00") + tlv.encode(0x42, b"CAR")
    outer = tlv.decode_exact(tlv.encode_constructed(0x7F4E, [inner]))
    kids = outer.children()
    assert [k.tag for k in kids] == [0x5F29, 0x42]
    assert tlv.find(kids, 0x42) == Tlv(0x42, b"CAR")
    assert tlv.find(kids, 0x5F20) is None
    with pytest.raises(TlvError, match="5F20 missing in body"):
        tlv.require(kids, 0x5F20, "body")


@pytest.mark.parametrize(
    ("hexdata", "reason"),
    [
        ("", "truncated"),
        ("42", "truncated"),
        ("4205414243", "exceeds"),  # length beyond the data
        ("5F", "truncated tag"),
        ("7F8180800100", "longer than 3"),  # four-byte tag
        ("4280", "indefinite"),
        ("42840000000100", "too long"),  # 84: four length bytes
        ("428201", "truncated length"),
        ("0000", "invalid tag byte 00"),
        ("FF00", "invalid tag byte FF"),
    ],
)
def test_malformed_input_names_the_problem(hexdata: str, reason: str) -> None:
    with pytest.raises(TlvError, match=reason):
        tlv.decode_exact(bytes.fromhex(hexdata))


def test_trailing_garbage_is_refused_where_it_matters() -> None:
    raw = tlv.encode(0x42, b"A") + b"\x00"
    assert tlv.decode_one(raw)[1] == 3  # decode_one stops where the object ends
    with pytest.raises(TlvError, match="1 trailing bytes"):
        tlv.decode_exact(raw)
    with pytest.raises(TlvError):
        tlv.decode_all(raw)


def test_duplicates_refused_and_primitive_has_no_children() -> None:
    items = tlv.decode_all(tlv.encode(0x42, b"A") + tlv.encode(0x42, b"B"))
    with pytest.raises(TlvError, match="duplicate tag 42"):
        tlv.require_unique(items)
    with pytest.raises(TlvError, match="primitive"):
        items[0].children()


@pytest.mark.parametrize("bad", [0, -1, 0x1F, 0x5F80, 0x4201, 0x7F818181])
def test_encoder_refuses_malformed_tags(bad: int) -> None:
    with pytest.raises(TlvError):
        tlv.encode(bad, b"")


values = st.binary(max_size=70_000)


@given(st.sampled_from(TAGS), values)
def test_round_trip_one(tag: int, value: bytes) -> None:
    raw = tlv.encode(tag, value)
    item = tlv.decode_exact(raw)
    assert (item.tag, item.value, item.raw) == (tag, value, raw)
    assert item.encode() == raw


@given(st.lists(st.tuples(st.sampled_from(TAGS), st.binary(max_size=300)), max_size=8))
def test_round_trip_sequence(pairs: list[tuple[int, bytes]]) -> None:
    raw = b"".join(tlv.encode(t, v) for t, v in pairs)
    assert [(i.tag, i.value) for i in tlv.decode_all(raw)] == pairs


@given(st.sampled_from(TAGS), st.binary(min_size=1, max_size=400), st.data())
def test_every_truncation_is_refused(tag: int, value: bytes, data: st.DataObject) -> None:
    raw = tlv.encode(tag, value)
    cut = data.draw(st.integers(0, len(raw) - 1))
    with pytest.raises(TlvError):
        tlv.decode_exact(raw[:cut])


@given(st.binary(max_size=600))
def test_hostile_bytes_raise_only_tlv_error(data: bytes) -> None:
    try:
        items = tlv.decode_all(data)
    except TlvError:
        return
    assert b"".join(i.raw for i in items) == data  # what decodes covers the input exactly
    for item in items:
        if item.constructed:
            try:
                item.children()
            except TlvError:
                pass
