"""The interlocks, proven with the emulator presented to the suite as a real token (kind "pcsc",
one persistent token in a state file, used by "its owner": initialized, one key)."""

from __future__ import annotations

from pathlib import Path

import pytest

from hsm_lifecycle.conformance.interlocks import Apdu, Consent, GuardedTransport, InterlockRefused, apdu_cost
from hsm_lifecycle.model.cost import CostClass
from hsm_lifecycle.conformance.targets import AsRealTarget
from hsm_lifecycle.conformance.transport.base import Response, Transport
from hsm_lifecycle.emulator import Profile, VirtualToken

OWNER_PINS = ("--hsm-pin", "648219", "--hsm-so-pin", "3537363231383830")
INITIALIZE_PREFIX = "8050"
OWNER_KEY_DELETE = "00E4020002CC01"


def own_token(path: Path, profile: Profile = Profile()) -> tuple[Path, str]:
    token = VirtualToken.manufacture(state_path=path, profile=profile)
    AsRealTarget.set_up_as_owner(token)
    return path, token.serial


@pytest.fixture
def owned_token(tmp_path: Path) -> tuple[Path, str]:
    return own_token(tmp_path / "owned-token.json")


def as_real(path: Path, *more: str) -> tuple[str, ...]:
    return ("--hsm-emulator-as-real", "--hsm-emulator-state", str(path), *OWNER_PINS, *more)


def status(path: Path):
    token = VirtualToken.open(path)
    token.power_on()
    return token.status()


def test_without_serial_nothing_wipes_and_no_initialize_is_sent(run_suite, owned_token):
    path, _ = owned_token
    run = run_suite(*as_real(path))
    assert run.rc == 0, run.output
    for record in run.records:
        if record.cost in ("wipes", "irreversible"):
            assert record.outcome == "skipped" and "--hsm-serial" in record.why, record
    sent = [line.cmd for line in run.trace_lines() if not line.is_control]
    assert sent, "the free and tries tests ran"
    assert not [c for c in sent if c.startswith(INITIALIZE_PREFIX)], "an INITIALIZE reached the token"
    assert OWNER_KEY_DELETE not in sent, "a DELETE reached the owner's key"
    after = status(path)
    assert after.initialized and 0xCC01 in after.keys, "the owner's key survived"
    assert (after.so_tries, after.user_tries) == (15, 3), "the suite gave back every try it spent"


def test_wrong_serial_stops_before_anything_changes(run_suite, owned_token):
    path, serial = owned_token
    before = path.read_bytes()
    run = run_suite(*as_real(path, "--hsm-serial", "DENK0000000"))
    assert run.rc == 3, run.output
    assert f"does not match the token in the reader (serial {serial})" in run.output
    costs = {apdu_cost(Apdu.parse(bytes.fromhex(line.cmd)), set()) for line in run.trace_lines() if not line.is_control}
    assert costs <= {CostClass.FREE}, "only free reads before the serial check"
    assert path.read_bytes() == before, "the token's state file is untouched"


def test_matching_serial_allows_wipes_but_not_irreversible(run_suite, owned_token):
    path, serial = owned_token
    run = run_suite(*as_real(path, "--hsm-serial", serial), select="test_r07 or test_r03 or test_r21")
    assert run.rc == 0, run.output
    assert run.record("test_r07_reinitialize_erases_keys_and_keeps_so_pin").outcome == "passed"
    r03 = run.record("test_r03_blocked_so_pin_stays_blocked")
    assert r03.outcome == "skipped" and "--hsm-allow-irreversible" in r03.why
    assert run.record("test_r21_any_code_becomes_the_so_pin").outcome == "skipped"  # needs a shipped token
    assert status(path).so_tries == 15


def test_irreversible_needs_serial_and_flag(run_suite, owned_token):
    path, serial = owned_token
    flag_only = run_suite(*as_real(path, "--hsm-allow-irreversible"), select="test_r03")
    r03 = flag_only.record("test_r03_blocked_so_pin_stays_blocked")
    assert r03.outcome == "skipped" and "--hsm-serial" in r03.why
    assert status(path).so_tries == 15
    both = run_suite(*as_real(path, "--hsm-serial", serial, "--hsm-allow-irreversible"), select="test_r03")
    assert both.record("test_r03_blocked_so_pin_stays_blocked").outcome == "passed", both.output
    assert status(path).so_tries == 0, "with both flags the SO-PIN really was blocked"


def test_so_floor_is_respected(run_suite, tmp_path):
    # A token whose right SO-PIN does not give tries back: what is spent stays spent.
    path, _ = own_token(tmp_path / "stingy-token.json", Profile(so_success_restores=False))
    token = VirtualToken.open(path)
    token.power_on()
    token.transmit(bytes.fromhex("00A404000BE82B0601040181C31F020100"))
    for _ in range(9):  # the owner mistyped the SO-PIN nine times: 6 tries left
        token.transmit(bytes.fromhex("0024008810" + "00" * 16))
    token.power_off()
    run = run_suite(*as_real(path, "--hsm-so-floor", "5"))
    assert run.rc == 0, run.output
    # The right SO-PIN did not bring the counter back: no wrong one is presented at all (it would
    # cost a try for good), and the floor was never reached.
    kept = [r for r in run.records if r.outcome == "skipped" and ("floor" in r.why or "did not restore" in r.why)]
    assert kept, "a test that would spend an SO try for good stopped"
    left = [int(line.sw[3], 16) for line in run.trace_lines() if line.cmd == "00200088" and line.sw.startswith("63C")]
    assert left and min(left) >= 5, f"SO tries seen: {sorted(set(left))}"
    assert status(path).so_tries == 6, "no SO try was spent: this token would not have given it back"


def test_operator_tests_need_flag_and_terminal(run_suite, owned_token):
    path, _ = owned_token
    run = run_suite(*as_real(path, "--hsm-allow-operator"), select="test_r12")
    record = run.record("test_r12_update_refused_with_keys")
    assert record.outcome == "skipped" and "terminal" in record.why


@pytest.mark.parametrize(
    ("option", "value", "says"),
    [
        ("--hsm-so-pin", "57621880", "3537363231383830"),
        ("--hsm-so-pin", "3537363231383830FF", "16 hex digits"),
        ("--hsm-pin", "12345", "6..16 characters"),
    ],
)
def test_malformed_pins_are_refused_before_any_apdu(run_suite, option, value, says):
    run = run_suite("--hsm-emulator-as-real", option, value)
    assert run.rc == 4 and says in run.output


class Recorder(Transport):
    """A transport that answers 9000 (or 63C<tries> to the SO query) and keeps what it got."""

    def __init__(self, so_tries: int = 15) -> None:
        self.sent: list[bytes] = []
        self.so_tries = so_tries

    def connect(self) -> bytes:
        return b""

    def transmit(self, capdu: bytes) -> Response:
        self.sent.append(capdu)
        if capdu == bytes.fromhex("00200088"):
            return Response(b"", 0x63C0 | self.so_tries)
        return Response(b"", 0x9000)

    def reset(self) -> bytes:
        return b""

    def power_cycle(self) -> bytes:
        return b""

    def close(self) -> None:
        pass

    def describe(self) -> dict[str, str]:
        return {"kind": "pcsc", "reader": "recorder"}


def guarded(inner: Transport, **consent: object) -> GuardedTransport:
    base = dict(guarded=True, serial=None, allow_irreversible=False, allow_operator=False, so_floor=5, interactive=False)
    base.update(consent)
    return GuardedTransport(inner, Consent(**base))  # type: ignore[arg-type]


def test_guard_never_sends_initialize_without_confirmed_serial():
    inner = Recorder()
    guard = guarded(inner, serial="UTEM0000001")  # given but not yet confirmed
    with pytest.raises(InterlockRefused, match="INITIALIZE"):
        guard.transmit(bytes.fromhex("8050000003800200 01".replace(" ", "")))
    assert inner.sent == []
    guard.consent.confirm_serial("UTEM0000001")
    guard.transmit(bytes.fromhex("80500000038002 0001".replace(" ", "")))
    assert len(inner.sent) == 1


def test_guard_deletes_only_the_suites_own_keys():
    inner = Recorder()
    guard = guarded(inner)
    with pytest.raises(InterlockRefused, match="DELETE"):
        guard.transmit(bytes.fromhex("00E4020002CC01"))
    guard.note_generated(2)
    guard.transmit(bytes.fromhex("00E4020002CC02"))
    assert inner.sent == [bytes.fromhex("00E4020002CC02")]


@pytest.mark.parametrize(("so_tries", "sent"), [(6, True), (5, False), (1, False)])
def test_guard_checks_the_so_floor_itself_before_a_wrong_so_pin(so_tries, sent):
    inner = Recorder(so_tries)
    guard = guarded(inner)
    change_so = bytes.fromhex("0024008810" + "00" * 16)
    if sent:
        guard.transmit(change_so)
    else:
        with pytest.raises(InterlockRefused):
            guard.transmit(change_so)
    assert inner.sent[0] == bytes.fromhex("00200088"), "it asked the token first (a free query)"
    assert (change_so in inner.sent) == sent


def test_guard_lets_the_believed_right_so_pin_through_down_to_two_tries():
    right = bytes.fromhex("3537363231383830")
    inner = Recorder(so_tries=2)
    guard = guarded(inner)
    guard.right_so_pin = lambda: right
    guard.transmit(bytes.fromhex("0024008810") + right + bytes(8))
    inner.so_tries = 1
    with pytest.raises(InterlockRefused):
        guard.transmit(bytes.fromhex("0024008810") + right + bytes(8))


def test_emulator_target_is_not_guarded():
    consent = Consent(guarded=False, serial=None, allow_irreversible=False, allow_operator=False, so_floor=5)
    assert consent.ceiling() == CostClass.IRREVERSIBLE
    assert all(consent.skip_reason(c) is None for c in CostClass)
