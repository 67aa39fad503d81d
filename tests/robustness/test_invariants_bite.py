"""The fuzzer's invariants are not vacuous: for every emulator fault switch, one short input from
a start state makes `hsm_lifecycle.conformance.fuzz.invariants.Invariants` report the rule the fault breaks. (That the
clean emulator keeps them is test_fuzz_engine.py's job.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from hsm_lifecycle.conformance.fuzz.fuzzed import FuzzedToken
from hsm_lifecycle.conformance.fuzz.grammar import SELECT_APPLET, init_apdu, raw_apdu
from hsm_lifecycle.conformance.fuzz.starts import Campaign
from hsm_lifecycle.emulator import Fault, VirtualToken
from hsm_lifecycle.protocol import DEFAULT_SO_PIN, DEFAULT_USER_PIN

VERIFY_WRONG = raw_apdu(0x00, 0x20, 0x00, 0x81, b"000000")
VERIFY_RIGHT = raw_apdu(0x00, 0x20, 0x00, 0x81, DEFAULT_USER_PIN)
VERIFY_SO_RIGHT = raw_apdu(0x00, 0x20, 0x00, 0x88, DEFAULT_SO_PIN)
VERIFY_SO_WRONG = raw_apdu(0x00, 0x20, 0x00, 0x88, bytes(8))
SIGN_WITH_DEVICE_KEY = raw_apdu(0x80, 0x68, 0x00, 0x73, bytes(32), 0)

# fault -> (start, inputs, what the report must say)
CASES: dict[Fault, tuple[str, tuple[bytes, ...], str]] = {
    Fault.INITIALIZE_IGNORES_SO_PIN: ("initialized", (init_apdu(b"").replace(DEFAULT_SO_PIN, bytes(8)),), "R01"),
    Fault.SO_COUNTER_NOT_SPENT: ("initialized", (VERIFY_SO_WRONG,), "R17"),
    Fault.SO_UNBLOCKABLE: ("so-blocked, logged in, key", (VERIFY_SO_RIGHT,), "R03"),
    Fault.USER_COUNTER_NOT_RESTORED: ("initialized", (VERIFY_WRONG, VERIFY_RIGHT), "R04"),
    Fault.USER_BLOCK_IGNORED: ("user-blocked", (VERIFY_RIGHT,), "R05"),
    Fault.RRC_IGNORES_OPTION: ("RRC off", (raw_apdu(0x00, 0x2C, 0x01, 0x81, DEFAULT_SO_PIN),), "R06"),
    Fault.REINIT_KEEPS_KEYS: ("logged in, key and files", (init_apdu(b""),), "R07"),
    Fault.IDENTITY_CHANGES_ON_INIT: ("initialized", (init_apdu(b""),), "R08"),
    Fault.SO_PIN_AUTHORIZES_KEYS: ("initialized", (VERIFY_SO_RIGHT,), "R09"),
    Fault.KEY_USE_WITHOUT_LOGIN: ("initialized", (SIGN_WITH_DEVICE_KEY,), "R10"),
    Fault.SESSION_SURVIVES_RESELECT: ("logged in, key and files", (SELECT_APPLET,), "R10"),
    Fault.TRANSPORT_PIN_IGNORED: ("transport PIN", (VERIFY_RIGHT,), "R11"),
    Fault.WRONG_LENGTH_SPENDS_TRY: ("initialized", (raw_apdu(0x00, 0x20, 0x00, 0x81, b"12345"),), "R16"),
    Fault.TEAR_REFUNDS_TRY: ("initialized", (VERIFY_WRONG,), "R17"),
    Fault.QUERY_SPENDS_TRY: ("initialized", (bytes.fromhex("00200081"),), "R19"),
    Fault.UNINITIALIZED_ACCEPTS_PIN: ("shipped", (VERIFY_RIGHT,), "R20"),
    Fault.FIRST_INIT_SETS_WRONG_TRIES: ("shipped", (init_apdu(b""),), "R21"),
    Fault.WRONG_RRC_UNINITIALIZES: ("initialized", (raw_apdu(0x00, 0x2C, 0x00, 0x81, bytes(8) + b"654321"),), "R01"),
    Fault.SO_QUERY_SPENDS_TRY: ("initialized", (bytes.fromhex("00200088"),), "R19"),
    Fault.TRANSPORT_VERIFY_LOGS_IN: ("transport PIN", (VERIFY_RIGHT,), "R11"),
    Fault.BLOCKED_USER_KEY_USE: ("user-blocked", (SIGN_WITH_DEVICE_KEY,), "R10"),
    Fault.CHANGE_WRONG_LENGTH_SPENDS_TRY: ("initialized", (raw_apdu(0x00, 0x24, 0x00, 0x81, DEFAULT_USER_PIN + b"12345"),), "R16"),
    Fault.RRC_WRONG_LENGTH_SPENDS_TRY: ("initialized", (raw_apdu(0x00, 0x2C, 0x00, 0x81, DEFAULT_SO_PIN + b"12345"),), "R16"),
    Fault.TEAR_REFUNDS_CHANGE_SO: ("initialized", (raw_apdu(0x00, 0x24, 0x00, 0x88, bytes(8) + bytes(8)),), "R17"),
    Fault.WRONG_INIT_SPENDS_TWO: ("initialized", (init_apdu(b"").replace(DEFAULT_SO_PIN, bytes(8)),), "R16/R19"),
    Fault.UNINITIALIZED_GENERATE_WRITES: ("shipped", (raw_apdu(0x00, 0x46, 0x01, 0x00, b"\x7f\x49\x00"),), "R20"),
}


# The narrower faults that break one check of the conformance suite each, and the DKEK faults
# (shares and key blobs are outside the fuzzer's invariants): the fuzzer's generic invariants
# make no claim about them; tests/conformance/test_fault_kills.py kills every one.
BEYOND_FUZZ: frozenset[Fault] = frozenset({
    Fault.RRC_DISABLED_SPENDS_TWO, Fault.RRC_WRONG_SPENDS_TWO, Fault.CHANGE_USER_PIN_REFUSED,
    Fault.REINIT_KEEPS_CERTIFICATES, Fault.REINIT_KEEPS_DATA_OBJECTS, Fault.REINIT_KEEPS_USER_PIN,
    Fault.PROTECTED_READ_WITHOUT_LOGIN, Fault.UPDATE_WITHOUT_LOGIN, Fault.DECIPHER_WITHOUT_LOGIN,
    Fault.SESSION_SURVIVES_WARM_RESET, Fault.LONG_PIN_SPENDS_TRY, Fault.SHORT_SO_PIN_SPENDS_TRY,
    Fault.QUERY_ENDS_SESSION, Fault.LC_MISMATCH_ACCEPTED, Fault.UNKNOWN_INS_ACCEPTED,
    Fault.UNKNOWN_CLA_ACCEPTED, Fault.ENUMERATE_IGNORES_P1P2, Fault.SLOW_ON_UNKNOWN_INS, Fault.UNKNOWN_INS_SPENDS_TRY,
    Fault.SESSION_SURVIVES_POWER_OFF, Fault.GENERATE_WITHOUT_LOGIN, Fault.DELETE_WITHOUT_LOGIN,
    Fault.WRONG_VERIFY_SPENDS_TWO, Fault.WRONG_CHANGE_SPENDS_TWO, Fault.RIGHT_SO_PIN_SPENDS, Fault.REINIT_CHANGES_SO_PIN,
    Fault.REINIT_KEEPS_COUNTER, Fault.FIRST_INIT_IGNORES_RETRIES, Fault.RRC_DOES_NOT_RESET, Fault.RRC_IGNORES_NEW_PIN,
    Fault.WRONG_SO_ERASES_KEYS, Fault.WRONG_INIT_SPENDS_USER_TRY, Fault.SO_BLOCK_QUERY_ANSWERS_63C0,
    Fault.RRC_WORKS_WHEN_SO_BLOCKED, Fault.SO_BLOCK_BLOCKS_USER_PIN, Fault.RRC_LOGS_IN, Fault.CHANGE_SO_LOGS_IN,
    Fault.UNINITIALIZED_KEY_USE_6982, Fault.LC_SHORT_ACCEPTED, Fault.TEAR_REFUNDS_CHANGE_USER, Fault.TEAR_REFUNDS_RRC,
    Fault.CHANGE_SO_UNBLOCKS, Fault.FIRST_INIT_KEEPS_FACTORY_CODE, Fault.FIRST_INIT_ONLY_FACTORY_CODE,
    Fault.INCOMPLETE_DKEK_USED, Fault.WRAP_UNDER_FIXED_KEY, Fault.DKEK_SURVIVES_INIT,
    # The token's status shows which keys exist, not which key CC00 is; a firmware update is no
    # APDU; EF.C_DevAut's content, the claimed serial and the DKEK status are reads the
    # invariants do not judge; a lenient GAKP parser answers 9000 in a verified session.
    Fault.INIT_REGENERATES_DEVICE_KEY, Fault.UPDATE_KEEPS_PINS, Fault.UPDATE_KEEPS_DATA_OBJECTS,
    Fault.UPDATE_UNDER_OTHER_ROOT, Fault.DICA_FROM_UNKNOWN_ROOT, Fault.DEVICE_CVC_BAD_SIGNATURE,
    Fault.SERIAL_IS_WHOLE_CHR, Fault.TRUNCATED_TLV_ACCEPTED, Fault.CHANGE_KEEPS_TRANSPORT,
    Fault.INIT_WRONG_LENGTH_SPENDS_TRY, Fault.DKEK_STATUS_SHOWS_IMPORTED, Fault.DEVICE_KEY_NEEDS_EXTENDED_LE,
    Fault.DKEK_EXTRA_SHARE,
})  # fmt: skip


def test_every_fault_has_a_case() -> None:
    assert set(CASES) | BEYOND_FUZZ == set(Fault) and not set(CASES) & BEYOND_FUZZ


def test_the_clean_emulator_passes_every_case(campaign: Campaign) -> None:
    for start, inputs, _ in CASES.values():
        fuzzed = FuzzedToken(campaign, next(s for s in campaign.starts if s.name == start))
        for capdu in inputs:
            fuzzed.apply(capdu)
        assert not fuzzed.findings, [f.problem for f in fuzzed.findings]


@pytest.mark.parametrize("fault", sorted(CASES, key=lambda f: f.value), ids=lambda f: f.value)
def test_the_invariants_catch_the_fault(campaign: Campaign, fault: Fault) -> None:
    start, inputs, rule = CASES[fault]
    fuzzed = FuzzedToken(campaign, next(s for s in campaign.starts if s.name == start), faults=frozenset({fault}))
    for capdu in inputs:
        fuzzed.apply(capdu)
    problems = [f.problem for f in fuzzed.findings]
    assert any(rule in p for p in problems), f"{fault.value}: expected a {rule} finding, got {problems}"


def test_a_state_file_corrupted_behind_the_tokens_back_is_reported(campaign: Campaign, state_dir: Path) -> None:
    """The "state file always loads" check bites: damage the file, then make the token write
    (it replaces the file whole, so the damage must be caught between writes by opening it)."""
    start = next(s for s in campaign.starts if s.name == "initialized")
    fuzzed = FuzzedToken(campaign, start, state_dir / "token.json")
    assert fuzzed.path is not None
    original_open = VirtualToken.open

    def damaged_open(path: Path, faults: frozenset[Fault] = frozenset()) -> VirtualToken:
        Path(path).write_bytes(Path(path).read_bytes()[:-9])  # a torn tail, as a bad disk would leave
        return original_open(path, faults)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(VirtualToken, "open", staticmethod(damaged_open))
        fuzzed.apply(VERIFY_WRONG)
    assert any("no longer loads" in f.problem and str(fuzzed.path) in f.problem for f in fuzzed.findings), fuzzed.findings
