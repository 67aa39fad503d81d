"""What no input may break (docs/robustness.md), checked after every fuzzed APDU.

Every input is answered with a status word and no internal error; no counter ever increases
except by a documented successful PIN presentation; nothing changes without a durable write,
and no PIN is compared before its decremented counter is durable (R17); an SO-PIN at 0 tries
stays blocked (R03); key use, writes and deletes answer 9000 only in a verified session (R09,
R10); the identity never changes through an APDU (R08); after a power cut nothing is refunded.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from hsm_lifecycle.emulator import PersistencePoint, PowerEvent, Profile, Stage, TokenStatus
from hsm_lifecycle.protocol import (
    CLA_ISO,
    CLA_PROPRIETARY,
    FID_C_DEVAUT,
    FID_DEVICE_KEY,
    Ins,
    OPTION_RESET_RETRY_COUNTER,
    PIN_SO,
    PIN_USER,
    SO_PIN_TRIES,
    SW,
)

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
            rule = "R10" if before.initialized else "R20"  # a refused command changes nothing
            problems.append(f"keys {sorted(gained)} appeared without an accepted GENERATE ASYMMETRIC KEY PAIR ({rule})")
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
