"""The DKEK variables of the extended state (R23): what the lifecycle table's key-backup rows
read and write. The rows themselves are in model.lifecycle, beside every other transition.

A token's DKEK is named, not held: INITIALIZE announces n shares (tag 92; the tag left out = no
DKEK, 0 = a random DKEK the card draws), each IMPORT DKEK SHARE XORs one share in, and the DKEK
is complete once all n are in. The suite has two shares, "right" (A) and "wrong" (B); the DKEK a
token holds is the set of shares imported an odd number of times (XOR: a share imported twice
cancels out), so "the same DKEK" is decidable without its bytes. The mapper holds the last blob
WRAP KEY answered; `ExtState.blob` is the DKEK it was wrapped under.
"""

from __future__ import annotations

from hsm_lifecycle.model.commands import RIGHT, Command
from hsm_lifecycle.model.states import ExtState

SHARE_NAMES = {RIGHT: "A", "wrong": "B"}
RANDOM = "random"  # tag 92 = 0: a DKEK nobody else holds
LOST = "lost"  # a blob under a random DKEK that is gone: no DKEK will ever open it again


def has_dkek(s: ExtState) -> bool:
    return s.dkek_shares is not None


def outstanding(s: ExtState) -> int:
    return 0 if s.dkek_shares is None else s.dkek_shares - s.dkek_imported


def pending(s: ExtState) -> bool:
    """Shares still to import: the device waits, no key may be generated or leave (digest §2)."""
    return outstanding(s) > 0


def complete(s: ExtState) -> bool:
    return s.dkek_shares is not None and outstanding(s) == 0


def identity(s: ExtState) -> str | None:
    """Which DKEK the token holds once complete (None: none, or not yet complete)."""
    if not complete(s):
        return None
    return RANDOM if s.dkek_shares == 0 else s.dkek


def _forget_random(blob: str | None) -> str | None:
    return LOST if blob == RANDOM else blob


def after_initialize(s: ExtState, c: Command) -> dict[str, object]:
    """The DKEK variables after a successful INITIALIZE: the old DKEK is gone (R23), the new
    one waits for the shares announced. The blob stays with the mapper."""
    return {"dkek_shares": c.dkek_shares, "dkek_imported": 0, "dkek": "", "blob": _forget_random(s.blob)}


def after_wipe(s: ExtState) -> dict[str, object]:
    """A firmware update takes the DKEK like everything else; the mapper keeps its blob."""
    return {"blob": _forget_random(s.blob)}


def after_import(s: ExtState, c: Command) -> ExtState:
    name = SHARE_NAMES[c.share or RIGHT]
    mixed = "".join(sorted(set(s.dkek) ^ {name}))
    return s.but(dkek_imported=s.dkek_imported + 1, dkek=mixed)


def blob_opens(s: ExtState, c: Command) -> bool:
    """UNWRAP KEY succeeds: the untampered blob, wrapped under the DKEK the token holds now."""
    return c.blob == "held" and s.blob is not None and s.blob == identity(s)


def backup_possible(s: ExtState) -> bool:
    """Whether the keys on a token in `s` can be exported before a re-initialization."""
    return complete(s)
