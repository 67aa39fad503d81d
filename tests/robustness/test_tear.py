"""Power loss at every persistence point of every transition of the model (robust_tear.py).

Every transition of `model.TRANSITIONS` is torn: 148 with the emulator's default profile, and
the four that exist only where RESET RETRY COUNTER with RRC off spends an SO try (I17, I18,
U14, U15) with that profile, and the four INITIALIZE refusals of a device that caps the retries
by the PIN's length (S15, F15, I45, U29) with that profile. Paths are the model's shortest within small bounds; the four
transitions behind five SO-blocked firmware updates (O30, O31, B17, B18) come from a walk
with one option value, so the bounds can reach five updates cheaply.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from hsm_lifecycle.conformance.fuzz.grammar import init_apdu, raw_apdu, write_apdu
from hsm_lifecycle.emulator import Fault, PersistencePoint, Profile, Stage, VirtualToken
from hsm_lifecycle import tlv
from hsm_lifecycle.protocol import DEFAULT_SO_PIN
from hsm_lifecycle.model import EMULATOR_DEFAULTS, TRANSITIONS, Bounds, Command, Exploration, explore
from robust_tear import RawCase, TearCase, tear, tear_raw

AT_UPDATE_LIMIT = ("O30", "O31", "B17", "B18")
RRC_OFF_SPENDS = ("I17", "I18", "U14", "U15")
SPENDING = Profile(rrc_disabled_spends_so_try=True)
SPENDING_MODEL = replace(EMULATOR_DEFAULTS, name="rrc-off spends", rrc_disabled_spends_so_try=True)
# INITIALIZE refused for retries above the per-PIN-length cap: only where the cap is enforced.
OVER_RETRIES_CAP = ("S15", "F15", "I45", "U29")
CAPPED = Profile(retries_by_pin_length=True)
CAPPED_MODEL = replace(EMULATOR_DEFAULTS, name="retries capped", retries_by_pin_length=True)


@pytest.fixture(scope="session")
def tear_cases(default_exploration: Exploration) -> dict[str, TearCase]:
    cases = {tid: TearCase(tid, Profile(), EMULATOR_DEFAULTS, tuple(default_exploration.path_to_transition(tid)))
             for tid in default_exploration.witnesses}
    deep = explore(EMULATOR_DEFAULTS, alphabet=Command.alphabet(options=(0x0001,), dkek=False), bounds=Bounds(max_keys=1, max_updates=5))
    for tid in AT_UPDATE_LIMIT:
        cases[tid] = TearCase(tid, Profile(), EMULATOR_DEFAULTS, tuple(deep.path_to_transition(tid)))
    spending = explore(SPENDING_MODEL, alphabet=Command.alphabet(options=(0x0000,), dkek=False), bounds=Bounds(max_keys=0, max_updates=0))
    for tid in RRC_OFF_SPENDS:
        cases[tid] = TearCase(tid, SPENDING, SPENDING_MODEL, tuple(spending.path_to_transition(tid)))
    capped = explore(CAPPED_MODEL, alphabet=Command.alphabet(options=(0x0001,), retries=(3, 4), dkek=False), bounds=Bounds(max_keys=0, max_updates=1))
    for tid in OVER_RETRIES_CAP:
        cases[tid] = TearCase(tid, CAPPED, CAPPED_MODEL, tuple(capped.path_to_transition(tid)))
    return cases


@pytest.mark.parametrize("transition", [t.id for t in TRANSITIONS])
def test_power_loss_at_every_point_of_the_transition(transition: str, tear_cases: dict[str, TearCase], state_dir: Path) -> None:
    case = tear_cases[transition]
    report = tear(case, state_dir)
    assert not report.problems, f"{transition} ({case.command}):\n" + "\n".join(report.problems)


def test_every_transition_has_a_path(tear_cases: dict[str, TearCase]) -> None:
    assert set(tear_cases) == {t.id for t in TRANSITIONS}


def test_state_changing_transitions_are_really_cut(tear_cases: dict[str, TearCase], state_dir: Path) -> None:
    """The method is not vacuous: a wrong VERIFY has the three events of R17 and is cut at each."""
    report = tear(tear_cases["I08"], state_dir)
    assert [(e.point, e.stage) for e in report.events] == [
        (PersistencePoint.USER_TRY_SPENT, Stage.BEFORE),
        (PersistencePoint.USER_TRY_SPENT, Stage.AFTER),
        (PersistencePoint.PIN_COMPARED, Stage.INSTANT),
    ]
    assert report.cuts == 3 and not report.problems


def test_tear_check_catches_a_token_that_refunds(tear_cases: dict[str, TearCase], state_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With Fault.TEAR_REFUNDS_TRY (decrement written after the comparison) the same method
    reports R17 for a wrong VERIFY: the check bites."""
    real = VirtualToken.manufacture

    def refunding(*args: object, **kwargs: object) -> VirtualToken:
        return real(*args, **{**kwargs, "faults": frozenset({Fault.TEAR_REFUNDS_TRY})})  # type: ignore[arg-type]

    monkeypatch.setattr(VirtualToken, "manufacture", staticmethod(refunding))
    report = tear(tear_cases["I08"], state_dir)
    assert any("R17" in p for p in report.problems), report.problems


DKEK_SHARE = bytes(range(32))
BEYOND_THE_ALPHABET = (
    RawCase("VERIFY 88 right", (Command.initialize(), Command.initialize("wrong")), (),
            raw_apdu(0x00, 0x20, 0x00, 0x88, DEFAULT_SO_PIN), "9000", ("so_tries",)),
    RawCase("VERIFY 88 wrong", (Command.initialize(),), (), raw_apdu(0x00, 0x20, 0x00, 0x88, bytes(8)), "63CE", ("so_tries",)),
    RawCase("UPDATE BINARY create", (Command.initialize(), Command.verify_user()), (), write_apdu(0xC401, b"abc"), "9000"),
    RawCase("UPDATE BINARY overwrite", (Command.initialize(), Command.verify_user()), (write_apdu(0xC401, b"abc"),),
            write_apdu(0xC401, b"xyz!"), "9000"),
    RawCase("DELETE FILE", (Command.initialize(), Command.verify_user()), (write_apdu(0xC401, b"abc"),),
            raw_apdu(0x00, 0xE4, 0x02, 0x00, b"\xc4\x01"), "9000"),
    RawCase("IMPORT DKEK SHARE", (), (init_apdu(tlv.encode(0x92, b"\x02")),),
            raw_apdu(0x80, 0x52, 0x00, 0x00, DKEK_SHARE, 0), "9000"),
)


@pytest.mark.parametrize("case", BEYOND_THE_ALPHABET, ids=lambda c: c.name)
def test_power_loss_in_commands_beyond_the_alphabet(case: RawCase, state_dir: Path) -> None:
    """The persistence points the model's alphabet never reaches (SO_TRY_RESTORED,
    FILE_WRITTEN, DKEK_SHARE_IMPORTED, deleting a file) get the same treatment."""
    report = tear_raw(case, state_dir)
    assert report.events, f"{case.name} wrote nothing: the case does not test what it says"
    assert not report.problems, f"{case.name}:\n" + "\n".join(report.problems)
