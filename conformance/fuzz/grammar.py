"""A structure-aware grammar of command APDUs for fuzzing the emulator.

It only asks a `Chooser` for integers and bytes, so each driver's own search steers it:
hypothesis (tests/robustness, through `st.data()`) shrinks, `random.Random` (bench/fuzz_apdu.py,
the long run) replays from a seed, atheris (bench/fuzz_atheris.py) follows coverage. Mostly
the applet's own instructions with plausible parameters and TLV bodies, some framing broken on
purpose, power events between APDUs, and well-formed commands with the starts' PINs so that
the fuzzed ones meet keys, files and verified sessions.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

from hsm_lifecycle import cvc, tlv
from hsm_lifecycle.conformance.mapper import ALT_SO_PIN, ALT_USER_PIN, apdu
from hsm_lifecycle.protocol import (
    AID,
    CLA_ISO,
    CLA_PROPRIETARY,
    DEFAULT_SO_PIN,
    DEFAULT_USER_PIN,
    Ins,
    OID_TA_ECDSA_SHA256,
    OID_TA_RSA_V1_5_SHA256,
    PIN_SO,
    PIN_USER,
)

T = TypeVar("T")

# ---------------------------------------------------------------------------------------------
# Choices: what every driver (hypothesis, random, atheris) must offer the grammar


class Chooser(Protocol):
    def integer(self, low: int, high: int) -> int: ...

    def raw(self, size: int) -> bytes: ...


class RandomChooser:
    """The long run's chooser: a seeded `random.Random`, so a finding replays from its seed."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def integer(self, low: int, high: int) -> int:
        return self.rng.randint(low, high)

    def raw(self, size: int) -> bytes:
        return self.rng.randbytes(size)


def pick(ch: Chooser, options: Sequence[T]) -> T:
    return options[ch.integer(0, len(options) - 1)]


def one_in(ch: Chooser, n: int) -> bool:
    return ch.integer(1, n) == 1


def size(ch: Chooser, small: int = 16, big: int = 300) -> int:
    """Mostly short, sometimes long: long inputs are where length fields go wrong."""
    return ch.integer(0, big) if one_in(ch, 6) else ch.integer(0, small)


# ---------------------------------------------------------------------------------------------
# The grammar: structure-aware command APDUs

ISO_INS = frozenset({Ins.SELECT, Ins.VERIFY, Ins.CHANGE_REFERENCE_DATA, Ins.RESET_RETRY_COUNTER,
                     Ins.GENERATE_ASYMMETRIC_KEY_PAIR, Ins.GET_CHALLENGE, Ins.READ_BINARY_ODD,
                     Ins.UPDATE_BINARY_ODD, Ins.DELETE_FILE, Ins.GET_RESPONSE})
# State-changing instructions come up more often: they are where the counters and files move.
WEIGHTED_INS = (*Ins, Ins.VERIFY, Ins.VERIFY, Ins.VERIFY, Ins.CHANGE_REFERENCE_DATA, Ins.CHANGE_REFERENCE_DATA,
                Ins.RESET_RETRY_COUNTER, Ins.INITIALIZE_DEVICE, Ins.INITIALIZE_DEVICE, Ins.UPDATE_BINARY_ODD,
                Ins.UPDATE_BINARY_ODD, Ins.GENERATE_ASYMMETRIC_KEY_PAIR, Ins.DELETE_FILE, Ins.SELECT, Ins.SIGN)
ODD_CLA = (0x0C, 0x10, 0x01, 0x03, 0x84, 0x8C, 0x90, 0xA0, 0xFF)  # SM, chaining, channels, junk
# The starts' PINs are the defaults: they come up often, so presentations get past the first
# wrong try and reach the success paths (restores, changes, re-initialization).
PINS = (DEFAULT_USER_PIN, DEFAULT_USER_PIN, DEFAULT_USER_PIN, ALT_USER_PIN, DEFAULT_SO_PIN, DEFAULT_SO_PIN,
        ALT_SO_PIN, b"000000", b"12345", bytes(8), b"1234567890123456", b"12345678901234567")
FIDS = (0x2F02, 0xCC00, 0xCC01, 0xCE01, 0xC401, 0xCD01, 0xCF01, 0x2F03, 0x3F00, 0x0000, 0xFFFF, 0x3FFF)
INIT_TAGS = (0x80, 0x81, 0x82, 0x91, 0x92, 0x93, 0x95, 0x96, 0x97)
CV_TAGS = (0x5F29, 0x42, 0x7F49, 0x5F20, 0x45, 0x06, 0x81, 0x82, 0x83, 0x84, 0x85, 0x87, 0x02, 0x90, 0x91, 0x92, 0x7F21, 0x67)
ALGORITHMS = (0x20, 0x21, 0x22, 0x23, 0x30, 0x31, 0x33, 0x34, 0x35, 0x40, 0x41, 0x43, 0x44, 0x45, 0x70, 0x71, 0x72, 0x73,
              0x74, 0x75, 0x80)
SELECT_P1P2 = ((4, 0), (4, 4), (4, 0x0C), (0, 0), (0, 4), (0, 0x0C), (2, 0), (8, 0), (4, 1), (1, 0))
PIN_P1P2 = ((0, PIN_USER), (0, PIN_USER), (0, PIN_USER), (0, PIN_SO), (0, PIN_SO), (0, 0x85), (0, 0x86), (1, PIN_USER),
            (0, 0x80))
RRC_P1P2 = ((0, PIN_USER), (0, PIN_USER), (1, PIN_USER), (1, PIN_USER), (2, PIN_USER), (3, PIN_USER), (1, PIN_SO))


@dataclass(frozen=True)
class Grammar:
    """Knobs of the grammar. RSA key generation costs 0.1-1 s a key: off for CI."""

    rsa: bool = False
    max_actions: int = 12


def tlv_item(ch: Chooser, tag: int, value: bytes) -> bytes:
    """One data object, usually well encoded, sometimes with a lying or odd length field."""
    head = tlv.tag_bytes(tag)
    form = ch.integer(0, 11)
    if form <= 6:
        return head + tlv.encode_length(len(value)) + value
    if form == 7:  # non-minimal long form (BER allows it)
        return head + bytes([0x82]) + len(value).to_bytes(2, "big") + value
    if form == 8:  # indefinite length: refused by smart-card BER
        return head + b"\x80" + value + b"\x00\x00"
    if form == 9:  # a length longer than anything that follows
        return head + pick(ch, (b"\x82\xff\xff", b"\x83\xff\xff\xff", b"\x84\xff\xff\xff\xff", b"\x81\xff")) + value
    if form == 10:  # off by a few
        return head + bytes([min(0x7F, max(0, len(value) + ch.integer(-3, 3)))]) + value
    return head  # the length is missing altogether


def mutate(ch: Chooser, blob: bytes) -> bytes:
    """Break a well-formed blob the way hostile hosts do: truncate, flip, nest, repeat, inflate."""
    if not blob:
        return ch.raw(size(ch))
    how = ch.integer(0, 6)
    if how == 0:
        return blob[: ch.integer(0, len(blob) - 1)]
    if how == 1:
        at = ch.integer(0, len(blob) - 1)
        return blob[:at] + bytes([blob[at] ^ (1 << ch.integer(0, 7))]) + blob[at + 1 :]
    if how == 2:  # nested: the blob wrapped in constructed objects, sometimes deeply
        for _ in range(pick(ch, (1, 2, 8, 200))):
            blob = tlv_item(ch, pick(ch, (0x7F49, 0x30, 0x62, 0x7F21, 0x67)), blob)
        return blob
    if how == 3:
        return blob + blob[: ch.integer(1, len(blob))]
    if how == 4:
        return blob + ch.raw(ch.integer(1, 8))
    if how == 5:
        at = ch.integer(0, len(blob))
        return blob[:at] + pick(ch, (b"\x00", b"\xff", b"\x1f", b"\x5f", b"\x9f\xff\xff\xff")) + blob[at:]
    return ch.raw(len(blob))


def tlv_soup(ch: Chooser, tags: Sequence[int], depth: int = 2) -> bytes:
    """A run of data objects from `tags`; constructed tags sometimes hold more soup."""
    out = b""
    for _ in range(ch.integer(0, 5)):
        tag = pick(ch, tags)
        constructed = tlv.tag_bytes(tag)[0] & 0x20
        value = tlv_soup(ch, tags, depth - 1) if constructed and depth > 0 and one_in(ch, 2) else ch.raw(size(ch, 12, 200))
        out += tlv_item(ch, tag, value)
    return out


def init_body(ch: Chooser) -> bytes:
    """INITIALIZE DEVICE TLVs: usually plausible (dictionary PINs, in-range values), so the
    right initialization code and deep states come up; then perhaps broken."""
    values: dict[int, Callable[[], bytes]] = {
        0x80: lambda: pick(ch, (b"\x00\x01", b"\x00\x00", b"\x00\x02", b"\x00\x03", b"\xff\xff", b"\x01")),
        0x81: lambda: pick(ch, PINS) if one_in(ch, 2) else ch.raw(ch.integer(0, 20)),
        0x82: lambda: pick(ch, (DEFAULT_SO_PIN, ALT_SO_PIN, bytes(8), DEFAULT_SO_PIN[:7], DEFAULT_SO_PIN + b"0")),
        0x91: lambda: bytes([pick(ch, (1, 3, 5, 10, 0, 11, 255))]) if not one_in(ch, 8) else b"",
        0x92: lambda: bytes([pick(ch, (0, 1, 2, 255))]),
        0x93: lambda: pick(ch, (b"\x02\x01", b"\x01\x02", b"\x5b\x01", b"\x00\x00", b"\x01")),
        0x95: lambda: ch.raw(ch.integer(0, 18)),
        0x96: lambda: ch.raw(ch.integer(0, 18)),
        0x97: lambda: ch.raw(ch.integer(0, 2)),
    }
    chosen = [t for t in INIT_TAGS if (t in (0x81, 0x82) and not one_in(ch, 12)) or one_in(ch, 3)]
    if one_in(ch, 8):
        chosen.append(pick(ch, (*INIT_TAGS, 0x01, 0x5F20, 0x7F49)))  # duplicate or unknown
    if one_in(ch, 3):
        chosen = [chosen[(i + 1) % len(chosen)] for i in range(len(chosen))] if chosen else chosen
    body = b"".join(tlv_item(ch, t, values.get(t, lambda: ch.raw(3))()) for t in chosen)
    return mutate(ch, body) if one_in(ch, 4) else body


def cv_body(ch: Chooser, grammar: Grammar) -> bytes:
    """GENERATE ASYMMETRIC KEY PAIR data: a valid EC body, an RSA body, or broken ones."""
    kind = ch.integer(0, 5)
    if kind == 5:
        return tlv_soup(ch, CV_TAGS)
    if kind == 4 and grammar.rsa:
        bits = pick(ch, (2048, 1024, 4096, 0, 65535, 3072))
        key = (tlv.encode(0x06, cvc.encode_oid(OID_TA_RSA_V1_5_SHA256)) + tlv.encode(0x82, b"\x01\x00\x01")
               + tlv.encode(0x02, bits.to_bytes(2, "big")))
    else:
        domain = cvc.CURVES[pick(ch, tuple(cvc.CURVES))]
        width = domain.field_bytes
        parts = [
            tlv.encode(0x06, cvc.encode_oid(OID_TA_ECDSA_SHA256)),
            tlv.encode(0x81, domain.p.to_bytes(width, "big")),
            tlv.encode(0x82, domain.a.to_bytes(width, "big")),
            tlv.encode(0x83, domain.b.to_bytes(width, "big")),
            tlv.encode(0x84, domain.generator),
            tlv.encode(0x85, domain.n.to_bytes(domain.order_bytes, "big")),
            tlv.encode(0x87, bytes([domain.h])),
        ]
        if one_in(ch, 6):
            del parts[ch.integer(0, len(parts) - 1)]
        key = b"".join(parts)
    body = (tlv.encode(0x5F29, b"\x00") + tlv.encode(0x42, b"UTCA00001") + tlv.encode(0x7F49, key)
            + (tlv.encode(0x5F20, pick(ch, (b"UTCTFUZZ00001", b"", b"\xff" * 3, b"X" * 40))) if one_in(ch, 2) else b""))
    return mutate(ch, body) if one_in(ch, 4) else body


def pin_data(ch: Chooser) -> bytes:
    how = ch.integer(0, 9)
    if how == 0:
        return b""  # a status query
    if how <= 4:
        return pick(ch, PINS)
    if how <= 6:
        return pick(ch, PINS) + pick(ch, PINS)  # CHANGE (old || new), RESET RETRY COUNTER (SO || new)
    if how == 7:
        return bytes(0x30 + ch.integer(0, 9) for _ in range(ch.integer(1, 20)))
    return ch.raw(size(ch, 24, 300))


def fid_bytes(ch: Chooser) -> bytes:
    return pick(ch, FIDS).to_bytes(2, "big") if not one_in(ch, 5) else ch.raw(pick(ch, (0, 1, 3, 2)))


def offset_tlv(ch: Chooser) -> bytes:
    offset = pick(ch, (0, 0, 1, 100, 0x7FFF, 0xFFFF)) if not one_in(ch, 3) else ch.integer(0, 2000)
    return tlv_item(ch, 0x54, offset.to_bytes(2, "big") if not one_in(ch, 8) else ch.raw(ch.integer(0, 4)))


def le_field(ch: Chooser) -> int | None:
    """None: no Le. 0 means the maximum of whichever form (short 256, extended 65536)."""
    return pick(ch, (None, None, 0, 0, 1, 2, 16, 255, 256, 300, 1024, 1025, 65535))


Body = tuple[bytes, int | None]


def body_for(ch: Chooser, ins: int, p1: int, p2: int, grammar: Grammar) -> Body:
    """Data and Le for one instruction, shaped like what that instruction expects."""
    if ins == Ins.SELECT:
        if p1 == 4:
            data = pick(ch, (AID, AID, AID[:-1], AID + b"\x00", b"\xa0\x00\x00\x03\x97", b""))
        else:
            data = pick(ch, (fid_bytes(ch), b"", b"\x3f\x00"))
        return data, pick(ch, (None, 0, 0))
    if ins in (Ins.VERIFY, Ins.CHANGE_REFERENCE_DATA, Ins.RESET_RETRY_COUNTER):
        return pin_data(ch), None if not one_in(ch, 10) else 0
    if ins == Ins.INITIALIZE_DEVICE:
        return (init_body(ch) if not one_in(ch, 12) else b""), None if not one_in(ch, 10) else 0
    if ins == Ins.IMPORT_DKEK_SHARE:
        return pick(ch, (b"", b"", ch.raw(32), ch.raw(size(ch, 40)))), pick(ch, (0, None))
    if ins == Ins.GENERATE_ASYMMETRIC_KEY_PAIR:
        return (cv_body(ch, grammar) if not one_in(ch, 10) else b""), pick(ch, (0, 0, None, 256))
    if ins in (Ins.SIGN, Ins.DECIPHER):
        return ch.raw(pick(ch, (0, 20, 32, 32, 48, 64, 256, 255, 257, size(ch, 600, 600)))), pick(ch, (0, None, 1))
    if ins == Ins.READ_BINARY_ODD:
        data = offset_tlv(ch) if not one_in(ch, 6) else tlv_soup(ch, (0x54, 0x53, 0x5F20))
        return data, le_field(ch)
    if ins == Ins.UPDATE_BINARY_ODD:
        chunk = tlv_item(ch, 0x53, ch.raw(size(ch, 40, 1500)))
        parts = [offset_tlv(ch), chunk]
        if one_in(ch, 4):
            parts.reverse()
        data = b"".join(parts)
        return (mutate(ch, data) if one_in(ch, 5) else data), None if not one_in(ch, 8) else 0
    if ins == Ins.DELETE_FILE:
        return fid_bytes(ch), None if not one_in(ch, 8) else 0
    if ins == Ins.GET_CHALLENGE:
        return (b"" if not one_in(ch, 8) else ch.raw(4)), pick(ch, (None, 0, 1, 8, 255, 256, 1024, 1025, 65535))
    if ins in (Ins.ENUMERATE_OBJECTS, Ins.GET_RESPONSE):
        return (b"" if not one_in(ch, 8) else ch.raw(3)), le_field(ch)
    return ch.raw(size(ch)), le_field(ch)


def params(ch: Chooser, ins: int) -> tuple[int, int]:
    if one_in(ch, 12):
        return ch.integer(0, 255), ch.integer(0, 255)
    if ins == Ins.SELECT:
        return pick(ch, SELECT_P1P2)
    if ins in (Ins.VERIFY, Ins.CHANGE_REFERENCE_DATA):
        return pick(ch, PIN_P1P2)
    if ins == Ins.RESET_RETRY_COUNTER:
        return pick(ch, RRC_P1P2)
    if ins in (Ins.READ_BINARY_ODD, Ins.UPDATE_BINARY_ODD):
        fid = pick(ch, FIDS)
        return fid >> 8, fid & 0xFF
    if ins == Ins.DELETE_FILE:
        return pick(ch, ((2, 0), (2, 0), (0, 0)))
    if ins == Ins.GENERATE_ASYMMETRIC_KEY_PAIR:
        return pick(ch, (1, 2, 3, 1, 0, 0xFF)), pick(ch, (0, 0, 1))
    if ins in (Ins.SIGN, Ins.DECIPHER):
        return pick(ch, (0, 1, 1, 2, 0xFF)), pick(ch, ALGORITHMS)
    return 0, 0


def header(ch: Chooser) -> tuple[int, int]:
    """CLA and INS: mostly the applet's own pairs, sometimes crossed or foreign."""
    how = ch.integer(0, 29)
    ins = int(pick(ch, WEIGHTED_INS))
    natural = CLA_ISO if ins in ISO_INS else CLA_PROPRIETARY
    if how <= 26:
        return natural, ins
    if how == 27:
        return natural ^ 0x80, ins
    if how == 28:
        return pick(ch, ODD_CLA), ins
    return ch.integer(0, 255), ch.integer(0, 255)


def encode(head: bytes, data: bytes, le: int | None, extended: bool) -> bytes:
    """ISO 7816-4 encoding; `extended` is forced when the data or Le need it (the mapper's)."""
    return apdu(head[0], head[1], head[2], head[3], data, le, extended)


def frame(ch: Chooser, head: bytes, data: bytes, le: int | None) -> bytes:
    """Mostly a correct encoding; one in seven breaks the length fields on purpose."""
    good = encode(head, data, le, extended=one_in(ch, 5))
    if not one_in(ch, 7):
        return good
    how = ch.integer(0, 9)
    n = len(data)
    if how == 0:  # short Lc off by a few
        return head + bytes([max(1, min(255, n + ch.integer(-3, 3)))]) + data
    if how == 1:  # extended Lc 0000, or larger than what follows
        return head + b"\x00" + pick(ch, (b"\x00\x00", b"\xff\xff", (n + 1).to_bytes(2, "big"))) + data
    if how == 2:  # extended Lc with a short Le, or short Lc with an extended Le
        if n and n < 256:
            return head + pick(ch, (b"\x00" + n.to_bytes(2, "big") + data + b"\x00",
                                    bytes([n]) + data + b"\x00\x00"))
        return head + b"\x00\x00"
    if how == 3:  # truncated anywhere, header included
        return good[: ch.integer(0, max(0, len(good) - 1))]
    if how == 4:
        return good + ch.raw(ch.integer(1, 3))
    if how == 5:  # only the extended marker and one length byte
        return head + b"\x00" + ch.raw(1)
    if how == 6:
        return head + b"\x00\x00\x00"  # extended Le 0000 (65536) on anything
    if how == 7:  # a huge Lc with little data
        return head + b"\x00\xff\xff" + data[:8]
    if how == 8:
        return head + ch.raw(size(ch, 8, 400))
    return head


@dataclass(frozen=True)
class Power:
    """A power event between APDUs: what the host does to the reader."""

    kind: str  # "reset" | "power-cycle"


Action = bytes | Power
SELECT_APPLET = encode(bytes([CLA_ISO, Ins.SELECT, 4, 0]), AID, 0, extended=False)


def command(ch: Chooser, grammar: Grammar = Grammar()) -> bytes:
    cla, ins = header(ch)
    p1, p2 = params(ch, ins)
    data, le = body_for(ch, ins, p1, p2, grammar)
    return frame(ch, bytes([cla, ins, p1, p2]), data, le)


def action(ch: Chooser, grammar: Grammar = Grammar()) -> Action:
    how = ch.integer(0, 39)
    if how == 0:
        return Power(pick(ch, ("reset", "power-cycle")))
    if how == 1:
        return SELECT_APPLET
    if how == 2:
        return ch.raw(size(ch, 12, 300))  # plain bytes, no structure at all
    if how <= 12:
        return valid_command(ch)  # depth: the fuzzed commands then meet keys, files, sessions
    return command(ch, grammar)


def actions(ch: Chooser, grammar: Grammar = Grammar()) -> list[Action]:
    """A session of actions; after a power event the host usually selects the applet again
    (not always: the card manager's answers are fuzzed too)."""
    out: list[Action] = []
    for _ in range(ch.integer(1, grammar.max_actions)):
        out.append(action(ch, grammar))
        if isinstance(out[-1], Power) and not one_in(ch, 4):
            out.append(SELECT_APPLET)
    return out


def describe(act: Action) -> str:
    return act.kind if isinstance(act, Power) else act.hex().upper()



# ---------------------------------------------------------------------------------------------
# Well-formed commands: what a well-behaved host sends with the starts' PINs


def raw_apdu(cla: int, ins: int, p1: int, p2: int, data: bytes = b"", le: int | None = None) -> bytes:
    return encode(bytes([cla, ins, p1, p2]), data, le, extended=False)


def init_apdu(extra: bytes) -> bytes:
    body = (tlv.encode(0x80, b"\x00\x01") + tlv.encode(0x81, DEFAULT_USER_PIN) + tlv.encode(0x82, DEFAULT_SO_PIN)
            + tlv.encode(0x91, b"\x03") + extra)
    return raw_apdu(CLA_PROPRIETARY, Ins.INITIALIZE_DEVICE, 0, 0, body)


def write_apdu(fid: int, content: bytes) -> bytes:
    data = tlv.encode(0x54, b"\x00\x00") + tlv.encode(0x53, content)
    return raw_apdu(CLA_ISO, Ins.UPDATE_BINARY_ODD, fid >> 8, fid & 0xFF, data)


VERIFY_DEFAULT = raw_apdu(CLA_ISO, Ins.VERIFY, 0, PIN_USER, DEFAULT_USER_PIN)


def ec_body() -> bytes:
    """A valid GAKP body for a P-256 key."""
    domain = cvc.CURVES["secp256r1"]
    width = domain.field_bytes
    key = b"".join([
        tlv.encode(0x06, cvc.encode_oid(OID_TA_ECDSA_SHA256)), tlv.encode(0x81, domain.p.to_bytes(width, "big")),
        tlv.encode(0x82, domain.a.to_bytes(width, "big")), tlv.encode(0x83, domain.b.to_bytes(width, "big")),
        tlv.encode(0x84, domain.generator), tlv.encode(0x85, domain.n.to_bytes(domain.order_bytes, "big")),
        tlv.encode(0x87, bytes([domain.h]))])
    return tlv.encode(0x5F29, b"\x00") + tlv.encode(0x42, b"UTCA00001") + tlv.encode(0x7F49, key)


def valid_command(ch: Chooser) -> bytes:
    """A command a well-behaved host sends with the starts' (default) PINs: these get past the
    checks, so the fuzzed commands around them meet keys, files and verified sessions."""
    key = ch.integer(1, 3)
    fid = pick(ch, (0xC401, 0xCD01, 0xCF01))
    how = ch.integer(0, 15)
    so, pin = DEFAULT_SO_PIN, DEFAULT_USER_PIN
    templates: tuple[Callable[[], bytes], ...] = (
        lambda: VERIFY_DEFAULT,
        lambda: VERIFY_DEFAULT,
        lambda: raw_apdu(CLA_ISO, Ins.VERIFY, 0, PIN_SO, so),
        lambda: raw_apdu(CLA_ISO, Ins.CHANGE_REFERENCE_DATA, 0, PIN_USER, pin + pin),
        lambda: raw_apdu(CLA_ISO, Ins.CHANGE_REFERENCE_DATA, 0, PIN_SO, so + so),
        lambda: raw_apdu(CLA_ISO, Ins.RESET_RETRY_COUNTER, pick(ch, (0, 1)), PIN_USER, so + pick(ch, (pin, b""))),
        lambda: init_apdu(pick(ch, (b"", tlv.encode(0x92, b"\x01")))),
        lambda: encode(bytes([CLA_ISO, Ins.GENERATE_ASYMMETRIC_KEY_PAIR, key, 0]), ec_body(), 0, extended=True),
        lambda: raw_apdu(CLA_PROPRIETARY, Ins.SIGN, key, pick(ch, (0x73, 0x70, 0x20, 0x30)), ch.raw(32), 0),
        lambda: encode(bytes([CLA_PROPRIETARY, Ins.DECIPHER, key, pick(ch, (0x21, 0x22, 0x23, 0x80))]), ch.raw(256), 0, extended=True),
        lambda: write_apdu(fid, ch.raw(size(ch, 30, 600))),
        lambda: raw_apdu(CLA_ISO, Ins.READ_BINARY_ODD, fid >> 8, fid & 0xFF, tlv.encode(0x54, b"\x00\x00"), 0),
        lambda: raw_apdu(CLA_ISO, Ins.DELETE_FILE, 2, 0, pick(ch, (fid, 0xCC00 | key, 0xCE00 | key)).to_bytes(2, "big")),
        lambda: raw_apdu(CLA_PROPRIETARY, Ins.IMPORT_DKEK_SHARE, 0, 0, pick(ch, (b"", ch.raw(32))), 0),
        lambda: encode(bytes([CLA_PROPRIETARY, Ins.ENUMERATE_OBJECTS, 0, 0]), b"", 0, extended=True),
        lambda: raw_apdu(CLA_ISO, Ins.GET_CHALLENGE, 0, 0, b"", pick(ch, (8, 0))),
    )
    return templates[how]()
