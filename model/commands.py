"""The abstract input alphabet (design.md, "The abstract alphabet"), total in every state.

A command names *what* is presented (right/wrong PIN, options, retries), never the bytes: the
conformance mapper turns it into APDUs and tracks the PINs it set. The string form is the
`step` of a trace and parses back with `Command.parse`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from itertools import product
from typing import Iterable

from hsm_lifecycle.protocol import (
    OPTION_RESET_RETRY_COUNTER,
    OPTION_TRANSPORT_PIN,
    USER_PIN_MAX,
    USER_PIN_MIN,
    USER_PIN_TRIES_DEFAULT,
    USER_PIN_TRIES_MAX,
)

RIGHT = "right"
WRONG = "wrong"
WRONG_LENGTH = "wrong_length"
# A PIN longer than any the device takes (user PIN 17 bytes, SO-PIN 9). With wrong_length, which
# PIN of the command has the wrong length: verify_user the PIN presented; change_user_pin the new
# PIN (the old one is right); change_so_pin and initialize the SO-PIN; reset_retry_counter the
# new user PIN when new_pin, else the SO-PIN (R16).
OVER_LONG = "over_long"
BAD_LENGTHS = (WRONG_LENGTH, OVER_LONG)

SELECT = "select"
POWER_CYCLE = "power_cycle"
QUERY_USER = "query_user"
QUERY_SO = "query_so"
VERIFY_USER = "verify_user"
INITIALIZE = "initialize"
RESET_RETRY_COUNTER = "reset_retry_counter"
CHANGE_USER_PIN = "change_user_pin"
CHANGE_SO_PIN = "change_so_pin"
GENERATE_KEY = "generate_key"
SIGN = "sign"
DELETE_KEY = "delete_key"
FIRMWARE_UPDATE = "firmware_update"
PORTAL_LOGIN = "portal_login"
# The widened alphabet: data objects, DECIPHER, warm reset and the device key CC00.
DECIPHER = "decipher"  # ECDH (80 62, algorithm 80) with the newest key
WRITE_DATA = "write_data"  # UPDATE BINARY of the suite's PIN-protected data object (CDxx)
READ_PROTECTED = "read_protected"  # READ BINARY of that object: only the user PIN opens it
WARM_RESET = "warm_reset"  # a warm reset of the card, then SELECT
DEVICE_SIGN = "device_sign"  # SIGN with the device key CC00, checked against the device certificate

COMMAND_NAMES: tuple[str, ...] = (
    SELECT, POWER_CYCLE, QUERY_USER, QUERY_SO, VERIFY_USER, INITIALIZE, RESET_RETRY_COUNTER,
    CHANGE_USER_PIN, CHANGE_SO_PIN, GENERATE_KEY, SIGN, DELETE_KEY, FIRMWARE_UPDATE, PORTAL_LOGIN,
    DECIPHER, WRITE_DATA, READ_PROTECTED, WARM_RESET, DEVICE_SIGN,
)  # fmt: skip

# -- DKEK key backup (R23): the commands sc-hsm-tool sends around --wrap-key / --unwrap-key ----
IMPORT_DKEK_SHARE = "import_dkek_share"  # share: right (A) | wrong (B), the suite's two shares
DKEK_STATUS = "dkek_status"  # the free status query 80 52 00 00 00
WRAP_KEY = "wrap_key"  # the newest key, as a blob the mapper holds
UNWRAP_KEY = "unwrap_key"  # blob: held (as WRAP answered it) | tampered
COMMAND_NAMES += (IMPORT_DKEK_SHARE, DKEK_STATUS, WRAP_KEY, UNWRAP_KEY)
HELD = "held"
TAMPERED = "tampered"
# The default alphabet's DKEK: one share, so "complete", "another DKEK" (A or B) and "a share
# beyond the announced count" are each one step away.
ALPHABET_DKEK_SHARES = 1

# Which variant field each command carries.
_USER_PIN_COMMANDS = frozenset({VERIFY_USER, CHANGE_USER_PIN})
_SO_PIN_COMMANDS = frozenset({INITIALIZE, RESET_RETRY_COUNTER, CHANGE_SO_PIN})

DEFAULT_OPTIONS = OPTION_RESET_RETRY_COUNTER
# The default alphabet's INITIALIZE options: RRC on, everything off, transport PIN.
ALPHABET_OPTIONS: tuple[int, ...] = (OPTION_RESET_RETRY_COUNTER, 0x0000, OPTION_TRANSPORT_PIN)
ALPHABET_RETRIES: tuple[int, ...] = (USER_PIN_TRIES_DEFAULT,)
# The length of the user PIN INITIALIZE sets (the mapper's default PIN, 648219): the cap on
# tag 91 a device may enforce depends on it (open behaviour retries-by-pin-length).
DEFAULT_PIN_LENGTH = USER_PIN_MIN


@dataclass(frozen=True, slots=True, repr=False)
class Command:
    """One abstract input. Build it with the named constructors, e.g. `Command.verify_user("wrong")`."""

    name: str
    pin: str | None = None  # user PIN presented: right | wrong | wrong_length
    so: str | None = None  # SO-PIN (initialization code) presented: right | wrong
    options: int | None = None  # initialize: tag 80
    retries: int | None = None  # initialize: tag 91
    new_pin: bool | None = None  # reset_retry_counter: P1=00 (new PIN) or P1=01
    pin_length: int | None = None  # initialize: length of the user PIN it sets (tag 81)
    dkek_shares: int | None = None  # initialize: DKEK shares announced (tag 92); None = no DKEK
    share: str | None = None  # import_dkek_share: right | wrong
    blob: str | None = None  # unwrap_key: held | tampered

    def __post_init__(self) -> None:
        if self.name not in COMMAND_NAMES:
            raise ValueError(f"unknown command {self.name!r}")
        want_pin = self.name in _USER_PIN_COMMANDS
        want_so = self.name in _SO_PIN_COMMANDS
        if want_pin != (self.pin is not None) or want_so != (self.so is not None):
            raise ValueError(f"{self.name} takes {'a user PIN variant' if want_pin else 'an SO-PIN variant' if want_so else 'no PIN'}")
        if self.pin is not None and self.pin not in (RIGHT, WRONG, *BAD_LENGTHS):
            raise ValueError(f"{self.name}: bad user PIN variant {self.pin!r}")
        if self.so is not None and self.so not in (RIGHT, WRONG, *BAD_LENGTHS):
            raise ValueError(f"{self.name}: bad SO-PIN variant {self.so!r}")
        is_init = self.name == INITIALIZE
        if is_init != (self.options is not None) or is_init != (self.retries is not None):
            raise ValueError("options and retries belong to initialize only, and it needs both")
        if is_init and not (0 <= self.options <= 0xFFFF and 1 <= self.retries <= USER_PIN_TRIES_MAX):  # type: ignore[operator]
            raise ValueError(f"initialize: options must be 16 bits and retries 1..{USER_PIN_TRIES_MAX}")
        if is_init != (self.pin_length is not None) or (is_init and not USER_PIN_MIN <= self.pin_length <= USER_PIN_MAX):  # type: ignore[operator]
            raise ValueError(f"pin_length belongs to initialize only, and is {USER_PIN_MIN}..{USER_PIN_MAX}")
        if (self.name == RESET_RETRY_COUNTER) != (self.new_pin is not None):
            raise ValueError("new_pin belongs to reset_retry_counter only, and it needs it")
        _check_dkek(self)

    # -- named constructors (design.md's alphabet) --------------------------------------------

    @classmethod
    def select(cls) -> Command:
        return cls(SELECT)

    @classmethod
    def power_cycle(cls) -> Command:
        return cls(POWER_CYCLE)

    @classmethod
    def query_user(cls) -> Command:
        return cls(QUERY_USER)

    @classmethod
    def query_so(cls) -> Command:
        return cls(QUERY_SO)

    @classmethod
    def verify_user(cls, pin: str = RIGHT) -> Command:
        return cls(VERIFY_USER, pin=pin)

    @classmethod
    def initialize(
        cls, so: str = RIGHT, options: int = DEFAULT_OPTIONS, retries: int = USER_PIN_TRIES_DEFAULT, pin_length: int = DEFAULT_PIN_LENGTH,
        dkek_shares: int | None = None,
    ) -> Command:
        return cls(INITIALIZE, so=so, options=options, retries=retries, pin_length=pin_length, dkek_shares=dkek_shares)

    @classmethod
    def reset_retry_counter(cls, so: str = RIGHT, new_pin: bool = False) -> Command:
        return cls(RESET_RETRY_COUNTER, so=so, new_pin=new_pin)

    @classmethod
    def change_user_pin(cls, pin: str = RIGHT) -> Command:
        return cls(CHANGE_USER_PIN, pin=pin)

    @classmethod
    def change_so_pin(cls, so: str = RIGHT) -> Command:
        return cls(CHANGE_SO_PIN, so=so)

    @classmethod
    def generate_key(cls) -> Command:
        return cls(GENERATE_KEY)

    @classmethod
    def sign(cls) -> Command:
        return cls(SIGN)

    @classmethod
    def delete_key(cls) -> Command:
        return cls(DELETE_KEY)

    @classmethod
    def firmware_update(cls) -> Command:
        return cls(FIRMWARE_UPDATE)

    @classmethod
    def portal_login(cls) -> Command:
        return cls(PORTAL_LOGIN)

    @classmethod
    def decipher(cls) -> Command:
        return cls(DECIPHER)

    @classmethod
    def write_data(cls) -> Command:
        return cls(WRITE_DATA)

    @classmethod
    def read_protected(cls) -> Command:
        return cls(READ_PROTECTED)

    @classmethod
    def warm_reset(cls) -> Command:
        return cls(WARM_RESET)

    @classmethod
    def device_sign(cls) -> Command:
        return cls(DEVICE_SIGN)

    @classmethod
    def widened(cls) -> tuple[Command, ...]:
        """The inputs beyond the original alphabet: data objects, DECIPHER, warm reset, CC00,
        and a PIN of the wrong length (too short, too long) in every PIN command (R16)."""
        return (
            cls.verify_user(OVER_LONG),
            *(cls.change_user_pin(v) for v in BAD_LENGTHS),
            *(cls.change_so_pin(v) for v in BAD_LENGTHS),
            *(cls.reset_retry_counter(v, n) for v, n in product(BAD_LENGTHS, (False, True))),
            *(cls.initialize(v) for v in BAD_LENGTHS),
            cls.decipher(), cls.write_data(), cls.read_protected(), cls.warm_reset(), cls.device_sign(),
        )  # fmt: skip

    @classmethod
    def import_dkek_share(cls, share: str = RIGHT) -> Command:
        return cls(IMPORT_DKEK_SHARE, share=share)

    @classmethod
    def dkek_status(cls) -> Command:
        return cls(DKEK_STATUS)

    @classmethod
    def wrap_key(cls) -> Command:
        return cls(WRAP_KEY)

    @classmethod
    def unwrap_key(cls, blob: str = HELD) -> Command:
        return cls(UNWRAP_KEY, blob=blob)

    @classmethod
    def key_backup(
        cls, shares: int = ALPHABET_DKEK_SHARES, options: int = DEFAULT_OPTIONS, retries: int = USER_PIN_TRIES_DEFAULT
    ) -> tuple[Command, ...]:
        """The DKEK commands: INITIALIZE announcing `shares`, both shares, status, wrap, unwrap."""
        return (
            cls.initialize(RIGHT, options, retries, dkek_shares=shares),
            *(cls.import_dkek_share(v) for v in (RIGHT, WRONG)),
            cls.dkek_status(), cls.wrap_key(), *(cls.unwrap_key(b) for b in (HELD, TAMPERED)),
        )  # fmt: skip

    @classmethod
    def alphabet(
        cls, options: Iterable[int] = ALPHABET_OPTIONS, retries: Iterable[int] = ALPHABET_RETRIES, dkek: bool = True
    ) -> tuple[Command, ...]:
        """A finite alphabet: every command and variant, INITIALIZE over `options` x `retries`;
        with `dkek`, the key-backup commands at the end (`key_backup`)."""
        options, retries = tuple(options), tuple(retries)
        backup = cls.key_backup(options=options[0], retries=retries[0]) if dkek else ()
        return cls._lifecycle_alphabet(options, retries) + backup

    @classmethod
    def _lifecycle_alphabet(cls, options: Iterable[int], retries: Iterable[int]) -> tuple[Command, ...]:
        inits = [cls.initialize(so, o, r) for so, o, r in product((RIGHT, WRONG), options, retries)]
        return cls._original(inits) + cls.widened()

    @classmethod
    def _original(cls, inits: list[Command]) -> tuple[Command, ...]:
        return (
            cls.select(), cls.power_cycle(), cls.query_user(), cls.query_so(),
            *(cls.verify_user(v) for v in (RIGHT, WRONG, WRONG_LENGTH)),
            *inits,
            *(cls.reset_retry_counter(so, n) for so, n in product((RIGHT, WRONG), (False, True))),
            *(cls.change_user_pin(v) for v in (RIGHT, WRONG)),
            *(cls.change_so_pin(v) for v in (RIGHT, WRONG)),
            cls.generate_key(), cls.sign(), cls.delete_key(), cls.firmware_update(), cls.portal_login(),
        )  # fmt: skip

    # -- string form ---------------------------------------------------------------------------

    def __repr__(self) -> str:
        return f"Command.parse({str(self)!r})"

    def __str__(self) -> str:
        if self.name == INITIALIZE:
            # The default PIN length is left out: the form recorded in traces stays as it was.
            length = "" if self.pin_length == DEFAULT_PIN_LENGTH else f",pin_length={self.pin_length}"
            dkek = "" if self.dkek_shares is None else f",dkek_shares={self.dkek_shares}"
            return f"initialize(so={self.so},options={self.options:#06x},retries={self.retries}{length}{dkek})"
        if self.name == RESET_RETRY_COUNTER:
            return f"reset_retry_counter(so={self.so},new_pin={'true' if self.new_pin else 'false'})"
        variant = self.pin or self.so or self.share or self.blob
        return f"{self.name}({variant})" if variant else self.name

    @classmethod
    def parse(cls, text: str) -> Command:
        """Parse the string form back (`str(Command.parse(s))` is canonical).

        Accepts `name`, `name()`, `name(variant)` and `name(key=value, ...)`; initialize's
        options/retries/pin_length and reset_retry_counter's new_pin may be left out (defaults above).
        """
        m = _FORM.fullmatch(text.strip())
        if not m:
            raise ValueError(f"not a command: {text!r}")
        name, raw_args = m.group(1), (m.group(2) or "").strip()
        if name not in COMMAND_NAMES:
            raise ValueError(f"unknown command {name!r} in {text!r}")
        args: dict[str, str] = {}
        positional: list[str] = []
        for part in filter(None, (p.strip() for p in raw_args.split(","))):
            key, eq, value = part.partition("=")
            if eq:
                args[key.strip()] = value.strip()
            else:
                positional.append(part)
        try:
            return _build(name, positional, args)
        except (IndexError, KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"bad arguments in {text!r}: {exc}") from exc


_FORM = re.compile(r"([a-z_]+)\s*(?:\((.*)\))?")


def _build(name: str, positional: list[str], args: dict[str, str]) -> Command:
    if name in _USER_PIN_COMMANDS:
        pin = args.pop("pin") if "pin" in args else positional.pop(0)
        _no_leftovers(positional, args)
        return Command(name, pin=pin)
    if name in _SO_PIN_COMMANDS:
        so = args.pop("so") if "so" in args else positional.pop(0) if positional else RIGHT
        if name == INITIALIZE:
            options = int(args.pop("options", str(DEFAULT_OPTIONS)), 0)
            retries = int(args.pop("retries", str(USER_PIN_TRIES_DEFAULT)), 0)
            pin_length = int(args.pop("pin_length", str(DEFAULT_PIN_LENGTH)), 0)
            raw_shares = args.pop("dkek_shares", None)
            _no_leftovers(positional, args)
            return Command.initialize(so, options, retries, pin_length, None if raw_shares is None else int(raw_shares, 0))
        if name == RESET_RETRY_COUNTER:
            new_pin = _parse_bool(args.pop("new_pin", "false"))
            _no_leftovers(positional, args)
            return Command.reset_retry_counter(so, new_pin)
        _no_leftovers(positional, args)
        return Command(name, so=so)
    if name in _DKEK_VARIANTS:
        field_name, default = _DKEK_VARIANTS[name]
        value = args.pop(field_name) if field_name in args else positional.pop(0) if positional else default
        _no_leftovers(positional, args)
        return Command(name, **{field_name: value})
    _no_leftovers(positional, args)
    return Command(name)


# The DKEK commands' variant field, its values and its default in the string form.
_DKEK_VARIANTS = {IMPORT_DKEK_SHARE: ("share", RIGHT), UNWRAP_KEY: ("blob", HELD)}
_DKEK_VALUES = {"share": (RIGHT, WRONG), "blob": (HELD, TAMPERED)}


def _check_dkek(c: Command) -> None:
    if c.dkek_shares is not None and (c.name != INITIALIZE or not 0 <= c.dkek_shares <= 255):
        raise ValueError("dkek_shares belongs to initialize only, and is 0..255")
    for field_name, values in _DKEK_VALUES.items():
        value = getattr(c, field_name)
        wanted = _DKEK_VARIANTS.get(c.name, ("",))[0] == field_name
        if wanted != (value is not None) or (value is not None and value not in values):
            raise ValueError(f"{c.name}: {field_name} is {' | '.join(values)} for {'this command' if wanted else 'another command'}")


def _no_leftovers(positional: list[str], args: dict[str, str]) -> None:
    if positional or args:
        raise ValueError(f"unexpected {positional or sorted(args)}")


def _parse_bool(text: str) -> bool:
    low = text.lower()
    if low in ("true", "1", "yes"):
        return True
    if low in ("false", "0", "no"):
        return False
    raise ValueError(f"not a boolean: {text!r}")
