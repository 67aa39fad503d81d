"""The custody's view of the token in bytes: the APDUs it sends itself, how it classifies and
parses the suite's, and what it reports (conformance.custody)."""

from __future__ import annotations

from dataclasses import dataclass

from hsm_lifecycle import tlv
from hsm_lifecycle.conformance.interlocks import Apdu
from hsm_lifecycle.conformance.transport.base import Response
from hsm_lifecycle.protocol import AID, CLA_ISO, PIN_SO, SW, TAG_INIT_SO_PIN, TAG_INIT_USER_PIN, Ins, tries_from_sw


def hex_pin(pin: bytes | None) -> str | None:
    return pin.hex().upper() if pin is not None else None


@dataclass(frozen=True)
class Counters:
    """What the token says of itself through free queries. None: not initialized / not known."""

    user: int | None
    so: int | None
    user_sw: str = ""


def describe_change(before: Counters | None, after: Counters | None) -> str:
    """'tries: user PIN 3 -> 3, SO-PIN 15 -> 15' (None: not read / not set)."""
    def show(c: Counters | None, which: str) -> str:
        value = None if c is None else getattr(c, which)
        return "-" if value is None else str(value)

    return f"tries: user PIN {show(before, 'user')} -> {show(after, 'user')}, SO-PIN {show(before, 'so')} -> {show(after, 'so')}"


def select_apdu() -> bytes:
    return bytes([CLA_ISO, Ins.SELECT, 0x04, 0x00, len(AID)]) + AID + b"\x00"


def query_apdu(ref: int) -> bytes:
    return bytes([CLA_ISO, Ins.VERIFY, 0x00, ref])


def case3(cla: int, ins: int, p1: int, p2: int, data: bytes) -> bytes:
    return bytes([cla, ins, p1, p2, len(data)]) + data


def tries_left(rsp: Response) -> int | None:
    if rsp.sw == SW.AUTH_METHOD_BLOCKED:
        return 0
    return tries_from_sw(rsp.sw)


@dataclass
class Tracked:
    """The token as the custody knows it from the APDUs and answers."""

    user_pins: tuple[bytes, ...] = ()  # what the user PIN may be, most likely first
    so_pins: tuple[bytes, ...] = ()
    user_tries: int | None = None
    user_max: int | None = None
    so_tries: int | None = None
    options: int | None = None
    initialized: bool = True
    wiped: bool = False


@dataclass
class Outcome:
    """What `finish` / `restore_token` did, for the bundle and the one sentence."""

    before: Counters | None
    after: Counters | None
    pins_in_place: bool
    objects_left: tuple[str, ...] = ()
    sentence: str = ""
    journal: str = ""

    def to_json(self) -> dict[str, object]:
        def counters(c: Counters | None) -> dict[str, int | None] | None:
            return None if c is None else {"user_tries": c.user, "so_tries": c.so}

        return {
            "before": counters(self.before),
            "after": counters(self.after),
            "owner_pins_in_place": self.pins_in_place,
            "objects_left": list(self.objects_left),
            "message": self.sentence,
            "journal": self.journal,
        }


def classify(a: Apdu) -> str:
    """free | user (presents the user PIN) | so (presents the SO-PIN) | write (keys, objects)."""
    if a.ins in (Ins.VERIFY,):
        if not a.data:
            return "free"
        return "so" if a.p2 == PIN_SO else "user"
    if a.ins == Ins.CHANGE_REFERENCE_DATA:
        return "so" if a.p2 == PIN_SO else "user"
    if a.ins == Ins.RESET_RETRY_COUNTER:
        return "so"
    if a.ins == Ins.INITIALIZE_DEVICE:
        return "so"
    if a.ins in (Ins.SELECT, Ins.READ_BINARY_ODD, Ins.ENUMERATE_OBJECTS, Ins.GET_CHALLENGE, Ins.GET_RESPONSE,
                 Ins.PKA_STATUS, Ins.SIGN, Ins.DECIPHER):
        return "free"
    if a.ins == Ins.IMPORT_DKEK_SHARE and not a.data:
        return "free"
    return "write"


def describe_apdu(a: Apdu) -> str:
    names = {Ins.VERIFY: "VERIFY", Ins.CHANGE_REFERENCE_DATA: "CHANGE REFERENCE DATA", Ins.RESET_RETRY_COUNTER: "RESET RETRY COUNTER",
             Ins.INITIALIZE_DEVICE: "INITIALIZE DEVICE"}
    try:
        name = names.get(Ins(a.ins), Ins(a.ins).name.replace("_", " "))
    except ValueError:
        name = f"INS {a.ins:02X}"
    return f"{name} {a.p1:02X} {a.p2:02X}"


def _init_tlvs(data: bytes) -> dict[int, bytes]:
    try:
        return {obj.tag: obj.value for obj in tlv.decode_all(data)}
    except ValueError:
        return {}


def init_pins(data: bytes) -> tuple[bytes | None, bytes | None]:
    tags = _init_tlvs(data)
    return tags.get(TAG_INIT_USER_PIN), tags.get(TAG_INIT_SO_PIN)


def init_retries(data: bytes) -> int | None:
    value = _init_tlvs(data).get(0x91)
    return value[0] if value else None


def init_options(data: bytes) -> int | None:
    value = _init_tlvs(data).get(0x80)
    return int.from_bytes(value[:2], "big") if value and len(value) >= 2 else None


def parse_inject(text: str) -> tuple[int, str] | None:
    if not text or ":" not in text:
        return None
    n, what = text.split(":", 1)
    try:
        return int(n), what.strip().upper()
    except ValueError:
        return None
