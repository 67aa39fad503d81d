"""Which emulator fault each learning alphabet can expose, and why some none can.

The claims are checked by tests/learn (a representative subset in CI, all of them under the
`slow` marker and in bench/bench_learn.py): learning the faulty emulator over the named
alphabet must end in a difference from the model that the device confirms on replay.
"""

from __future__ import annotations

# fault value (emulator.Fault) -> the smallest alphabet that exposes it
EXPOSED_BY: dict[str, str] = {
    "uninitialized-accepts-pin": "core",  # R20: verify_user(right) on a shipped token
    "first-init-sets-wrong-tries": "core",  # R21: query_so after the first INITIALIZE
    "user-counter-not-restored": "core",  # R04: wrong, right, wrong
    "user-block-ignored": "core",  # R05: right PIN at 0 tries
    "reinit-keeps-keys": "core",  # R07: a key survives INITIALIZE
    "key-use-without-login": "core",  # R10: generate_key without VERIFY
    "session-survives-reselect": "core",  # R10: select, then the session is still open
    "wrong-length-spends-try": "core",  # R16: wrong-length PIN, then query_user
    "query-spends-try": "core",  # R19: query_user twice
    "initialize-ignores-so-pin": "so",  # R01: INITIALIZE with a wrong SO-PIN accepted
    "so-counter-not-spent": "so",  # R02: wrong SO-PIN, then query_so
    "so-unblockable": "so",  # R03: 15 wrong SO-PINs, then a right one
    "rrc-ignores-option": "options",  # R06: RESET RETRY COUNTER with option 0x0001 off
    "transport-pin-ignored": "options",  # R11: option 0x0002, then query_user
    "query-ends-session": "core",  # R19: verify_user(right), query_user, then the session is gone
    "rrc-wrong-spends-two": "so",  # R02: reset_retry_counter(wrong), then query_so
    "change-user-pin-refused": "options",  # R04: change_user_pin(right) refused
    "reinit-keeps-user-pin": "options",  # R07: change_user_pin(right), INITIALIZE, verify_user(right)
    "generate-without-login": "core",  # R10: generate_key without VERIFY
    "delete-without-login": "core",  # R10: delete_key without VERIFY
    "wrong-verify-spends-two": "core",  # R04: verify_user(wrong), then query_user
    "wrong-change-spends-two": "options",  # R04: change_user_pin(wrong), then query_user
    "reinit-changes-so-pin": "core",  # R07: a second INITIALIZE with the SO-PIN is refused
    "first-init-ignores-retries": "core",  # R04: 3 tries where the reset's INITIALIZE asked for 2
    "rrc-does-not-reset": "core",  # R04/R06: reset_retry_counter(right), then query_user
    "rrc-logs-in": "core",  # R09: reset_retry_counter(right), then generate_key
    "uninitialized-key-use-6982": "core",  # R20: generate_key on a shipped token
    "wrong-init-spends-user-try": "so",  # R01: initialize(wrong), then query_user
    "so-block-query-answers-63c0": "so",  # R03: query_so at 0 SO tries
    "rrc-works-when-so-blocked": "so",  # R03: reset_retry_counter(right) at 0 SO tries
    "so-block-blocks-user-pin": "so",  # R03: verify_user(right) at 0 SO tries
    "wrong-so-erases-keys": "full",  # R01: a key, change_so_pin(wrong), then sign (about 45 s to learn)
    "wrong-init-spends-two": "so",  # R02: initialize(wrong), then query_so
    "blocked-user-key-use": "core",  # R05: verify_user(wrong) down to 0, then generate_key
    "transport-verify-logs-in": "options",  # R11: transport PIN, verify_user(right), then generate_key
    "change-keeps-transport": "options",  # R11: transport PIN, change_user_pin(right), then query_user
    "so-query-spends-try": "core",  # R19: query_so twice
    "uninitialized-generate-writes": "core",  # R20: generate_key on a shipped token, then the key bound
    "decipher-without-login": "core",  # R10: decipher without VERIFY
    "long-pin-spends-try": "core",  # R16: verify_user(over_long), then a wrong VERIFY shows one try less
    "reinit-keeps-data-objects": "data",  # R07: write_data, INITIALIZE, verify_user(right), read_protected
    "protected-read-without-login": "data",  # R09: read_protected without VERIFY (6A82 on a shipped token)
    "update-without-login": "data",  # R10: write_data without VERIFY
    "short-so-pin-spends-try": "data",  # R16: change_so_pin(wrong_length), then query_so
    "identity-changes-on-init": "data",  # R08: device_sign, INITIALIZE, verify_user(right), device_sign
}

# fault value -> why no alphabet over the model's abstract commands can see it
INVISIBLE: dict[str, str] = {
    "so-pin-authorizes-keys": "R09: the fault opens key use after VERIFY 88 with the right SO-PIN, and the model's "
    "abstract alphabet has no SO-PIN VERIFY command (only the SO status query)",
    "tear-refunds-try": "R17: needs a power loss in the middle of a PIN check; the alphabet's inputs are whole "
    "commands, and power_cycle happens between them",
    "incomplete-dkek-used": "R23: no learning alphabet has the DKEK commands (the model's alphabet, the tour and "
    "the stateful test do; learning keeps them out to stay tractable)",
    "wrap-under-fixed-key": "R23: no learning alphabet has WRAP and UNWRAP (the model's alphabet does)",
    "dkek-survives-init": "R23: no learning alphabet announces DKEK shares or asks the DKEK status (the model's "
    "alphabet does)",
    "rrc-disabled-spends-two": "R02: needs RESET RETRY COUNTER with a wrong SO-PIN while option 0x0001 is off; no "
    "learning alphabet combines INITIALIZE with options 0x0000 and a wrong SO-PIN in it",
    "reinit-keeps-certificates": "R07: certificates (CE files) are written and read with commands outside the alphabet",
    "session-survives-warm-reset": "R10: the alphabet's warm_reset re-SELECTs the applet, which ends the session by itself",
    "lc-mismatch-accepted": "R22: malformed APDUs are outside the abstract alphabet, whose commands are well formed",
    "unknown-ins-accepted": "R22: malformed APDUs are outside the abstract alphabet, whose commands are well formed",
    "unknown-cla-accepted": "R22: malformed APDUs are outside the abstract alphabet, whose commands are well formed",
    "enumerate-ignores-p1p2": "R22: malformed APDUs are outside the abstract alphabet, whose commands are well formed",
    "slow-on-unknown-ins": "R22: malformed APDUs are outside the abstract alphabet (and its outputs carry no time)",
    "unknown-ins-spends-try": "R22: malformed APDUs are outside the abstract alphabet, whose commands are well formed",
    "session-survives-power-off": "R10: the alphabet's power_cycle re-SELECTs the applet, which ends the session by itself",
    "reinit-keeps-counter": "R07: every INITIALIZE of the learning alphabets asks for the same 2 tries the token already has",
    "right-so-pin-spends": "R02: no learning alphabet presents the right SO-PIN in CHANGE REFERENCE DATA 88",
    "rrc-ignores-new-pin": "R06: no learning alphabet has RESET RETRY COUNTER with a new PIN (P1=00)",
    "change-so-logs-in": "R09: no learning alphabet presents the right SO-PIN in CHANGE REFERENCE DATA 88",
    "lc-short-accepted": "R22: malformed APDUs are outside the abstract alphabet, whose commands are well formed",
    "tear-refunds-change-user": "R17: needs a power loss in the middle of a PIN check (see tear-refunds-try)",
    "tear-refunds-rrc": "R17: needs a power loss in the middle of a PIN check (see tear-refunds-try)",
    "change-so-unblocks": "R03: no learning alphabet presents the right SO-PIN in CHANGE REFERENCE DATA 88",
    "first-init-keeps-factory-code": "R21: every learning reset initializes with the same code, the factory one",
    "first-init-only-factory-code": "R21: every learning reset initializes with the same code, the factory one",
    "init-regenerates-device-key": "R08: the alphabet's SIGN uses the key it generated, never the device key CC00",
    "update-keeps-pins": "R14: a firmware update needs the portal, which no alphabet has",
    "update-keeps-data-objects": "R14: a firmware update needs the portal, which no alphabet has",
    "update-under-other-root": "R14: a firmware update needs the portal, which no alphabet has",
    "dica-from-unknown-root": "R18: EF.C_DevAut is never an abstract output",
    "device-cvc-bad-signature": "R18: EF.C_DevAut is never an abstract output",
    "serial-is-whole-chr": "R18: the serial the token claims is never an abstract output",
    "truncated-tlv-accepted": "R22: malformed APDUs are outside the abstract alphabet, whose commands are well formed",
    "wrong-rrc-uninitializes": "R01: no learning alphabet has RESET RETRY COUNTER with a new PIN (P1=00)",
    "change-wrong-length-spends-try": "R16: no learning alphabet sends CHANGE REFERENCE DATA 81 with a wrong-length PIN",
    "rrc-wrong-length-spends-try": "R16: no learning alphabet has RESET RETRY COUNTER with a new PIN (P1=00)",
    "init-wrong-length-spends-try": "R16: every INITIALIZE of the learning alphabets is well formed",
    "tear-refunds-change-so": "R17: needs a power loss in the middle of a PIN check (see tear-refunds-try)",
    "dkek-status-shows-imported": "R23: no learning alphabet has a DKEK command (the model's alphabet does)",
    "device-key-needs-extended-le": "R15: the alphabet's SIGN uses the key it generated, never the device key CC00 (and no portal login)",
    "dkek-extra-share": "R23: no learning alphabet imports DKEK shares (the model's alphabet does)",
}
