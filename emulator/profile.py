"""What the emulated token does where the public sources are silent, and how it can be broken.

`Profile` settles the open behaviours of rules.md (names as in docs/design.md); its defaults are
the emulator's documented choices (docs/emulator.md). `Fault` switches each break exactly one
documented rule, so the project's own tests can prove that the conformance check for that rule
fails when it should. Faults are test-time switches: they are never persisted.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any

from hsm_lifecycle import protocol
from hsm_lifecycle.emulator.models import DEFAULT_MODEL, DeviceModel, model_named

# Spellings of the open-behaviour values, as docs/design.md writes them ("63Cx" = tries left).
TRIES_SW = "63Cx"
INIT_WRONG_SO_SWS = frozenset({TRIES_SW, "6900", "6982", "6985", "6986"})
LAST_WRONG_TRY_SWS = frozenset({"63C0", "6983"})
WRONG_LENGTH_PIN_SWS = frozenset({"6A80", "6700", TRIES_SW})
RRC_DISABLED_SWS = frozenset({"6986", "6985", "6982", "6900", "6A81", "6D00"})


@dataclass(frozen=True)
class Profile:
    """The open behaviours of the emulated token. Persisted with the token's state."""

    # init-wrong-so-sw: answer to INITIALIZE with a wrong initialization code (a try is spent).
    init_wrong_so_sw: str = TRIES_SW
    # last-wrong-try-sw: answer to the wrong presentation that spends the last try.
    last_wrong_try_sw: str = "63C0"
    # wrong-length-pin-sw: answer to a PIN of a length the card never accepts (no try spent).
    wrong_length_pin_sw: str = "6A80"
    # rrc-disabled: answer to RESET RETRY COUNTER while option 0x0001 is off, and whether the
    # card checks the SO-PIN before the option (then a wrong SO-PIN spends a try; right or
    # wrong, the answer is rrc_disabled_sw).
    rrc_disabled_sw: str = "6986"
    rrc_disabled_spends_so_try: bool = False
    # so-success-restores: a correct SO-PIN sets the SO counter back to 15 (else it keeps the
    # value it had before the presentation).
    so_success_restores: bool = True
    # retries-by-pin-length: INITIALIZE refuses (6A80) a tag 91 above 3/5/10 for a user PIN of
    # 6/7/8+ bytes, as CardContact describes the rule.
    retries_by_pin_length: bool = False
    # auth-after-init: the user is authenticated right after a successful INITIALIZE.
    auth_after_init: bool = False
    # auth-after-change: the user is authenticated after a successful CHANGE REFERENCE DATA 81.
    auth_after_change: bool = False
    # wrong-pin-ends-session: a wrong user PIN ends an open user session.
    wrong_pin_ends_session: bool = True
    # case3-le: a case-3 PIN command (VERIFY, CHANGE REFERENCE DATA, RESET RETRY COUNTER with
    # data) sent with an Le: ignored (the command runs) or refused with 6700, changing nothing.
    case3_le_accepted: bool = False
    # Applet version in the FCP (tag 85), and the object storage budget in bytes.
    version: tuple[int, int] = protocol.DEFAULT_VERSION
    storage_bytes: int = protocol.EEPROM_BYTES
    # The device the token poses as (emulator.models): its ATR and RSA sizes. `for_model` also
    # takes the model's applet version.
    model: str = DEFAULT_MODEL

    def __post_init__(self) -> None:
        _check("init_wrong_so_sw", self.init_wrong_so_sw, INIT_WRONG_SO_SWS)
        _check("last_wrong_try_sw", self.last_wrong_try_sw, LAST_WRONG_TRY_SWS)
        _check("wrong_length_pin_sw", self.wrong_length_pin_sw, WRONG_LENGTH_PIN_SWS)
        _check("rrc_disabled_sw", self.rrc_disabled_sw, RRC_DISABLED_SWS)
        major, minor = self.version
        if not (0 <= major <= 0xFF and 0 <= minor <= 0xFF):
            raise ValueError(f"version {self.version} does not fit two bytes")
        if self.storage_bytes <= 0:
            raise ValueError("storage_bytes must be positive")
        model_named(self.model)

    @classmethod
    def for_model(cls, name: str, **settings: Any) -> Profile:
        """A profile posing as device model `name`, at that model's applet version."""
        return cls(**{"version": model_named(name).version, **settings, "model": name})

    @property
    def device(self) -> DeviceModel:
        return model_named(self.model)

    def to_json(self) -> dict[str, Any]:
        return {
            "init_wrong_so_sw": self.init_wrong_so_sw,
            "last_wrong_try_sw": self.last_wrong_try_sw,
            "wrong_length_pin_sw": self.wrong_length_pin_sw,
            "rrc_disabled_sw": self.rrc_disabled_sw,
            "rrc_disabled_spends_so_try": self.rrc_disabled_spends_so_try,
            "so_success_restores": self.so_success_restores,
            "retries_by_pin_length": self.retries_by_pin_length,
            "auth_after_init": self.auth_after_init,
            "auth_after_change": self.auth_after_change,
            "wrong_pin_ends_session": self.wrong_pin_ends_session,
            "case3_le_accepted": self.case3_le_accepted,
            "version": list(self.version),
            "storage_bytes": self.storage_bytes,
            "model": self.model,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Profile:
        fields = dict(data)
        fields["version"] = tuple(fields["version"])
        return cls(**fields)

    def open_behaviours(self) -> dict[str, str]:
        """The settings under docs/design.md's names, as the evidence report shows them."""
        spends = "spends a try" if self.rrc_disabled_spends_so_try else "spends no try"
        return {
            "init-wrong-so-sw": self.init_wrong_so_sw,
            "last-wrong-try-sw": self.last_wrong_try_sw,
            "wrong-length-pin-sw": self.wrong_length_pin_sw,
            "rrc-disabled": f"{self.rrc_disabled_sw}, {spends}",
            "so-success-restores": str(self.so_success_restores).lower(),
            "retries-by-pin-length": str(self.retries_by_pin_length).lower(),
            "auth-after-init": str(self.auth_after_init).lower(),
            "auth-after-change": str(self.auth_after_change).lower(),
            "wrong-pin-ends-session": str(self.wrong_pin_ends_session).lower(),
            "case3-le": "accepted" if self.case3_le_accepted else "refused (6700)",
        }


def _check(name: str, value: str, allowed: frozenset[str]) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {sorted(allowed)}, got {value!r}")


class Fault(Enum):
    """Fault switches: each makes the token break exactly one rule (the ID in the comment)."""

    INITIALIZE_IGNORES_SO_PIN = "initialize-ignores-so-pin"  # R01: any code re-initializes
    SO_COUNTER_NOT_SPENT = "so-counter-not-spent"  # R02: wrong SO-PINs cost nothing
    SO_UNBLOCKABLE = "so-unblockable"  # R03: a correct SO-PIN still works at 0 tries
    USER_COUNTER_NOT_RESTORED = "user-counter-not-restored"  # R04: right PIN keeps the count
    USER_BLOCK_IGNORED = "user-block-ignored"  # R05: correct user PIN accepted at 0 tries
    RRC_IGNORES_OPTION = "rrc-ignores-option"  # R06: RESET RETRY COUNTER without 0x0001
    REINIT_KEEPS_KEYS = "reinit-keeps-keys"  # R07: INITIALIZE leaves keys and files
    IDENTITY_CHANGES_ON_INIT = "identity-changes-on-init"  # R08: new CC00/2F02 on INITIALIZE
    SO_PIN_AUTHORIZES_KEYS = "so-pin-authorizes-keys"  # R09: VERIFY 88 opens key use
    KEY_USE_WITHOUT_LOGIN = "key-use-without-login"  # R10: key commands need no user PIN
    SESSION_SURVIVES_RESELECT = "session-survives-reselect"  # R10: SELECT keeps the login
    TRANSPORT_PIN_IGNORED = "transport-pin-ignored"  # R11: option 0x0002 has no effect
    WRONG_LENGTH_SPENDS_TRY = "wrong-length-spends-try"  # R16: bad length costs a try
    TEAR_REFUNDS_TRY = "tear-refunds-try"  # R17: the try is written after the comparison
    QUERY_SPENDS_TRY = "query-spends-try"  # R19: a status query costs a try
    UNINITIALIZED_ACCEPTS_PIN = "uninitialized-accepts-pin"  # R20: VERIFY 81 works uninit
    FIRST_INIT_SETS_WRONG_TRIES = "first-init-sets-wrong-tries"  # R21: SO tries 10, not 15
    INCOMPLETE_DKEK_USED = "incomplete-dkek-used"  # R23: wrap/unwrap with shares missing
    WRAP_UNDER_FIXED_KEY = "wrap-under-fixed-key"  # R23: blobs open on any token, any DKEK
    DKEK_SURVIVES_INIT = "dkek-survives-init"  # R23: INITIALIZE keeps the old DKEK
    # Narrower switches, each breaking one check of one rule (model.checks):
    RRC_DISABLED_SPENDS_TWO = "rrc-disabled-spends-two"  # R02: refused RRC, wrong SO-PIN: 2 tries
    RRC_WRONG_SPENDS_TWO = "rrc-wrong-spends-two"  # R02: RRC with a wrong SO-PIN: 2 tries
    CHANGE_USER_PIN_REFUSED = "change-user-pin-refused"  # R04: CHANGE 81 with the right PIN refused
    REINIT_KEEPS_CERTIFICATES = "reinit-keeps-certificates"  # R07: CE files survive INITIALIZE
    REINIT_KEEPS_DATA_OBJECTS = "reinit-keeps-data-objects"  # R07: CD/CF files survive INITIALIZE
    REINIT_KEEPS_USER_PIN = "reinit-keeps-user-pin"  # R07: INITIALIZE keeps the old user PIN
    PROTECTED_READ_WITHOUT_LOGIN = "protected-read-without-login"  # R09: CD files readable by anyone
    UPDATE_WITHOUT_LOGIN = "update-without-login"  # R10: UPDATE BINARY needs no user PIN
    DECIPHER_WITHOUT_LOGIN = "decipher-without-login"  # R10: DECIPHER needs no user PIN
    SESSION_SURVIVES_WARM_RESET = "session-survives-warm-reset"  # R10: a warm reset keeps the login
    LONG_PIN_SPENDS_TRY = "long-pin-spends-try"  # R16: a 17-byte VERIFY 81 costs a try
    SHORT_SO_PIN_SPENDS_TRY = "short-so-pin-spends-try"  # R16: a wrong-length CHANGE 88 costs a try
    QUERY_ENDS_SESSION = "query-ends-session"  # R19: VERIFY 81 without data logs out
    LC_MISMATCH_ACCEPTED = "lc-mismatch-accepted"  # R22: Lc longer than the data is accepted
    UNKNOWN_INS_ACCEPTED = "unknown-ins-accepted"  # R22: an unknown INS answers 9000
    UNKNOWN_CLA_ACCEPTED = "unknown-cla-accepted"  # R22: an unknown CLA answers 9000
    ENUMERATE_IGNORES_P1P2 = "enumerate-ignores-p1p2"  # R22: ENUMERATE OBJECTS takes any P1/P2
    SLOW_ON_UNKNOWN_INS = "slow-on-unknown-ins"  # R22: an unknown INS is refused after 2.5 s
    UNKNOWN_INS_SPENDS_TRY = "unknown-ins-spends-try"  # R22: an unknown INS costs a user try
    SESSION_SURVIVES_POWER_OFF = "session-survives-power-off"  # R10: power off and on keep the login
    GENERATE_WITHOUT_LOGIN = "generate-without-login"  # R10: GENERATE KEY needs no user PIN
    DELETE_WITHOUT_LOGIN = "delete-without-login"  # R10: DELETE FILE needs no user PIN
    WRONG_VERIFY_SPENDS_TWO = "wrong-verify-spends-two"  # R04: a wrong VERIFY 81 costs 2 tries
    WRONG_CHANGE_SPENDS_TWO = "wrong-change-spends-two"  # R04: a wrong CHANGE 81 costs 2 tries
    RIGHT_SO_PIN_SPENDS = "right-so-pin-spends"  # R02: a right CHANGE 88 costs a try
    REINIT_CHANGES_SO_PIN = "reinit-changes-so-pin"  # R07: INITIALIZE sets another SO-PIN
    REINIT_KEEPS_COUNTER = "reinit-keeps-counter"  # R07: INITIALIZE keeps the old user counter
    FIRST_INIT_IGNORES_RETRIES = "first-init-ignores-retries"  # R04: the first INITIALIZE sets 3 tries
    RRC_DOES_NOT_RESET = "rrc-does-not-reset"  # R06: RRC P1=01 answers 9000, resets nothing
    RRC_IGNORES_NEW_PIN = "rrc-ignores-new-pin"  # R06: RRC P1=00 answers 9000, keeps the old PIN
    WRONG_SO_ERASES_KEYS = "wrong-so-erases-keys"  # R01: a wrong CHANGE 88 deletes the keys
    WRONG_INIT_SPENDS_USER_TRY = "wrong-init-spends-user-try"  # R01: a refused INITIALIZE costs a user try
    SO_BLOCK_QUERY_ANSWERS_63C0 = "so-block-query-answers-63c0"  # R03: VERIFY 88 at 0 tries answers 63C0
    RRC_WORKS_WHEN_SO_BLOCKED = "rrc-works-when-so-blocked"  # R03: RRC with the right SO-PIN works at 0
    SO_BLOCK_BLOCKS_USER_PIN = "so-block-blocks-user-pin"  # R03: at 0 SO tries VERIFY 81 answers 6983
    RRC_LOGS_IN = "rrc-logs-in"  # R09: a right RESET RETRY COUNTER opens key use
    CHANGE_SO_LOGS_IN = "change-so-logs-in"  # R09: a right CHANGE 88 opens key use
    UNINITIALIZED_KEY_USE_6982 = "uninitialized-key-use-6982"  # R20: key commands answer 6982, not 6A88
    LC_SHORT_ACCEPTED = "lc-short-accepted"  # R22: an Lc shorter than the data: the rest is ignored
    TEAR_REFUNDS_CHANGE_USER = "tear-refunds-change-user"  # R17: a torn CHANGE 81 gives the try back
    TEAR_REFUNDS_RRC = "tear-refunds-rrc"  # R17: a torn RESET RETRY COUNTER gives the SO try back
    CHANGE_SO_UNBLOCKS = "change-so-unblocks"  # R03: CHANGE 88 with the right SO-PIN works at 0 tries
    FIRST_INIT_KEEPS_FACTORY_CODE = "first-init-keeps-factory-code"  # R21: the SO-PIN stays 3537363231383830
    FIRST_INIT_ONLY_FACTORY_CODE = "first-init-only-factory-code"  # R21: only 3537363231383830 is taken
    INIT_REGENERATES_DEVICE_KEY = "init-regenerates-device-key"  # R08: INITIALIZE makes a new CC00, keeps 2F02
    UPDATE_KEEPS_PINS = "update-keeps-pins"  # R14: a firmware update leaves the SO-PIN and user PIN set
    UPDATE_KEEPS_DATA_OBJECTS = "update-keeps-data-objects"  # R14: certificates and data objects survive an update
    UPDATE_UNDER_OTHER_ROOT = "update-under-other-root"  # R14: the new identity chains to another root
    DICA_FROM_UNKNOWN_ROOT = "dica-from-unknown-root"  # R18: 2F02's DICA names a root nobody publishes
    DEVICE_CVC_BAD_SIGNATURE = "device-cvc-bad-signature"  # R18: the device CVC's signature does not verify
    SERIAL_IS_WHOLE_CHR = "serial-is-whole-chr"  # R18: the token claims its whole CHR as serial
    TRUNCATED_TLV_ACCEPTED = "truncated-tlv-accepted"  # R22: a truncated GENERATE KEY body makes a default key
    WRONG_RRC_UNINITIALIZES = "wrong-rrc-uninitializes"  # R01: RRC P1=00 with a wrong SO-PIN clears both PINs
    WRONG_INIT_SPENDS_TWO = "wrong-init-spends-two"  # R02: INITIALIZE with a wrong code costs 2 SO tries
    BLOCKED_USER_KEY_USE = "blocked-user-key-use"  # R05: at 0 user tries SIGN/GENERATE need no login
    TRANSPORT_VERIFY_LOGS_IN = "transport-verify-logs-in"  # R11: VERIFY 81 under the transport PIN answers 6984 but logs in
    CHANGE_KEEPS_TRANSPORT = "change-keeps-transport"  # R11: CHANGE 81 sets the PIN, the transport PIN stays
    CHANGE_WRONG_LENGTH_SPENDS_TRY = "change-wrong-length-spends-try"  # R16: CHANGE 81 to a wrong-length PIN costs a try
    RRC_WRONG_LENGTH_SPENDS_TRY = "rrc-wrong-length-spends-try"  # R16: RRC P1=00 with a wrong-length new PIN costs an SO try
    INIT_WRONG_LENGTH_SPENDS_TRY = "init-wrong-length-spends-try"  # R16: INITIALIZE with a wrong-length PIN costs an SO try
    TEAR_REFUNDS_CHANGE_SO = "tear-refunds-change-so"  # R17: a torn CHANGE 88 gives the SO try back
    SO_QUERY_SPENDS_TRY = "so-query-spends-try"  # R19: VERIFY 88 without data costs an SO try
    UNINITIALIZED_GENERATE_WRITES = "uninitialized-generate-writes"  # R20: GENERATE KEY on a shipped token answers 6A88 but stores a key
    DKEK_STATUS_SHOWS_IMPORTED = "dkek-status-shows-imported"  # R23: the DKEK status counts imported shares, not outstanding
    DEVICE_KEY_NEEDS_EXTENDED_LE = "device-key-needs-extended-le"  # R15: SIGN with CC00 and a short Le answers 6700: no portal login
    DKEK_EXTRA_SHARE = "dkek-extra-share"  # R23: a share beyond the announced count is XORed in


def parse_faults(names: object) -> frozenset[Fault]:
    """Faults from Fault members or their value strings ("so-counter-not-spent")."""
    if isinstance(names, (str, Fault)):
        names = [names]
    if not isinstance(names, (list, tuple, set, frozenset)):
        raise TypeError(f"faults must be a collection of Fault or str, got {type(names).__name__}")
    return frozenset(name if isinstance(name, Fault) else Fault(name) for name in names)
