"""Each rule's statement split into named checks, as data beside the rule catalog.

A check is one part of a rule's statement together with the APDU-level observation that decides
it on a device. The evidence judges rules only through their checks: a rule passes when every
one of its checks ran against the device's answers and passed (conformance.evidence.verdicts).
Check ids are `<rule>.<name>` and stable: summary.json, the report and the traces use them.

`transitions` names the model transitions whose status word alone decides the check; when a
device's status word differs from the model's at one of them (and no counter or session explains
the difference), the divergence is blamed on these checks (model.divergence).
"""

from __future__ import annotations

from dataclasses import dataclass

from hsm_lifecycle.model.catalog import RULES


@dataclass(frozen=True, slots=True)
class Check:
    id: str  # "R07.keys-erased"
    part: str  # the part of the rule's statement it checks
    observation: str  # what the device must answer (APDUs, status words, reads)
    transitions: tuple[str, ...] = ()  # model transitions whose SW decides it

    @property
    def rule(self) -> str:
        return self.id.partition(".")[0]


def _c(cid: str, part: str, observation: str, transitions: str = "") -> Check:
    return Check(cid, part, observation, tuple(transitions.split()))


CHECKS: tuple[Check, ...] = (
    # R01 no-factory-reset
    _c("R01.wrong-so-keeps-initialized", "no command sequence without the SO-PIN brings an initialized device back to shipped or re-initializes it",
       "after wrong SO-PINs in RESET RETRY COUNTER and CHANGE 88, a power cycle and a wrong VERIFY 81: VERIFY 88/81 without data answer 63Cx (not 6A88) and the old user PIN verifies (9000)"),
    _c("R01.wrong-so-keeps-keys", "... or erases its keys",
       "after the same sequence ENUMERATE OBJECTS lists the same private keys and SIGN with one of them answers 9000"),
    _c("R01.wrong-init-refused", "INITIALIZE DEVICE with a wrong initialization code is refused",
       "80 50 with a wrong code answers an error status word (never 9000)", "I13 U10"),
    _c("R01.wrong-init-changes-only-so", "... and changes nothing but the SO counter",
       "after it VERIFY 81 shows the same count, ENUMERATE the same keys, and VERIFY 81 + SIGN answer 9000"),
    # R02 so-retry-15
    _c("R02.starts-at-15", "the SO-PIN retry counter starts at 15 after the first initialization",
       "INITIALIZE on a shipped token, then VERIFY 88 without data answers 63CF"),
    _c("R02.change-so-wrong-spends-one", "a failed SO-PIN presentation in CHANGE REFERENCE DATA 88 spends exactly one try",
       "CHANGE 88 with a wrong SO-PIN answers 63C(n-1); VERIFY 88 without data confirms n-1", "I28 U21"),
    _c("R02.rrc-wrong-spends-one", "a failed SO-PIN presentation in RESET RETRY COUNTER spends exactly one try",
       "RESET RETRY COUNTER (option 0x0001 on) with a wrong SO-PIN answers 63C(n-1); VERIFY 88 confirms n-1", "I20 U17"),
    _c("R02.rrc-disabled-wrong-spends-per-profile", "a refused RESET RETRY COUNTER (option 0x0001 off) with a wrong SO-PIN spends no more than one try",
       "VERIFY 88 after it shows n or n-1 tries, as the device's observed profile (open behaviour rrc-disabled) says", "I16 I17 U13 U14"),
    _c("R02.init-wrong-spends-one", "a failed SO-PIN presentation in INITIALIZE spends exactly one try",
       "INITIALIZE with a wrong code, then VERIFY 88 without data answers 63C(n-1)"),
    _c("R02.right-spends-none", "only failed presentations spend: the right SO-PIN costs nothing",
       "CHANGE 88 with the right SO-PIN answers 9000 and VERIFY 88 shows no try lost", "I27 U20"),
    # R03 so-block-permanent
    _c("R03.blocked-at-zero", "at 0 SO tries the SO-PIN is blocked",
       "the wrong CHANGE 88 that spends the last try answers 63C0 or 6983; VERIFY 88 without data answers 6983, also after a power cycle", "O05 B05"),
    _c("R03.init-refused", "INITIALIZE is refused even with the correct SO-PIN", "80 50 with the right code at 0 SO tries answers an error status word", "O11 B09"),
    _c("R03.rrc-refused", "RESET RETRY COUNTER is refused even with the correct SO-PIN",
       "00 2C 00/01 81 with the right SO-PIN at 0 SO tries answer an error status word", "O12 B10"),
    _c("R03.nothing-unblocks", "no command unblocks it", "CHANGE 88 with the right SO-PIN answers 6983 and VERIFY 88 stays 6983", "O17 B12"),
    _c("R03.user-pin-and-keys-work", "the user PIN and the keys keep working",
       "VERIFY 81 with the right PIN answers 9000, SIGN and GENERATE KEY answer 9000, ENUMERATE lists the keys", "O07"),
    # R04 user-retry
    _c("R04.starts-at-tag-91", "the user-PIN counter starts at the value given at initialization (tag 91)",
       "INITIALIZE with 91 = 02, then VERIFY 81 without data answers 63C2"),
    _c("R04.verify-wrong-spends-one", "each wrong VERIFY 81 spends one try", "VERIFY 81 with a wrong PIN answers 63C(n-1); the status query confirms n-1", "I08 O08"),
    _c("R04.change-wrong-spends-one", "each wrong CHANGE 81 spends one try", "CHANGE 81 with a wrong old PIN answers 63C(n-1); the status query confirms", "I24 O15"),
    _c("R04.right-restores", "a correct PIN restores the full count",
       "after wrong tries, VERIFY 81 (and CHANGE 81) with the right PIN answer 9000 and, after a re-SELECT, VERIFY 81 without data answers 63C(max)", "I07 I23"),
    # R05 user-block
    _c("R05.right-pin-refused", "at 0 user tries even the correct PIN is refused (6983)",
       "VERIFY 81 without data, with the right PIN and CHANGE 81 with the right PIN answer 6983", "U04 U07 U19"),
    _c("R05.no-key-use", "no private-key operation is possible", "SIGN and GENERATE KEY are refused (6982), also after VERIFY 81 and a power cycle", "U23 U24 U25"),
    # R06 unblock-needs-option
    _c("R06.refused-without-option", "without option 0x0001 RESET RETRY COUNTER is refused",
       "00 2C 01 81 and 00 2C 00 81 with the right SO-PIN answer an error status word; the user count and the old PIN stay", "I15 U12"),
    _c("R06.resets-with-option", "with option 0x0001 the SO can reset the user-PIN counter (P1=01)",
       "00 2C 01 81 with the right SO-PIN answers 9000 and VERIFY 81 without data shows the full count", "I19 U16"),
    _c("R06.new-pin-with-option", "with option 0x0001 the SO can set a new user PIN (P1=00)",
       "00 2C 00 81 with the right SO-PIN and a new PIN answers 9000 and the new PIN verifies (9000)"),
    _c("R06.wrong-so-spends-one", "a wrong SO-PIN in it spends an SO try", "00 2C 01 81 with a wrong SO-PIN answers 63C(n-1); VERIFY 88 confirms"),
    # R07 reinit-wipes
    _c("R07.keys-erased", "INITIALIZE with the correct SO-PIN erases every key",
       "ENUMERATE OBJECTS lists no private key (CC other than CC00) and SIGN after VERIFY 81 is refused"),
    _c("R07.certificates-erased", "... every certificate",
       "a certificate the suite wrote (CE file) before INITIALIZE: ENUMERATE no longer lists it and READ BINARY answers 6A82"),
    _c("R07.data-objects-erased", "... every data object",
       "data objects the suite wrote (CF and CD files) before INITIALIZE: not listed and unreadable (6A82) afterwards", "I52 O40"),
    _c("R07.new-user-pin-set", "sets the new user PIN",
       "INITIALIZE with a user PIN different from the previous one: the new PIN verifies (9000), the previous one is refused (63Cx)"),
    _c("R07.counter-set", "sets the new counter", "INITIALIZE with 91 = 02, then VERIFY 81 without data answers 63C2"),
    _c("R07.so-pin-kept", "keeps the SO-PIN",
       "INITIALIZE again with the same SO-PIN answers 9000 and VERIFY 88 without data shows no try lost"),
    # R08 identity-survives-init
    _c("R08.c-devaut-unchanged", "EF.C_DevAut (2F02) is byte-identical before and after every INITIALIZE",
       "READ BINARY 2F02 before and after two INITIALIZEs returns the same bytes"),
    _c("R08.device-key-unchanged", "the device authentication key (CC00) is the same before and after every INITIALIZE",
       "after INITIALIZE, SIGN with key CC00 over a fresh challenge verifies under the public key of the device certificate read from 2F02 before INITIALIZE (the private key itself is never readable)", "I55 O43"),
    # R09 so-cannot-use-keys
    _c("R09.verify-so-opens-nothing", "presenting the SO-PIN with VERIFY 88 authorizes no key use",
       "after 00 20 00 88 with the right SO-PIN: GENERATE KEY, SIGN and DELETE answer 6982"),
    _c("R09.rrc-opens-nothing", "presenting the SO-PIN in RESET RETRY COUNTER authorizes no key use",
       "after 00 2C 01 81 with the right SO-PIN: GENERATE KEY, SIGN and DELETE answer 6982"),
    _c("R09.change-so-opens-nothing", "presenting the SO-PIN in CHANGE 88 authorizes no key use",
       "after CHANGE 88 with the right SO-PIN: GENERATE KEY, SIGN and DELETE answer 6982"),
    _c("R09.protected-read-refused", "the SO-PIN never authorizes a PIN-protected read; only the user PIN does",
       "after the SO-PIN was presented, READ BINARY of a CD data object answers 6982; after VERIFY 81 it answers 9000 with the data", "I53 O41 I51 O39"),
    # R10 key-use-needs-login
    _c("R10.sign-needs-login", "sign needs a verified user PIN", "SIGN without VERIFY 81 in the session answers 6982", "I35 O23"),
    _c("R10.generate-needs-login", "generate needs a verified user PIN", "GENERATE KEY without VERIFY 81 answers 6982", "I31 O19"),
    _c("R10.delete-needs-login", "delete needs a verified user PIN", "DELETE FILE of a key without VERIFY 81 answers 6982", "I39 O27"),
    _c("R10.update-needs-login", "update needs a verified user PIN",
       "UPDATE BINARY of a data object without VERIFY 81 answers 6982 and the object is not created", "I50 O38"),
    _c("R10.decipher-needs-login", "decipher needs a verified user PIN", "DECIPHER (80 62) without VERIFY 81 answers 6982", "I48 O36"),
    _c("R10.reselect-ends-session", "a re-SELECT of the applet ends the session",
       "VERIFY 81 (9000), SIGN (9000), SELECT, then SIGN answers 6982 and VERIFY 81 without data 63Cx"),
    _c("R10.power-off-ends-session", "a power-off ends the session", "VERIFY 81, power off and on, then SIGN before and after the re-SELECT: refused (6D00 / 6982)"),
    _c("R10.warm-reset-ends-session", "a (warm) reset ends the session", "VERIFY 81, warm reset, then SIGN before and after the re-SELECT: refused (6D00 / 6982)"),
    # R11 transport-pin
    _c("R11.pin-answers-6984", "with option 0x0002 the user PIN answers 6984",
       "VERIFY 81 without data, with the right and with a wrong PIN answer 6984 and spend nothing", "I03 I06"),
    _c("R11.key-use-refused", "key use is refused until the PIN is changed", "GENERATE KEY and SIGN answer 6982 under the transport PIN", "I32 I36 I40 O20 O24 O28"),
    _c("R11.change-ends-transport", "... until the PIN is changed with CHANGE REFERENCE DATA 81",
       "CHANGE 81 with the transport PIN answers 9000; then VERIFY 81 with the new PIN, GENERATE KEY and SIGN answer 9000", "I22"),
    # R12 fw-update-gate
    _c("R12.refused-with-keys", "an update is refused while the device holds keys and its SO-PIN works",
       "the portal refuses the update ('contains keys') and ENUMERATE lists the same keys", "I42 U27"),
    _c("R12.admitted-without-keys", "an update is admitted if the device holds no keys; a blocked user PIN does not stop it",
       "with no keys and the user PIN blocked the update is done and VERIFY 88 answers 6A88", "U26 I41"),
    _c("R12.admitted-when-so-blocked", "an update is admitted if the SO-PIN is blocked, keys or not",
       "with keys and the SO-PIN blocked the update is done", "O29 B16"),
    # R13 fw-update-limit
    _c("R13.five-admitted", "updates admitted only because the SO-PIN is blocked: 5 per device",
       "five updates of an SO-blocked token with keys are done, across the new identities"),
    _c("R13.sixth-refused", "the sixth is refused", "the sixth update of an SO-blocked token with keys is refused and changes nothing", "O31 B18"),
    _c("R13.empty-not-counted", "updates admitted because the device holds no keys do not count",
       "after the limit, with no keys, the update is still done", "O30 B17"),
    # R14 fw-update-new-identity
    _c("R14.as-shipped", "after an update the device is as shipped: no SO-PIN, no user PIN",
       "VERIFY 88 and VERIFY 81 without data answer 6A88"),
    _c("R14.no-keys", "... no keys", "ENUMERATE lists no key, certificate or data object besides the device identity"),
    _c("R14.new-identity", "a new device key and a new device certificate", "READ BINARY 2F02 differs and the device CHR is new"),
    _c("R14.same-root", "the new device certificate chains to the same root", "the new 2F02 chain verifies to the same root CHR"),
    # R15 portal-needs-working-hsm
    _c("R15.uninitialized-refused", "an HSM that is not initialized cannot log in", "portal login on a shipped token is refused", "S14 F14"),
    _c("R15.working-logs-in", "device authentication plus user authentication on a working HSM logs in",
       "portal login (2F02 chain, VERIFY 81, SIGN with CC00) succeeds", "I44 O33"),
    _c("R15.user-blocked-refused", "a user-blocked HSM cannot log in", "portal login at 0 user tries is refused", "U28 B19"),
    _c("R15.transport-refused", "an HSM still under its transport PIN cannot log in", "portal login under option 0x0002 is refused", "I43 O32"),
    _c("R15.so-blocked-logs-in", "a blocked SO-PIN does not stop the login", "portal login on an SO-blocked token succeeds", "O33"),
    _c("R15.account-updates-blocked-device", "a logged-in account may update another, blocked device",
       "the portal, logged in with another, working HSM, updates this user-blocked token (VERIFY 88 then answers 6A88)", "U26"),
    # R16 pin-formats
    _c("R16.verify-short-user-pin-free", "a user PIN shorter than 6 bytes is refused without spending a try",
       "VERIFY 81 with a 5-byte PIN answers an error (6A80/6700/63Cx per profile) and the status query shows the same count", "I11 U08 O10 B08"),
    _c("R16.verify-long-user-pin-free", "a user PIN longer than 16 bytes is refused without spending a try",
       "VERIFY 81 with a 17-byte PIN answers an error status word and the status query shows the same count", "I57 U35 O45 B25"),
    _c("R16.change-user-wrong-length-free", "CHANGE 81 with a new PIN of the wrong length is refused without spending a try",
       "CHANGE 81 with the right old PIN and a 5-byte or 17-byte new PIN answers an error; the old PIN still verifies and the count is unchanged", "I58 O46"),
    _c("R16.rrc-user-wrong-length-free", "RESET RETRY COUNTER P1=00 with a new user PIN of the wrong length is refused",
       "00 2C 00 81 with the right SO-PIN and a 5-byte new PIN answers an error; the SO count is unchanged", "I60 U37"),
    _c("R16.so-pin-wrong-length-free", "an SO-PIN that is not 8 bytes is refused without spending a try",
       "CHANGE 88 with a 7-byte and a 9-byte old SO-PIN answer an error; VERIFY 88 shows the same count", "I59 U36"),
    _c("R16.initialize-wrong-length-free", "INITIALIZE with an SO-PIN or user PIN of the wrong length is refused without spending a try",
       "80 50 with a 7-byte SO-PIN, or a 5-byte user PIN, answers an error; VERIFY 88 shows the same count and the keys stay", "I61 U38"),
    # R17 no-refund-on-tear
    _c("R17.verify-user-tear", "a power loss during VERIFY 81 never gives the try back",
       "power cut the instant a wrong VERIFY 81 was compared; after power-on VERIFY 81 without data shows the try spent"),
    _c("R17.change-user-tear", "a power loss during CHANGE 81 never gives the try back", "the same for CHANGE 81 with a wrong old PIN"),
    _c("R17.change-so-tear", "a power loss during CHANGE 88 never gives the SO try back", "the same for CHANGE 88 with a wrong SO-PIN (VERIFY 88)"),
    _c("R17.rrc-tear", "a power loss during RESET RETRY COUNTER never gives the SO try back", "the same for RESET RETRY COUNTER with a wrong SO-PIN"),
    # R18 identity-verifiable
    _c("R18.issuer-is-root", "EF.C_DevAut holds the device CVC and its issuer (DICA) CVC, issued by a known root",
       "READ BINARY 2F02 parses as two CVCs; the DICA's CAR is a known root CHR"),
    _c("R18.chain-verifies", "both signatures verify up to the root", "the device CVC verifies under the DICA key, the DICA CVC under the root key"),
    _c("R18.serial-from-chr", "the serial is the CHR minus its last 5 characters",
       "the device CHR minus its last 5 characters equals the serial the token claims (--serial or the emulator)"),
    # R19 queries-are-free
    _c("R19.query-user-free", "VERIFY 81 without data never changes a counter", "repeated 00 20 00 81 answer the same 63Cx", "I04 U04 O04"),
    _c("R19.query-so-free", "VERIFY 88 without data never changes a counter", "repeated 00 20 00 88 answer the same 63Cx", "I05 U05"),
    _c("R19.query-keeps-session", "status queries never change the session",
       "after VERIFY 81, 00 20 00 81 answers 9000 and SIGN still answers 9000 after queries"),
    # R20 uninitialized-refuses
    _c("R20.pin-commands-refused", "in shipped/firmware-reset PIN commands answer 6A88",
       "VERIFY 81/88 (with and without data), RESET RETRY COUNTER, CHANGE 81/88 answer 6A88", "S03 S04 S05 S07 S08 S09 F03 F04 F05 F07 F08 F09"),
    _c("R20.key-commands-refused", "in shipped/firmware-reset key commands answer 6A88", "GENERATE KEY, SIGN and DELETE answer 6A88", "S10 S11 S12 F10 F11 F12"),
    _c("R20.changes-nothing", "... and change nothing", "afterwards VERIFY 88 still answers 6A88 and ENUMERATE lists only the device identity"),
    # R21 first-init-sets-so
    _c("R21.any-code-accepted", "on an uninitialized device INITIALIZE takes any well-formed 8-byte code",
       "80 50 with a code other than the suite's usual SO-PIN answers 9000 on a shipped token"),
    _c("R21.so-tries-15", "... with 15 tries", "VERIFY 88 without data answers 63CF right after"),
    _c("R21.code-becomes-so-pin", "... and makes it the SO-PIN", "CHANGE 88 presenting that code answers 9000"),
    # R22 malformed-refused
    _c("R22.lc-longer-than-data", "a command whose Lc is longer than the data is refused", "VERIFY 81 with Lc 08 and 6 data bytes answers a 6xxx error"),
    _c("R22.lc-shorter-than-data", "a command whose Lc is shorter than the data is refused", "VERIFY 81 with Lc 04 and 6 data bytes answers a 6xxx error"),
    _c("R22.truncated-tlv", "a truncated or inconsistent TLV is refused",
       "INITIALIZE with a TLV whose length runs past the data, and GENERATE KEY with a truncated body, answer a 6xxx error"),
    _c("R22.impossible-p1p2", "an impossible P1/P2 is refused", "VERIFY with P2 = 99 and ENUMERATE OBJECTS with P1P2 = 0101 answer a 6xxx error"),
    _c("R22.unknown-ins", "an unknown INS is refused", "CLA 00/80 with an unassigned INS (e.g. 0x5E, 0xF0) answers 6D00 or another 6xxx error"),
    _c("R22.unknown-cla", "an unknown CLA is refused", "CLA 0xB0 and 0x70 with VERIFY answer 6E00 or another 6xxx error"),
    _c("R22.within-deadline", "... within a deadline (default 2 s)", "every malformed command above is answered within 2 s"),
    _c("R22.changes-nothing", "... and changes nothing: no counter, no session, no object",
       "VERIFY 81/88 without data, the session (9000 after VERIFY) and ENUMERATE are the same before and after the malformed commands"),
    # R23 key-backup-needs-dkek
    _c("R23.status-follows-init", "the DKEK shares announced at INITIALIZE are the ones the device waits for",
       "after INITIALIZE with n shares (tag 92) the DKEK status `80 52 00 00` reports n shares, n outstanding, one fewer per share imported; a share beyond n is refused; without tag 92 no DKEK (6A88)",
       "IK01 IK02 IK03 IK04 IK05 UK01 UK02 UK03 UK04 UK05 OK01 OK02 OK03 OK04 OK05 BK01 BK02 BK03 BK04 BK05"),
    _c("R23.needs-complete-dkek", "a private key leaves the device only once all DKEK shares announced at INITIALIZE have been imported",
       "with a share still outstanding (or no DKEK) WRAP KEY `80 72`, UNWRAP KEY `80 74` and GENERATE KEY answer an error status word (never 9000)",
       "IK07 IK08 IK12 IK13 IK16 OK07 OK08 OK12 OK13 OK16"),
    _c("R23.unwrap-needs-same-dkek", "a wrapped key can be unwrapped only on a device holding the same DKEK",
       "a blob wrapped under DKEK A is refused (6A80) under another complete DKEK and when tampered, accepted under A again, and the key it restores signs so that the wrapped key's public key verifies",
       "IK10 IK14 IK15 OK10 OK14 OK15"),
    _c("R23.init-erases-dkek", "INITIALIZE erases the DKEK with the keys",
       "after INITIALIZE the DKEK status reports every announced share outstanding (none kept) and WRAP of the former key answers an error"),
)  # fmt: skip

BY_ID: dict[str, Check] = {c.id: c for c in CHECKS}


def checks_of(rule: str) -> tuple[Check, ...]:
    """The checks of one rule, in catalog order."""
    return tuple(c for c in CHECKS if c.rule == rule)


def checks_at(transition: str) -> tuple[Check, ...]:
    """The checks a status word at `transition` decides."""
    return tuple(c for c in CHECKS if transition in c.transitions)


def unknown_check(check_id: str) -> str | None:
    """Why `check_id` is not a check of the catalog, or None if it is."""
    if check_id in BY_ID:
        return None
    rule = check_id.partition(".")[0]
    if rule not in RULES:
        return f"{check_id}: {rule} is not a rule of the catalog"
    return f"{check_id}: not a check of {rule} (known: {', '.join(c.id for c in checks_of(rule))})"
