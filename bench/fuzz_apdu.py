"""APDU fuzzing of the emulator: a structure-aware grammar, start states reached through the
model, the invariants every answer must keep, and the long run.

    python -m bench.fuzz_apdu --seconds 300 [--seed N] [--state-dir DIR] [--json FILE]
    from bench.fuzz_apdu import run; figures = run(seconds=60)

One grammar serves three drivers: hypothesis (tests/robustness, through `st.data()`),
`random.Random` (the long run here) and atheris (bench/fuzz_atheris.py). It only asks a
`Chooser` for integers and bytes, so each driver's own search (shrinking, coverage feedback)
steers it.

Start states are reached the way the conformance suite reaches them: the model's shortest
path to a transition out of the wanted state, sent through the conformance mapper and judged
by the oracle step by step (a start that diverges from the model is itself a finding).

Invariants (docs/robustness.md): every input is answered with a status word and no internal
error (6F00 with `token.last_internal_error` set); no counter ever increases except by a
documented successful PIN presentation; nothing changes without a durable write, and no PIN is
compared before its decremented counter is durable (R17); an SO-PIN at 0 tries stays blocked
(R03); key use, writes and deletes answer 9000 only in a verified session (R09, R10); the
identity never changes through an APDU (R08); after a power cut nothing is refunded; and a
file-backed token's state file always loads and equals the live state.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol, TypeVar

from hsm_lifecycle.conformance.mapper import ALT_SO_PIN, ALT_USER_PIN, Mapper, apdu
from hsm_lifecycle.conformance.transport.inprocess import InProcessTransport
from hsm_lifecycle.emulator import Fault, PersistencePoint, PowerCut, PowerEvent, PowerLoss, Profile, Stage, StateFileError, TokenStatus, VirtualToken
from hsm_lifecycle import cvc, tlv
from hsm_lifecycle.protocol import (
    AID,
    CLA_ISO,
    CLA_PROPRIETARY,
    DEFAULT_SO_PIN,
    DEFAULT_USER_PIN,
    FID_C_DEVAUT,
    FID_DEVICE_KEY,
    FIRMWARE_UPDATES_WHILE_SO_BLOCKED,
    OID_TA_ECDSA_SHA256,
    OID_TA_RSA_V1_5_SHA256,
    OPTION_RESET_RETRY_COUNTER,
    PIN_SO,
    PIN_USER,
    SO_PIN_TRIES,
    SW,
    Ins,
)
from hsm_lifecycle.model import EMULATOR_DEFAULTS, Bounds, Command, Exploration, ExtState, explore
from hsm_lifecycle.model import Profile as ModelProfile
from hsm_lifecycle.model.oracle import expect

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
# Start states: reached through the model


class Diverged(Exception):
    """The token answered a start path's step differently from the model."""


class PortalStandIn:
    """What the update portal does to a token, as design.md's firmware_update / portal_login
    rows say, for reaching states only (the real portal is another issue's; device
    authentication is left out: it writes nothing)."""

    def __init__(self, token: VirtualToken) -> None:
        self.token = token

    def firmware_update(self, mapper: Mapper) -> str:
        status = self.token.status()
        blocked = status.initialized and status.so_tries == 0
        if blocked and status.so_blocked_updates < FIRMWARE_UPDATES_WHILE_SO_BLOCKED:
            counted = True
        elif status.user_keys == 0:
            counted = False
        else:
            return "update-refused-limit" if blocked else "update-refused-keys"
        self.token.firmware_update(counted=counted)
        mapper.keys.clear()
        # The updated token comes back deselected; the host reconnects and selects the applet,
        # as the model's states are those of the selected applet.
        mapper.transport.power_cycle()
        mapper.select()
        return "update-ok"

    def login(self, mapper: Mapper) -> str:
        query = mapper.send(bytes([CLA_ISO, Ins.VERIFY, 0, PIN_USER])).sw
        if query != SW.OK and not (query & 0xFFF0 == 0x63C0 and query & 0x0F):
            return "login-refused"
        pin = mapper.pins.user_pin
        answer = mapper.send(bytes([CLA_ISO, Ins.VERIFY, 0, PIN_USER, len(pin)]) + pin).sw
        return "login-ok" if answer == SW.OK else "login-refused"


class ModelDriver:
    """Runs model commands on a token through the conformance mapper; the oracle judges each."""

    def __init__(self, token: VirtualToken, profile: ModelProfile) -> None:
        self.token = token
        self.profile = profile
        self.mapper = Mapper(InProcessTransport(token))
        self.mapper.portal = PortalStandIn(token)
        self.state = ExtState.shipped()
        self.mapper.transport.connect()
        self.mapper.select()  # the model's states are those of the selected applet

    def run(self, cmd: Command) -> str:
        outcome = expect(self.state, cmd, self.profile)
        output = self.mapper.run(cmd, uninitialized=not self.state.is_initialized)
        if not outcome.accepts(output):
            raise Diverged(f"{outcome.describe()}, but the token answered {output}")
        self.state = outcome.next
        return output


@dataclass(frozen=True)
class Start:
    """A state to fuzz from: a model path, then raw APDUs for objects the alphabet cannot make."""

    name: str
    commands: tuple[Command, ...]
    extra: tuple[bytes, ...] = ()


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
# (name, the transition whose source state is the start, raw APDUs after the path)
START_WITNESSES: tuple[tuple[str, str, tuple[bytes, ...]], ...] = (
    ("shipped", "S01", ()),
    ("initialized", "I01", ()),
    ("logged in, key and files", "I33", (write_apdu(0xC401, b"prkd"), write_apdu(0xCD01, b"secret"), write_apdu(0xCF01, b"open"))),
    ("transport PIN", "I03", ()),
    ("RRC off", "I15", ()),
    ("user-blocked", "U01", ()),
    ("so-blocked, logged in, key", "O21", ()),
    ("both-blocked", "B01", ()),
    ("firmware-reset", "F01", ()),
)
RAW_STARTS: tuple[tuple[str, tuple[bytes, ...]], ...] = (
    ("DKEK shares outstanding", (SELECT_APPLET, init_apdu(tlv.encode(0x92, b"\x02")), VERIFY_DEFAULT)),
    ("random DKEK, logged in", (SELECT_APPLET, init_apdu(tlv.encode(0x92, b"\x00")), VERIFY_DEFAULT)),
)


# An RSA key makes DECIPHER and the RSA SIGN algorithms reachable; generating one costs
# ~0.1 s a start, so only the long run (Grammar.rsa) has it.
RSA_START = ("logged in, RSA-2048 key",
             (SELECT_APPLET, init_apdu(b""), VERIFY_DEFAULT,
              encode(bytes([CLA_ISO, Ins.GENERATE_ASYMMETRIC_KEY_PAIR, 1, 0]),
                     tlv.encode(0x5F29, b"\x00") + tlv.encode(0x42, b"UTCA00001") + tlv.encode(0x7F49, tlv.encode(
                         0x06, cvc.encode_oid(OID_TA_RSA_V1_5_SHA256)) + tlv.encode(0x82, b"\x01\x00\x01")
                         + tlv.encode(0x02, (2048).to_bytes(2, "big"))), 0, extended=True)))
START_BOUNDS = Bounds(max_keys=1, max_updates=1)


def plan_starts(profile: ModelProfile, found: Exploration | None = None, rsa: bool = False) -> tuple[Start, ...]:
    """The start states, from one breadth-first exploration of the model within START_BOUNDS
    (~1 s; pass `found` to share one)."""
    found = found or explore(profile, bounds=START_BOUNDS)
    starts = [Start(name, tuple(found.path_to_transition(tid)[:-1]), extra) for name, tid, extra in START_WITNESSES]
    starts += [Start(name, (), extra) for name, extra in (*RAW_STARTS, *((RSA_START,) if rsa else ()))]
    return tuple(starts)


@dataclass(frozen=True)
class Campaign:
    """An emulator profile, the model profile that predicts it, and the starts for both."""

    name: str
    emulator: Profile
    model: ModelProfile
    starts: tuple[Start, ...]

    @classmethod
    def default(cls, found: Exploration | None = None, rsa: bool = False) -> Campaign:
        return cls("emulator defaults", Profile(), EMULATOR_DEFAULTS, plan_starts(EMULATOR_DEFAULTS, found, rsa))

    @classmethod
    def contrary(cls, rsa: bool = False) -> Campaign:
        """Every open behaviour the other way round, so other code paths answer."""
        emulator = Profile(last_wrong_try_sw="6983", wrong_length_pin_sw="63Cx", rrc_disabled_sw="6982",
                           rrc_disabled_spends_so_try=True, so_success_restores=False, retries_by_pin_length=True,
                           auth_after_init=True, auth_after_change=True, init_wrong_so_sw="6982")
        model = replace(EMULATOR_DEFAULTS, name="emulator contrary", init_wrong_so_sw=frozenset({"6982"}),
                        last_wrong_try_sw=frozenset({"6983"}), wrong_length_pin_sw=frozenset({"63Cx"}),
                        rrc_disabled_sw=frozenset({"6982"}), rrc_disabled_spends_so_try=True,
                        so_success_restores=False, retries_by_pin_length=True, auth_after_init=True,
                        auth_after_change=True)
        return cls("open behaviours reversed", emulator, model, plan_starts(model, rsa=rsa))


# ---------------------------------------------------------------------------------------------
# Invariants

RESTORING = frozenset({PersistencePoint.USER_TRY_RESTORED, PersistencePoint.USER_PIN_CHANGED,
                       PersistencePoint.USER_PIN_RESET, PersistencePoint.SO_TRY_RESTORED,
                       PersistencePoint.SO_PIN_CHANGED, PersistencePoint.DEVICE_INITIALIZED})
SPENDING = {PersistencePoint.USER_TRY_SPENT: "user_tries", PersistencePoint.SO_TRY_SPENT: "so_tries"}
KEY_USE = frozenset({Ins.GENERATE_ASYMMETRIC_KEY_PAIR, Ins.SIGN, Ins.DECIPHER, Ins.UPDATE_BINARY_ODD, Ins.DELETE_FILE})
VOLATILE = ("authenticated", "selected")


def durable(status: TokenStatus) -> dict[str, object]:
    """What survives a power cycle: everything in the status but the card session."""
    return {k: v for k, v in vars(status).items() if k not in VOLATILE}


@dataclass(frozen=True)
class Apdu:
    """The parts of a command the invariants look at (a header the applet dispatched on)."""

    cla: int
    ins: int
    p1: int
    p2: int
    has_data: bool

    @classmethod
    def of(cls, capdu: bytes) -> Apdu | None:
        if len(capdu) < 4:
            return None
        return cls(capdu[0], capdu[1], capdu[2], capdu[3], len(capdu) > 5)

    def is_(self, cla: int, ins: int, p2: int | None = None) -> bool:
        return (self.cla, self.ins) == (cla, ins) and (p2 is None or self.p2 == p2)


def pin_order(events: Sequence[PowerEvent], complete: bool = False) -> list[str]:
    """R17: every PIN comparison comes after a durable decrement within the same command. In a
    command that ran to the end (`complete`), every decrement is also followed by a comparison:
    a try spent on no comparison is a wrong-length or query refusal that cost a try (R16, R19)."""
    problems, spent = [], False
    for event in events:
        if event.stage is Stage.AFTER and event.point in SPENDING:
            spent = True
        if event.point is PersistencePoint.PIN_COMPARED:
            if not spent:
                problems.append("R17: a PIN was compared before its decremented counter was durable")
            spent = False
    if complete and spent:
        problems.append("R16/R19: a try was spent on a presentation that was never compared")
    return problems


@dataclass(frozen=True)
class Invariants:
    """What no input may break; `check` and `check_cut` return the broken ones as sentences."""

    profile: Profile

    def check(self, capdu: bytes, rapdu: bytes, before: TokenStatus, after: TokenStatus,
              events: Sequence[PowerEvent]) -> list[str]:
        if len(rapdu) < 2:
            return [f"answer of {len(rapdu)} bytes: no status word"]
        sw = int.from_bytes(rapdu[-2:], "big")
        cmd = Apdu.of(capdu)
        # 61xx: done, and more of the answer waits for GET RESPONSE.
        ok = (sw == SW.OK or sw >> 8 == 0x61) and cmd is not None
        problems = pin_order(events, complete=True)
        was, now = durable(before), durable(after)
        wrote = any(e.stage is Stage.AFTER for e in events)
        if was != now and not wrote:
            problems.append("the durable state changed without a durable write")
        if wrote and len(capdu) == 4 and cmd is not None and cmd.is_(CLA_ISO, Ins.VERIFY):
            problems.append("R19: a status query wrote to the state")
        problems += self._identity(before, after)
        problems += self._so_counter(cmd, ok, before, after)
        problems += self._user_counter(cmd, ok, before, after)
        init_ok = ok and cmd is not None and cmd.is_(CLA_PROPRIETARY, Ins.INITIALIZE_DEVICE)
        if (before.user_max, before.options) != (after.user_max, after.options) and not init_ok:
            problems.append("user-PIN maximum or options changed without an accepted INITIALIZE")
        if after.transport_pin and not before.transport_pin and not init_ok:
            problems.append("transport-PIN mode came back without INITIALIZE (R11)")
        if before.initialized and not after.initialized:
            problems.append("an APDU made an initialized token uninitialized (R01)")
        if after.initialized and not before.initialized and not init_ok:
            problems.append("the token became initialized without an accepted INITIALIZE")
        if init_ok and before.initialized and not any(e.point is PersistencePoint.PIN_COMPARED for e in events):
            problems.append("R01: an initialized token was re-initialized without checking the SO-PIN")
        problems += self._objects(cmd, ok, before, after, init_ok)
        problems += self._session(cmd, ok, before, after, init_ok)
        return problems

    def check_cut(self, before: TokenStatus, after: TokenStatus, events: Sequence[PowerEvent]) -> list[str]:
        """After a power cut and power-on: nothing refunded, no session, identity kept."""
        problems = pin_order(events)
        problems += self._identity(before, after)
        restored = any(e.stage is Stage.AFTER and e.point in RESTORING for e in events)
        compared = any(e.point is PersistencePoint.PIN_COMPARED for e in events)
        for point, name in SPENDING.items():
            spent = any(e.stage is Stage.AFTER and e.point is point for e in events)
            old, new = getattr(before, name), getattr(after, name)
            if new > old and not restored:
                problems.append(f"R17: {name} went from {old} to {new} across a power cut")
            if spent and compared and not restored and new != max(old - 1, 0):
                problems.append(f"R17: {name} is {new} after a cut past the comparison (before {old}): refunded")
        if after.authenticated:
            problems.append("a session survived the power cut")
        return problems

    @staticmethod
    def _identity(before: TokenStatus, after: TokenStatus) -> list[str]:
        same = (before.device_chr, before.identity_generation, before.so_blocked_updates) == (
            after.device_chr, after.identity_generation, after.so_blocked_updates)
        kept = 0xCC00 in after.keys and 0x2F02 in after.files
        return [] if same and kept else ["the device identity changed or lost CC00/2F02 through an APDU (R08)"]

    def _so_counter(self, cmd: Apdu | None, ok: bool, before: TokenStatus, after: TokenStatus) -> list[str]:
        if after.so_tries <= before.so_tries:
            return []
        if not before.initialized:
            good = ok and cmd is not None and cmd.is_(CLA_PROPRIETARY, Ins.INITIALIZE_DEVICE) and after.so_tries == SO_PIN_TRIES
            return [] if good else [f"SO tries rose to {after.so_tries} on an uninitialized token without INITIALIZE (R21)"]
        if before.so_tries == 0:
            return ["R03: the SO-PIN counter left 0"]
        presents_so = cmd is not None and (
            cmd.is_(CLA_ISO, Ins.VERIFY, PIN_SO) or cmd.is_(CLA_ISO, Ins.CHANGE_REFERENCE_DATA, PIN_SO)
            or cmd.is_(CLA_ISO, Ins.RESET_RETRY_COUNTER) or cmd.is_(CLA_PROPRIETARY, Ins.INITIALIZE_DEVICE))
        if ok and presents_so and self.profile.so_success_restores and after.so_tries == SO_PIN_TRIES:
            return []
        return [f"SO tries rose from {before.so_tries} to {after.so_tries} without a right SO-PIN (R02)"]

    @staticmethod
    def _user_counter(cmd: Apdu | None, ok: bool, before: TokenStatus, after: TokenStatus) -> list[str]:
        if cmd is None:
            return []
        accepted_pin = ok and before.initialized and cmd.is_(CLA_ISO, Ins.VERIFY, PIN_USER) and cmd.has_data
        if accepted_pin and after.user_tries != after.user_max:
            return [f"R04: a right user PIN left the counter at {after.user_tries} of {after.user_max}"]
        if after.user_tries <= before.user_tries:
            return []
        if ok and cmd.is_(CLA_PROPRIETARY, Ins.INITIALIZE_DEVICE):
            return []
        if ok and cmd.is_(CLA_ISO, Ins.RESET_RETRY_COUNTER) and after.user_tries == after.user_max:
            return []
        presents = cmd.is_(CLA_ISO, Ins.VERIFY, PIN_USER) or cmd.is_(CLA_ISO, Ins.CHANGE_REFERENCE_DATA, PIN_USER)
        if ok and presents and before.user_tries > 0 and after.user_tries == after.user_max:
            return []
        why = " (R05: it was blocked)" if before.user_tries == 0 else ""
        return [f"user tries rose from {before.user_tries} to {after.user_tries} without a right user PIN{why} (R04)"]

    @staticmethod
    def _objects(cmd: Apdu | None, ok: bool, before: TokenStatus, after: TokenStatus, init_ok: bool) -> list[str]:
        if init_ok:
            left = (set(after.keys) - {FID_DEVICE_KEY}) | (set(after.files) - {FID_C_DEVAUT})
            return [f"R07: INITIALIZE left objects {sorted(left)}"] if left else []
        problems = []
        gained, lost = set(after.keys) - set(before.keys), set(before.keys) - set(after.keys)
        if gained and not (ok and cmd is not None and cmd.ins == Ins.GENERATE_ASYMMETRIC_KEY_PAIR):
            problems.append(f"keys {sorted(gained)} appeared without GENERATE ASYMMETRIC KEY PAIR")
        if lost and not (ok and cmd is not None and cmd.ins == Ins.DELETE_FILE):
            problems.append(f"keys {sorted(lost)} vanished without DELETE FILE or INITIALIZE (R01)")
        if set(after.files) != set(before.files) and not (ok and cmd is not None and cmd.ins in KEY_USE):
            problems.append("the file list changed without an accepted write, delete or key generation")
        return problems

    def _session(self, cmd: Apdu | None, ok: bool, before: TokenStatus, after: TokenStatus, init_ok: bool) -> list[str]:
        problems = []
        if cmd is not None and ok and cmd.ins in KEY_USE and cmd.cla in (CLA_ISO, CLA_PROPRIETARY) and not before.authenticated:
            problems.append(f"INS {cmd.ins:02X} answered 9000 without a verified user PIN (R10, R09)")
        if after.authenticated and not before.authenticated:
            usable = before.initialized and not before.transport_pin  # R20, R11
            granted = cmd is not None and ok and (
                (cmd.is_(CLA_ISO, Ins.VERIFY, PIN_USER) and cmd.has_data and usable)
                or (init_ok and self.profile.auth_after_init)
                or (cmd.is_(CLA_ISO, Ins.CHANGE_REFERENCE_DATA, PIN_USER) and self.profile.auth_after_change))
            if not granted:
                problems.append("a session started without a right user PIN (R09, R10, R11, R20)")
        if cmd is not None and ok and cmd.is_(CLA_ISO, Ins.SELECT) and cmd.p1 == 4 and after.authenticated:
            problems.append("the session survived a SELECT of the applet (R10)")
        if cmd is not None and ok and cmd.is_(CLA_ISO, Ins.RESET_RETRY_COUNTER) and not before.options & OPTION_RESET_RETRY_COUNTER:
            problems.append("RESET RETRY COUNTER answered 9000 with option 0x0001 off (R06)")
        return problems


# ---------------------------------------------------------------------------------------------
# A fuzzed token


@dataclass(frozen=True)
class Finding:
    campaign: str
    start: str
    problem: str
    actions: tuple[str, ...]  # the actions from the start up to the one that broke it

    def to_json(self) -> dict[str, object]:
        return {"campaign": self.campaign, "start": self.start, "problem": self.problem, "actions": list(self.actions)}


@dataclass
class FuzzedToken:
    """One token at a start state; `apply` sends actions and collects broken invariants."""

    campaign: Campaign
    start: Start
    path: Path | None = None  # file-backed when given: then the state file is checked too
    faults: frozenset[Fault] = frozenset()  # only to show the invariants catch a broken token
    token: VirtualToken = field(init=False)
    findings: list[Finding] = field(default_factory=list)
    log: list[str] = field(default_factory=list)
    sws: Counter[str] = field(default_factory=Counter)
    answers: Counter[tuple[int, str]] = field(default_factory=Counter)  # (INS, SW) of the applet's own CLAs
    apdus: int = 0
    cuts: int = 0
    file_checks: int = 0

    def __post_init__(self) -> None:
        self.token = VirtualToken.manufacture(state_path=self.path, profile=self.campaign.emulator, faults=self.faults)
        driver = ModelDriver(self.token, self.campaign.model)
        for cmd in self.start.commands:
            driver.run(cmd)
        for capdu in self.start.extra:
            answer = self.token.transmit(capdu)
            if answer[-2:] != b"\x90\x00":
                raise Diverged(f"start {self.start.name!r}: {capdu.hex().upper()} answered {answer.hex().upper()}")
        self.invariants = Invariants(self.campaign.emulator)

    def apply(self, act: Action, cut_at: int | None = None) -> None:
        self.log.append(describe(act))
        if isinstance(act, Power):
            if act.kind == "reset":
                self.token.reset()
            else:
                self.token.power_off()
                self.token.power_on()
            self._expect(["a session survived a reset"] if self.token.status().authenticated else [])
            return
        self._send(act, cut_at)

    def _send(self, capdu: bytes, cut_at: int | None) -> None:
        before, writes = self.token.status(), self.token.writes
        hook = PowerCut(at=cut_at)
        self.token.set_power_loss_hook(hook)
        self.apdus += 1
        try:
            rapdu = self.token.transmit(capdu)
        except PowerLoss:
            self.cuts += 1
            self.token.set_power_loss_hook(None)
            self.token.power_on()
            self._expect(self.invariants.check_cut(before, self.token.status(), hook.events))
            self.log.append("(power cut)")
            self.token.transmit(SELECT_APPLET)
        else:
            self.token.set_power_loss_hook(None)
            sw = rapdu[-2:].hex().upper()
            self.sws[sw] += 1
            if len(capdu) >= 4 and capdu[0] in (CLA_ISO, CLA_PROPRIETARY):
                self.answers[(capdu[1], sw)] += 1
            self._expect(self.invariants.check(capdu, rapdu, before, self.token.status(), hook.events))
        error = self.token.last_internal_error
        if error is not None:
            self.token.last_internal_error = None
            self._expect([f"internal error (6F00): {error!r}"])
        if self.path is not None and self.token.writes != writes:
            self._expect(self._file_loads())

    def _file_loads(self) -> list[str]:
        """The state file opens and holds exactly the live durable state."""
        assert self.path is not None
        self.file_checks += 1
        try:
            stored = VirtualToken.open(self.path).status()
        except StateFileError as exc:
            return [f"the state file no longer loads: {exc}"]
        if durable(stored) != durable(self.token.status()):
            return ["the state file differs from the live token's durable state"]
        return []

    def _expect(self, problems: list[str]) -> None:
        for problem in problems:
            self.findings.append(Finding(self.campaign.name, self.start.name, problem, tuple(self.log)))


# ---------------------------------------------------------------------------------------------
# The long run


@dataclass
class Tally:
    sequences: int = 0
    apdus: int = 0
    cuts: int = 0
    file_checks: int = 0
    sws: Counter[str] = field(default_factory=Counter)
    answers: Counter[tuple[int, str]] = field(default_factory=Counter)
    by_start: Counter[str] = field(default_factory=Counter)
    findings: list[Finding] = field(default_factory=list)
    kinds: Counter[str] = field(default_factory=Counter)

    def add(self, fuzzed: FuzzedToken) -> None:
        self.sequences += 1
        self.apdus += fuzzed.apdus
        self.cuts += fuzzed.cuts
        self.file_checks += fuzzed.file_checks
        self.sws.update(fuzzed.sws)
        self.answers.update(fuzzed.answers)
        self.by_start[fuzzed.start.name] += fuzzed.apdus
        for finding in fuzzed.findings:
            kind = finding.problem.split(":")[0][:80]
            self.kinds[kind] += 1
            if self.kinds[kind] <= 3:  # keep a few reproductions of each kind
                self.findings.append(finding)


def _successes(answers: Counter[tuple[int, str]]) -> dict[str, str]:
    """Per instruction of the applet: how often it was accepted (9000, 61xx, 6282) of all tries,
    i.e. how deep the grammar got, not only how much it was refused."""
    out = {}
    for ins in sorted({ins for ins, _ in answers}):
        if ins not in set(Ins):
            continue
        total = sum(n for (i, _), n in answers.items() if i == ins)
        good = sum(n for (i, sw), n in answers.items() if i == ins and (sw in ("9000", "6282") or sw.startswith("61")))
        out[Ins(ins).name] = f"{good}/{total}"
    return out


def run(seconds: float = 60.0, seed: int = 0, state_dir: Path | None = None, file_every: int = 8,
        cut_one_in: int = 5, grammar: Grammar = Grammar(rsa=True, max_actions=40),
        campaigns: Sequence[Campaign] | None = None) -> dict[str, object]:
    """Fuzz for `seconds`; returns the figures (inputs run, findings, SW spread). Every
    `file_every`-th sequence runs on a file-backed token in `state_dir` (a temporary
    directory if None); one APDU in `cut_one_in` gets a power cut at a random event.
    `campaigns` defaults to the emulator's defaults and every open behaviour reversed."""
    rng = random.Random(seed)
    ch = RandomChooser(rng)
    began = time.monotonic()
    campaigns = tuple(campaigns) if campaigns is not None else (Campaign.default(rsa=grammar.rsa), Campaign.contrary(rsa=grammar.rsa))
    planning = time.monotonic() - began
    tally = Tally()
    with tempfile.TemporaryDirectory(prefix="hsm-fuzz-", dir=state_dir) as tmp:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            campaign = pick(ch, campaigns)
            start = pick(ch, campaign.starts)
            path = Path(tmp) / f"token-{tally.sequences}.json" if tally.sequences % file_every == 0 else None
            fuzzed = FuzzedToken(campaign, start, path)
            for act in actions(ch, grammar):
                fuzzed.apply(act, cut_at=ch.integer(0, 4) if one_in(ch, cut_one_in) else None)
            tally.add(fuzzed)
            if path is not None:
                path.unlink()
    elapsed = time.monotonic() - began - planning
    return {
        "seed": seed,
        "seconds": round(elapsed, 1),
        "planning_seconds": round(planning, 1),
        "sequences": tally.sequences,
        "inputs": tally.apdus,
        "inputs_per_second": round(tally.apdus / elapsed) if elapsed else 0,
        "power_cuts": tally.cuts,
        "state_file_checks": tally.file_checks,
        "apdus_by_start": dict(tally.by_start.most_common()),
        "status_words": dict(tally.sws.most_common(25)),
        "distinct_status_words": len(tally.sws),
        "successes_by_instruction": _successes(tally.answers),
        "finding_kinds": dict(tally.kinds),
        "findings": [f.to_json() for f in tally.findings],
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.fuzz_apdu", description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="how long to fuzz (default 60)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (a finding replays from it)")
    parser.add_argument("--state-dir", type=Path, default=None, help="where file-backed tokens live (default: a temp dir)")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures to this file")
    args = parser.parse_args(argv)
    figures = run(seconds=args.seconds, seed=args.seed, state_dir=args.state_dir)
    text = json.dumps(figures, indent=1)
    if args.json is not None:
        args.json.write_text(text + "\n", encoding="utf-8")
    print(text)
    return 1 if figures["findings"] else 0


if __name__ == "__main__":
    sys.exit(main())
