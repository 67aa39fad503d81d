"""Lifecycle invariants, stated independently of the transition table, checked on every step.

Each check reads only the step (state before, command, outcome) and the profile; none of them
looks at which guard or effect the model used, so a wrong row in model/lifecycle.py shows up
here as a violation.
"""

from __future__ import annotations

from dataclasses import dataclass

from hsm_lifecycle.protocol import USER_PIN_TRIES_BY_LENGTH, USER_PIN_TRIES_MAX
from hsm_lifecycle.model import BY_ID, EMULATOR_DEFAULTS, Exploration, Outcome, Profile
from hsm_lifecycle.model.commands import (
    BAD_LENGTHS,
    DECIPHER,
    DEVICE_SIGN,
    READ_PROTECTED,
    WARM_RESET,
    WRITE_DATA,
    CHANGE_SO_PIN,
    CHANGE_USER_PIN,
    DELETE_KEY,
    FIRMWARE_UPDATE,
    GENERATE_KEY,
    INITIALIZE,
    PORTAL_LOGIN,
    POWER_CYCLE,
    QUERY_SO,
    QUERY_USER,
    RESET_RETRY_COUNTER,
    RIGHT,
    SELECT,
    SIGN,
    VERIFY_USER,
    WRONG,
    WRONG_LENGTH,
)
from hsm_lifecycle.model.lifecycle import transitions_from
from hsm_lifecycle.model.commands import DKEK_STATUS, IMPORT_DKEK_SHARE, UNWRAP_KEY, WRAP_KEY
from hsm_lifecycle.model.outputs import LOGIN_OK, OK, PORTAL_OUTPUTS, UPDATE_OK, dkek_status, is_status_word
from hsm_lifecycle.model.profiles import REFUSED
from hsm_lifecycle.model.states import BOTH_BLOCKED, UNINITIALIZED

PIN_AND_KEY_COMMANDS = frozenset(
    {VERIFY_USER, RESET_RETRY_COUNTER, CHANGE_USER_PIN, CHANGE_SO_PIN, GENERATE_KEY, SIGN, DELETE_KEY, QUERY_USER, QUERY_SO}
)
SO_PIN_PRESENTATIONS = frozenset({INITIALIZE, RESET_RETRY_COUNTER, CHANGE_SO_PIN})
MAX_VIOLATIONS = 20


class Checker:
    def __init__(self, profile: Profile) -> None:
        self.profile = profile
        self.violations: list[str] = []
        self.steps = 0

    def fail(self, o: Outcome, why: str) -> None:
        if len(self.violations) < MAX_VIOLATIONS:
            self.violations.append(f"{why}: {o.command} in {o.before} -> {o.next} ({o.transition})")

    def check(self, o: Outcome) -> None:  # noqa: C901 - one flat list of independent checks
        self.steps += 1
        s, t, c = o.before, o.next, o.command
        name = c.name

        # The machine is deterministic: exactly one guard holds (the first one is not luck).
        holding = [x.id for x in transitions_from(s.abstract, name) if x.applies(s, c, self.profile)]
        if holding != [o.transition]:
            self.fail(o, f"guards holding {holding}, expected exactly [{o.transition}]")
        row = BY_ID[o.transition]
        if (row.source, row.dest) != (s.abstract, t.abstract):
            self.fail(o, f"row says {row.source}->{row.dest}")

        # Outputs are well-formed; "refused" never admits 9000.
        dkek_answers = {dkek_status(s.dkek_shares, s.dkek_shares - s.dkek_imported)} if s.dkek_shares is not None else set()
        if not o.outputs or any(not (is_status_word(x) or x == REFUSED or x in PORTAL_OUTPUTS or x in dkek_answers) for x in o.outputs):
            self.fail(o, f"malformed outputs {sorted(o.outputs)}")
        if REFUSED in o.outputs and o.accepts(OK):
            self.fail(o, "a refusal accepts 9000")
        succeeded = o.accepts(OK) or o.accepts(UPDATE_OK) or o.accepts(LOGIN_OK)

        # retries-by-pin-length: a device that enforces CardContact's cap refuses tag 91 above
        # it for the PIN's length before looking at the code: nothing changes, nothing spent.
        cap = USER_PIN_TRIES_BY_LENGTH.get(c.pin_length or 0, USER_PIN_TRIES_MAX)
        over_cap = name == INITIALIZE and (c.retries or 0) > cap and self.profile.retries_by_pin_length is True
        if over_cap:
            if t != s or succeeded:
                self.fail(o, "INITIALIZE above the enforced retries cap was not refused unchanged")
            return

        # SO counter: never rises, except a correct SO-PIN when the profile restores it, and
        # None <-> a number only through a first INITIALIZE / a firmware update.
        if s.so_tries is not None and t.so_tries is not None and t.so_tries > s.so_tries:
            restoring = name in SO_PIN_PRESENTATIONS and c.so == RIGHT and self.profile.so_success_restores
            if not (restoring and t.so_tries == 15):
                self.fail(o, "SO counter rose")
        if s.so_tries is None and t.so_tries is not None and not (name == INITIALIZE and t.so_tries == 15):
            self.fail(o, "SO-PIN appeared other than by a first INITIALIZE with 15 tries (R21)")
        if s.so_tries is not None and t.so_tries is None and name != FIRMWARE_UPDATE:
            self.fail(o, "SO-PIN vanished without a firmware update (R01)")
        if s.so_tries is not None and t.so_tries is not None and s.so_tries - t.so_tries > 1:
            self.fail(o, "more than one SO try spent (R02)")

        # R02: every failed SO-PIN presentation spends exactly one try (RRC disabled: per profile).
        if name in SO_PIN_PRESENTATIONS and c.so == WRONG and s.so_tries:
            spends = s.rrc_enabled or name != RESET_RETRY_COUNTER or self.profile.rrc_disabled_spends_so_try
            if t.so_tries != s.so_tries - (1 if spends else 0):
                self.fail(o, "a wrong SO-PIN did not spend exactly one try (R02, R06)")
            if succeeded:
                self.fail(o, "a wrong SO-PIN was accepted")

        # R03: a blocked SO-PIN stays blocked and unblocks / re-initializes nothing.
        if s.so_tries == 0:
            if t.so_tries not in (0, None) or (t.so_tries is None and name != FIRMWARE_UPDATE):
                self.fail(o, "SO-PIN left the blocked state (R03)")
            if name in (INITIALIZE, RESET_RETRY_COUNTER, CHANGE_SO_PIN) and succeeded:
                self.fail(o, "a blocked SO-PIN authorized something (R03)")

        # Identity: changes only through an admitted firmware update, by one generation (R08, R14).
        if t.identity != s.identity and not (name == FIRMWARE_UPDATE and t.identity == s.identity + 1):
            self.fail(o, "identity changed other than by a firmware update")
        if name == FIRMWARE_UPDATE and o.accepts(UPDATE_OK) and (t.identity != s.identity + 1 or t.is_initialized or t.keys):
            self.fail(o, "an update did not give a fresh, uninitialized token with a new identity (R14)")

        # Uninitialized tokens hold no keys, PINs nor sessions; PIN/key commands answer 6A88 (R20).
        if t.abstract in UNINITIALIZED and (t.keys or t.authenticated or t.so_tries is not None):
            self.fail(o, "an uninitialized token holds keys, a session or an SO-PIN")
        if s.abstract in UNINITIALIZED and name in PIN_AND_KEY_COMMANDS and (t != s or o.outputs != {"6A88"}):
            self.fail(o, "uninitialized token did not answer 6A88 and stay unchanged (R20)")

        # Nothing but a firmware update leaves both-blocked.
        if s.abstract == BOTH_BLOCKED and t.abstract != BOTH_BLOCKED and name != FIRMWARE_UPDATE:
            self.fail(o, "left both-blocked without a firmware update")

        # R01: without the SO-PIN nothing resets the token, re-initializes it or erases keys.
        if s.is_initialized:
            if name == INITIALIZE and succeeded and c.so != RIGHT:
                self.fail(o, "re-initialized without the SO-PIN (R01)")
            if name == INITIALIZE and c.so == WRONG and s.so_tries and t != s.but(so_tries=s.so_tries - 1):
                self.fail(o, "a wrong INITIALIZE changed more than the SO counter (R01)")
            if t.keys < s.keys and not (
                (name == DELETE_KEY and s.authenticated) or (name == INITIALIZE and c.so == RIGHT) or name == FIRMWARE_UPDATE
            ):
                self.fail(o, "keys erased without the user PIN, the SO-PIN or an update (R01)")
            if name == INITIALIZE and succeeded and (t.keys or t.identity != s.identity):
                self.fail(o, "re-initialization kept keys or changed identity (R07, R08)")

        # Sessions: only the user PIN opens one (R09, R10); transport and blocked PINs never (R05, R11).
        if t.authenticated and (t.user_tries == 0 or t.transport):
            self.fail(o, "authenticated with a blocked or transport PIN")
        if t.authenticated and not s.authenticated and not (
            (name == VERIFY_USER and c.pin == RIGHT)
            or name == PORTAL_LOGIN
            or (name == CHANGE_USER_PIN and c.pin == RIGHT)
            or name == INITIALIZE
        ):
            self.fail(o, "a session opened without the user PIN (R09)")
        if name in (SELECT, POWER_CYCLE, WARM_RESET) and t.authenticated:
            self.fail(o, "the session survived a select / power cycle / warm reset (R10)")
        if name in (GENERATE_KEY, SIGN, DELETE_KEY, DECIPHER, WRITE_DATA, READ_PROTECTED, DEVICE_SIGN) and o.accepts(OK) and not s.authenticated:
            self.fail(o, "key or data object use without a verified user PIN (R09, R10)")
        if name in (GENERATE_KEY, SIGN, DELETE_KEY, DECIPHER, WRITE_DATA, READ_PROTECTED, DEVICE_SIGN) and not o.accepts(OK) and t != s:
            self.fail(o, "a refused key or data command changed something")
        if name in (DECIPHER, READ_PROTECTED, DEVICE_SIGN, WARM_RESET) and t.but(authenticated=s.authenticated) != s:
            self.fail(o, "a read, a private-key use or a warm reset changed a counter, a key or an object")
        if name == INITIALIZE and o.accepts(OK) and t.data:
            self.fail(o, "INITIALIZE kept a data object (R07)")
        if name == READ_PROTECTED and o.accepts(OK) and not s.data:
            self.fail(o, "read a data object nobody wrote")

        # User counter (R04, R05, R16, R19).
        if name == VERIFY_USER and c.pin == WRONG and s.is_initialized and not s.transport and s.user_tries:
            if t.user_tries != s.user_tries - 1:
                self.fail(o, "a wrong user PIN did not spend exactly one try (R04)")
        if s.is_initialized and s.user_tries == 0 and name in (VERIFY_USER, CHANGE_USER_PIN) and o.accepts(OK):
            self.fail(o, "a blocked user PIN was accepted (R05)")
        if (c.pin or c.so) in BAD_LENGTHS and t != s:
            self.fail(o, "a wrong-length PIN changed something (R16)")
        if (c.pin or c.so) in BAD_LENGTHS and o.accepts(OK):
            self.fail(o, "a wrong-length PIN was accepted (R16)")
        if name in (QUERY_USER, QUERY_SO) and t != s:
            self.fail(o, "a status query changed something (R19)")
        if s.transport and name == VERIFY_USER and c.pin not in BAD_LENGTHS and o.outputs != {"6984"}:
            self.fail(o, "a transport PIN did not answer 6984 (R11)")

        # Firmware updates (R12, R13) and the portal (R15).
        if name == FIRMWARE_UPDATE:
            by_so_block = s.so_tries == 0 and s.so_blocked_updates < 5
            if o.accepts(UPDATE_OK) != (s.keys == 0 or by_so_block):
                self.fail(o, "update admission disagrees with R12/R13")
            if t.so_blocked_updates != s.so_blocked_updates + (1 if by_so_block else 0) and o.accepts(UPDATE_OK):
                self.fail(o, "SO-blocked updates miscounted (R13)")
        if t.so_blocked_updates > 5:
            self.fail(o, "more than 5 SO-blocked updates (R13)")
        if name == PORTAL_LOGIN and o.accepts(LOGIN_OK) != (s.is_initialized and s.user_tries > 0 and not s.transport):
            self.fail(o, "portal login disagrees with R15")

        # Key backup (R23): the DKEK is what INITIALIZE announced plus the shares imported since.
        complete = s.dkek_shares is not None and s.dkek_imported == s.dkek_shares
        if name == INITIALIZE and succeeded and (t.dkek_shares != c.dkek_shares or t.dkek_imported or t.dkek):
            self.fail(o, "INITIALIZE kept the old DKEK or did not announce the new one (R23)")
        if name == DKEK_STATUS and t != s:
            self.fail(o, "the DKEK status query changed something")
        if name == DKEK_STATUS and s.dkek_shares is not None and o.outputs != {dkek_status(s.dkek_shares, s.dkek_shares - s.dkek_imported)}:
            self.fail(o, "the DKEK status does not report the shares announced and outstanding (R23)")
        if name == IMPORT_DKEK_SHARE and succeeded != (s.dkek_shares is not None and not complete):
            self.fail(o, "a share was taken with none outstanding, or refused with some (R23)")
        if name == WRAP_KEY and succeeded and not (complete and s.keys and s.authenticated):
            self.fail(o, "a key left without a complete DKEK, a key or a verified user PIN (R23, R10)")
        if name == UNWRAP_KEY and succeeded and not (complete and c.blob == "held" and s.blob is not None and s.authenticated):
            self.fail(o, "a blob was unwrapped without a complete DKEK, untampered, or without the user PIN (R23)")
        if name == UNWRAP_KEY and succeeded and s.blob != (s.dkek if s.dkek_shares else "random"):
            self.fail(o, "a blob was unwrapped under another DKEK than it was wrapped under (R23)")
        if name == GENERATE_KEY and succeeded and s.dkek_shares is not None and not complete:
            self.fail(o, "a key was generated with DKEK shares outstanding")
        if name in (WRAP_KEY, UNWRAP_KEY, IMPORT_DKEK_SHARE) and not succeeded and t != s:
            self.fail(o, "a refused DKEK command changed something")


# The other answer to every state-affecting open behaviour (and to the SW ones).
ALTERNATIVE = EMULATOR_DEFAULTS.resolve(
    {
        "so-success-restores": False,
        "rrc-disabled": {"sw": "6985", "spends": True},
        "auth-after-init": True,
        "auth-after-change": True,
        "last-wrong-try-sw": "6983",
        "init-wrong-so-sw": ["6982", "6985"],
        "wrong-length-pin-sw": "63Cx",
    },
    name="alternative",
)


@dataclass(frozen=True)
class Explored:
    label: str
    exploration: Exploration
    violations: tuple[str, ...]
