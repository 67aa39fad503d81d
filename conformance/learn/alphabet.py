"""Learning alphabets: which abstract commands the learner may send, and the bounds that keep
the device's behaviour a finite Mealy machine.

Two counters of the token are unbounded or deep: the key count (every `generate_key` adds one)
and the SO-PIN counter (15 tries). The key count is bounded by abstraction: `generate_key` is
not sent while `max_keys` keys are held, and answers `KEY_BOUND` instead, on the device side
(as the device's own ENUMERATE OBJECTS counts them) and on the model side alike. The SO
counter is kept whole where an alphabet presents a wrong SO-PIN (all 16 levels are states), and
never moves in alphabets that do not. See docs/learning.md for the numbers.
"""

from __future__ import annotations

from dataclasses import dataclass

from hsm_lifecycle.protocol import OPTION_RESET_RETRY_COUNTER, OPTION_TRANSPORT_PIN
from hsm_lifecycle.model.commands import (
    CHANGE_SO_PIN,
    OVER_LONG,
    WRONG_LENGTH,
    FIRMWARE_UPDATE,
    GENERATE_KEY,
    INITIALIZE,
    PORTAL_LOGIN,
    RESET_RETRY_COUNTER,
    RIGHT,
    WRONG,
    Command,
)

# The abstract output of a `generate_key` the learner did not send (the key bound was reached).
KEY_BOUND = "key-bound"

# Commands that need the firmware-update portal, a person on a real token: never learned.
PORTAL_COMMANDS = frozenset({FIRMWARE_UPDATE, PORTAL_LOGIN})


@dataclass(frozen=True)
class LearningAlphabet:
    """A named input alphabet plus the counter bounds the learned machine is finite under."""

    name: str
    commands: tuple[Command, ...]
    max_keys: int
    summary: str

    def __post_init__(self) -> None:
        if len(set(self.commands)) != len(self.commands):
            raise ValueError(f"alphabet {self.name!r} lists a command twice")
        portal = [str(c) for c in self.commands if c.name in PORTAL_COMMANDS]
        if portal:
            raise ValueError(f"alphabet {self.name!r}: {', '.join(portal)} need the firmware-update portal and cannot be learned")
        if self.max_keys < 0 or (self.max_keys < 1 and any(c.name == GENERATE_KEY for c in self.commands)):
            raise ValueError("max_keys must be at least 1 when generate_key is in the alphabet")

    @property
    def presents_wrong_so_pin(self) -> bool:
        """Whether any input can spend an SO try on a conforming token (then not for real tokens)."""
        return any(c.so == WRONG and c.name in (INITIALIZE, RESET_RETRY_COUNTER, CHANGE_SO_PIN) for c in self.commands)

    @property
    def changes_so_pin(self) -> bool:
        return any(c.name == CHANGE_SO_PIN and c.so == RIGHT for c in self.commands)

    @property
    def user_retries(self) -> int:
        """The retry counter INITIALIZE sets (the depth of the user-PIN counter)."""
        retries = {c.retries for c in self.commands if c.name == INITIALIZE}
        return max(retries) if retries else 0

    def describe(self) -> dict[str, object]:
        return {
            "name": self.name,
            "inputs": [str(c) for c in self.commands],
            "size": len(self.commands),
            "max_keys": self.max_keys,
            "user_retries": self.user_retries,
            "wrong_so_pin": self.presents_wrong_so_pin,
            "summary": self.summary,
        }


RETRIES = 2  # user-PIN retry counter set by the learning INITIALIZE: 3 user-counter levels

_CORE = (
    Command.select(),
    Command.power_cycle(),
    Command.query_user(),
    Command.query_so(),
    Command.verify_user(RIGHT),
    Command.verify_user(WRONG),
    Command.verify_user("wrong_length"),
    Command.initialize(RIGHT, OPTION_RESET_RETRY_COUNTER, RETRIES),
    Command.reset_retry_counter(RIGHT, False),
    Command.generate_key(),
    Command.sign(),
    Command.delete_key(),
    # The widened alphabet's free inputs: no new state to learn, new ways to end or use a session.
    Command.warm_reset(),
    Command.decipher(),
    Command.verify_user(OVER_LONG),
)

# No wrong SO-PIN, no SO-PIN change: the SO counter never moves on a conforming token, and
# every query ends where an INITIALIZE with the right SO-PIN can bring the token back.
CORE = LearningAlphabet(
    name="core",
    commands=_CORE,
    max_keys=1,
    summary="user-PIN lifecycle, session and key use; the SO counter never moves (safe for a real token)",
)

# The SO-PIN counter down to the block, with the user PIN beside it; no keys, no power cycle.
SO = LearningAlphabet(
    name="so",
    commands=(
        Command.select(),
        Command.query_so(),
        Command.query_user(),
        Command.verify_user(RIGHT),
        Command.verify_user(WRONG),
        Command.initialize(RIGHT, OPTION_RESET_RETRY_COUNTER, RETRIES),
        Command.initialize(WRONG, OPTION_RESET_RETRY_COUNTER, RETRIES),
        Command.reset_retry_counter(RIGHT, False),
        Command.reset_retry_counter(WRONG, False),
        Command.change_so_pin(WRONG),
    ),
    max_keys=0,
    summary="the SO-PIN counter: wrong SO-PINs in INITIALIZE, RESET RETRY COUNTER and CHANGE 88 down to "
    "the SO block (all 16 levels), with the user PIN beside it",
)

# The INITIALIZE options: RESET RETRY COUNTER allowed or not, the transport PIN and its end.
OPTIONS = LearningAlphabet(
    name="options",
    commands=(
        Command.select(),
        Command.query_user(),
        Command.query_so(),
        Command.verify_user(RIGHT),
        Command.verify_user(WRONG),
        Command.initialize(RIGHT, OPTION_RESET_RETRY_COUNTER, RETRIES),
        Command.initialize(RIGHT, 0x0000, RETRIES),
        Command.initialize(RIGHT, OPTION_TRANSPORT_PIN, RETRIES),
        Command.reset_retry_counter(RIGHT, False),
        Command.change_user_pin(RIGHT),
        Command.change_user_pin(WRONG),
        Command.generate_key(),
        Command.sign(),
    ),
    max_keys=1,
    summary="INITIALIZE options: RESET RETRY COUNTER with option 0x0001 off, the transport PIN (0x0002) "
    "and CHANGE REFERENCE DATA 81, which ends it",
)

# Everything above in one machine (the SO counter multiplies the rest): for the benchmark.
FULL = LearningAlphabet(
    name="full",
    commands=(
        *_CORE,
        Command.initialize(WRONG, OPTION_RESET_RETRY_COUNTER, RETRIES),
        Command.initialize(RIGHT, 0x0000, RETRIES),
        Command.initialize(RIGHT, OPTION_TRANSPORT_PIN, RETRIES),
        Command.reset_retry_counter(WRONG, False),
        Command.change_user_pin(RIGHT),
        Command.change_user_pin(WRONG),
        Command.change_so_pin(WRONG),
    ),
    max_keys=1,
    summary="core plus wrong SO-PINs down to the SO block, RESET RETRY COUNTER with option 0x0001 off, "
    "the transport PIN and CHANGE REFERENCE DATA 81",
)

# The data object, the device key CC00 and PINs of the wrong length in every PIN command: the
# data object is one more bit of state (written or not), the wrong lengths must move nothing.
DATA = LearningAlphabet(
    name="data",
    commands=(
        Command.select(),
        Command.query_user(),
        Command.query_so(),
        Command.verify_user(RIGHT),
        Command.verify_user(WRONG),
        Command.initialize(RIGHT, OPTION_RESET_RETRY_COUNTER, RETRIES),
        Command.write_data(),
        Command.read_protected(),
        Command.device_sign(),
        Command.warm_reset(),
        Command.change_user_pin(WRONG_LENGTH),
        Command.change_so_pin(WRONG_LENGTH),
        Command.reset_retry_counter(OVER_LONG, True),
        Command.initialize(WRONG_LENGTH, OPTION_RESET_RETRY_COUNTER, RETRIES),
    ),
    max_keys=0,
    summary="the PIN-protected data object (written only with login, read only by the user PIN, erased by "
    "INITIALIZE), the device key CC00, a warm reset, and SO/user PINs of the wrong length",
)

ALPHABETS: dict[str, LearningAlphabet] = {a.name: a for a in (CORE, SO, OPTIONS, FULL, DATA)}
