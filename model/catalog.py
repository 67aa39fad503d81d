"""The rule catalog R01–R23 as data: the project's copy of shared docs/rules.md.

Statements are copied verbatim from rules.md. `source` says where each rule comes from
(story = the forum thread, digest §n = protocol-digest.md). `cost` is the cost class of the
cheapest check on a real token in one of the usual starting conditions (a shipped token or a
working initialized one); tests/model checks that the model reaches a transition exercising
the rule at that cost. The SFR column is a proposed mapping, not a certified Security Target.
"""

from __future__ import annotations

from dataclasses import dataclass

from hsm_lifecycle.model.cost import FREE, IRREVERSIBLE, OPERATOR, TRIES, WIPES, CostClass

DOCUMENTED = "documented"
OBSERVED = "observed"
OPEN = "open"
AUTHORITIES: dict[str, str] = {
    DOCUMENTED: "stated by the device maker. A device that breaks it fails conformance.",
    OBSERVED: "known from OpenSC / CardContact middleware behaviour and public issues. A failure is a "
    "failure against the smartcard-hsm profile, a finding for other profiles.",
    OPEN: "not public. It is a profile parameter, never a pass/fail.",
}

SFR_CAVEAT = (
    "The SFR column is a proposed mapping (Common Criteria part 2 families), "
    "not a quotation of a certified Security Target."
)


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    title: str
    statement: str
    authority: str  # documented | observed
    source: str
    sfrs: tuple[str, ...]  # proposed mapping
    cost: CostClass  # of the cheapest check


RULES: dict[str, Rule] = {
    r.id: r
    for r in (
        Rule(
            "R01", "no-factory-reset",
            "No command sequence without the SO-PIN brings an initialized device back to `shipped`, "
            "re-initializes it, or erases its keys. INITIALIZE DEVICE with a wrong initialization code is "
            "refused and changes nothing but the SO counter.",
            DOCUMENTED, "story: Nitrokey/CardContact (no factory-reset; reset needs the SO-PIN); digest §2",
            ("FMT_SMF.1", "FMT_MTD.1"), TRIES,
        ),
        Rule(
            "R02", "so-retry-15",
            "The SO-PIN retry counter starts at 15 after the first initialization. Every failed SO-PIN "
            "presentation (INITIALIZE, RESET RETRY COUNTER, CHANGE REFERENCE DATA 88) spends exactly one try.",
            DOCUMENTED, "story: 'The SO-PIN has a retry counter of 15'; digest §2, §3 (NK-1895)",
            ("FIA_AFL.1",), TRIES,
        ),
        Rule(
            "R03", "so-block-permanent",
            "At 0 SO tries the SO-PIN is blocked for good: no command unblocks it; INITIALIZE and RESET RETRY "
            "COUNTER are refused even with the correct SO-PIN; the user PIN and the keys keep working.",
            DOCUMENTED, "story: 'can not be unblocked … prevent any further token initialization or PIN unblock'; digest §2 (NK-2795)",
            ("FIA_AFL.1", "FMT_MTD.1"), IRREVERSIBLE,
        ),
        Rule(
            "R04", "user-retry",
            "The user-PIN counter starts at the value given at initialization (tag 91; sc-hsm-tool default 3, "
            "max 10). Each wrong VERIFY 81 / CHANGE 81 spends one try; a correct PIN restores the full count.",
            DOCUMENTED, "digest §2 (retry counter), §3 (VERIFY); CardContact in NK-2795",
            ("FIA_AFL.1",), TRIES,
        ),
        Rule(
            "R05", "user-block",
            "At 0 user tries the user PIN is blocked: even the correct PIN is refused (6983) and no "
            "private-key operation is possible.",
            DOCUMENTED, "story: 'all attempts are used up for User PIN … blocked'; digest §3",
            ("FIA_AFL.1", "FDP_ACF.1"), TRIES,
        ),
        Rule(
            "R06", "unblock-needs-option",
            "The SO can reset the user-PIN counter (RESET RETRY COUNTER P1=01) or set a new user PIN with it "
            "(P1=00) only if option 0x0001 was set at initialization. Without it the command is refused. A "
            "wrong SO-PIN in it spends an SO try.",
            DOCUMENTED, "story: 'If configured during initialization, he could as well reset the User-PIN's retry counter'; digest §2, §3",
            ("FMT_MTD.1", "FIA_AFL.1"), TRIES,
        ),
        Rule(
            "R07", "reinit-wipes",
            "INITIALIZE with the correct SO-PIN erases every key, certificate and data object, sets the new "
            "user PIN and counter, and keeps the SO-PIN.",
            DOCUMENTED, "story: 'His only capability, is to reset the device and thereby clear cryptographic material'; digest §2 (OSC-man)",
            ("FDP_RIP.1", "FCS_CKM.4"), WIPES,
        ),
        Rule(
            "R08", "identity-survives-init",
            "The device authentication key (CC00) and EF.C_DevAut (2F02) are byte-identical before and after "
            "every INITIALIZE.",
            DOCUMENTED, "story: 'That key and certificate does not change during initialization'; digest §2, §5 (NK-1895)",
            ("FIA_API.1",), WIPES,
        ),
        Rule(
            "R09", "so-cannot-use-keys",
            "The SO-PIN never authorizes a private-key operation, key generation, deletion or a PIN-protected "
            "read; only the user PIN does.",
            DOCUMENTED, "story: 'he relinquishes control of cryptographic material'; digest §3 (OSC#889: the only login role is the user)",
            ("FMT_SMR.1", "FDP_ACF.1"), FREE,
        ),
        Rule(
            "R10", "key-use-needs-login",
            "Sign, decipher, generate, delete and update need a verified user PIN in the current card session; "
            "a reset, a power-off or a re-SELECT of the applet ends that session.",
            OBSERVED, "digest §1 (re-SELECT is CardContact's logout), §4, §9 (session state)",
            ("FIA_UAU.1", "FDP_ACF.1"), FREE,
        ),
        Rule(
            "R11", "transport-pin",
            "With option 0x0002 the user PIN answers 6984 and key use is refused until the PIN is changed with "
            "CHANGE REFERENCE DATA 81.",
            OBSERVED, "digest §2 (option bits), §3 (6984; CHANGE 81 ends transport mode)",
            ("FMT_MTD.1",), WIPES,
        ),
        Rule(
            "R12", "fw-update-gate",
            "A firmware update is admitted only if the device holds no keys, or its SO-PIN is blocked. A blocked "
            "user PIN does not stop it.",
            DOCUMENTED, "story: 'A blocked User-PIN does not prevent a firmware update … must not contain any keys'; digest §7 (NK-3431)",
            ("FPT_TUD_EXT.1", "FMT_MOF.1"), OPERATOR,
        ),
        Rule(
            "R13", "fw-update-limit",
            "Updates admitted only because the SO-PIN is blocked are limited to 5 per device.",
            DOCUMENTED, "story: 'That is however limited to 5 firmware updates' (no public source: digest §7)",
            ("FPT_TUD_EXT.1",), OPERATOR,
        ),
        Rule(
            "R14", "fw-update-new-identity",
            "After an update the device is as shipped (no SO-PIN, no user PIN, no keys) and has a new "
            "identity: a new device key and a new device certificate that chains to the same root.",
            DOCUMENTED, "story: 'in the state as it was during initial shipment. And it has a new identity'; digest §7 (PaaS)",
            ("FIA_API.1", "FDP_RIP.1"), OPERATOR,
        ),
        Rule(
            "R15", "portal-needs-working-hsm",
            "Logging into the update portal needs device authentication plus user authentication on an HSM "
            "that is initialized and not user-blocked; a blocked HSM cannot log in. A logged-in account may "
            "update another, blocked device.",
            DOCUMENTED, "story: 'You can not use a blocked HSM to log into the portal'; digest §7",
            ("FIA_UAU.1",), OPERATOR,
        ),
        Rule(
            "R16", "pin-formats",
            "The SO-PIN is exactly 8 bytes (16 hex digits in tools); the user PIN is 6..16 bytes (OpenSC "
            "PKCS#11 caps at 15). A PIN of the wrong length is refused without spending a try. Tools must warn "
            "about the ASCII-hex trap (`3537363231383830` is ASCII \"57621880\").",
            OBSERVED, "digest §2 (SO-PIN format, user PIN), §8 (conversion trap, 16-character PIN); story (NK-629, NK-6516)",
            ("FIA_SOS.1",), FREE,
        ),
        Rule(
            "R17", "no-refund-on-tear",
            "A power loss during any PIN check never gives a try back: the decrement is persistent before the "
            "outcome is known.",
            OBSERVED, "digest §9 (Java Card predecrement; pico commits before answering)",
            ("FPT_FLS.1", "FIA_AFL.1"), TRIES,
        ),
        Rule(
            "R18", "identity-verifiable",
            "EF.C_DevAut holds the device CVC and its issuer (DICA) CVC; both signatures verify up to the root, "
            "and the serial OpenSC shows is the CHR minus its last 5 characters.",
            OBSERVED, "digest §5 (EF.C_DevAut, serial)",
            ("FIA_API.1",), FREE,
        ),
        Rule(
            "R19", "queries-are-free",
            "Status queries (VERIFY 81/88 without data) never change a counter or the session.",
            OBSERVED, "digest §3 (status query spends no try; GET_INFO)",
            ("FIA_AFL.1",), FREE,
        ),
        Rule(
            "R20", "uninitialized-refuses",
            "In `shipped`/`firmware-reset`, PIN and key commands answer \"not initialized\" (6A88) and change "
            "nothing.",
            OBSERVED, "digest §2 ('Not initialized'), §7 (NK-3431)",
            ("FMT_MTD.1",), FREE,
        ),
        Rule(
            "R21", "first-init-sets-so",
            "On an uninitialized device INITIALIZE takes any well-formed 8-byte initialization code and makes it "
            "the SO-PIN with 15 tries.",
            OBSERVED, "digest §2 (`--so-pin` sets the code the first time; SO-PIN retry counter 15)",
            ("FMT_MTD.1",), WIPES,
        ),
        Rule(
            "R22", "malformed-refused",
            "A malformed command (Lc longer or shorter than the data, a truncated or inconsistent TLV, an "
            "impossible P1/P2, an unknown INS or CLA) is answered with an ISO 7816-4 error status within a "
            "deadline (default 2 s) and changes nothing: no counter, no session, no object.",
            OBSERVED, "digest §1 (ISO 7816-4 framing); robustness fuzzing (docs/robustness.md)",
            ("FPT_FLS.1", "FDP_ACF.1"), FREE,
        ),
        Rule(
            "R23", "key-backup-needs-dkek",
            "A private key leaves the device only wrapped under the device key encryption key (DKEK), and only "
            "once all DKEK shares announced at INITIALIZE have been imported; a wrapped key can be unwrapped only "
            "on a device holding the same DKEK; INITIALIZE erases the DKEK with the keys.",
            DOCUMENTED, "digest §2 (tag 92: the device waits for all shares), §4 (DKEK status, WRAP 80 72, UNWRAP 80 74); "
            "OpenSC sc-hsm-tool --wrap-key/--unwrap-key ('Wrapped key does not match DKEK')",
            ("FDP_ETC.2", "FCS_CKM.4"), WIPES,
        ),
    )
}  # fmt: skip

# Rules whose cheapest check reads something the abstract alphabet does not model (EF.C_DevAut):
# their catalog cost is below what a model path costs. Kept explicit so a test can hold the rest.
CHECKED_OUTSIDE_ALPHABET: dict[str, str] = {
    "R18": "read EF.C_DevAut (2F02) and verify the CVC chain: a read, free on any token",
    "R22": "malformed APDUs (bad Lc, truncated TLVs, impossible P1/P2, unknown INS/CLA): outside the abstract alphabet, free",
}
