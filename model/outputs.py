"""Abstract outputs: status words as strings, the portal's verdicts, and the `refused` marker."""

from __future__ import annotations

from typing import Iterable

from hsm_lifecycle.model.profiles import REFUSED, TRIES_FAMILY

OK = "9000"
NOT_INITIALIZED = "6A88"
SECURITY_NOT_SATISFIED = "6982"
BLOCKED = "6983"
TRANSPORT_ACTIVE = "6984"
FILE_NOT_FOUND = "6A82"

LOGIN_OK = "login-ok"
LOGIN_REFUSED = "login-refused"
UPDATE_OK = "update-ok"
UPDATE_REFUSED_KEYS = "update-refused-keys"
UPDATE_REFUSED_LIMIT = "update-refused-limit"
# What the mapper answers when a 9000 carried the wrong content (never predicted by the model).
DATA_DIFFERS = "data-differs"  # the data object read back is not what was written
DEVICE_KEY_DIFFERS = "device-key-differs"  # CC00 signed, but not with the key of the device certificate
PORTAL_OUTPUTS = frozenset({LOGIN_OK, LOGIN_REFUSED, UPDATE_OK, UPDATE_REFUSED_KEYS, UPDATE_REFUSED_LIMIT})
# A refusal no rule predicts: the portal will not let the logged-in account update that device
# (R15 says it may). Never an output of the model; divergence blames it on R15.
UPDATE_REFUSED_ACCOUNT = "update-refused-account"


def tries_sw(tries: int) -> str:
    """63Cx with x tries left."""
    return f"63C{tries:X}"


def expand(tokens: Iterable[str], tries: int) -> frozenset[str]:
    """Concrete outputs for a profile's SW set: the 63Cx family becomes 63C<tries>."""
    return frozenset(tries_sw(tries) if t == TRIES_FAMILY else t for t in tokens)


def is_status_word(output: str) -> bool:
    return len(output) == 4 and all(ch in "0123456789ABCDEF" for ch in output)


def accepts(allowed: frozenset[str], output: str) -> bool:
    """Whether `output` is one of `allowed`; `refused` admits any status word but 9000."""
    output = output.strip()
    if output in allowed:
        return True
    upper = output.upper()
    if upper in allowed:
        return True
    return REFUSED in allowed and is_status_word(upper) and upper != OK

# DKEK key backup (R23).
INS_NOT_SUPPORTED = "6D00"
WRONG_DATA = "6A80"


def dkek_status(shares: int, outstanding: int) -> str:
    """The DKEK status query's answer when a DKEK is configured: 9000 with [shares][outstanding]
    (the key check value after them is the token's own, so not part of the abstract output)."""
    return f"dkek {shares}/{outstanding}"
