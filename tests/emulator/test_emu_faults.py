"""Each fault switch breaks its rule, and only with the switch on.

Every scenario runs twice, on a correct token and on one with the fault; the observation must be
the rule-abiding one without the fault and the rule-breaking one with it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest
from emu_helpers import (
    PIN,
    PIN2,
    SHORT_PIN,
    SO,
    SO2,
    WRONG_PIN,
    WRONG_SO,
    Card,
    fresh_card,
    initialize,
    initialized_card,
    query_so,
    query_user,
    rrc,
    select_applet,
    verify_so,
    verify_user,
)

from hsm_lifecycle.emulator import Fault, PersistencePoint, PowerCut, PowerLoss, Stage
from hsm_lifecycle import protocol


def _initialize_wrong_code(card: Card) -> object:
    return card.sw(initialize(so=WRONG_SO, pin=PIN2)), card.status.so_tries


def _wrong_so(card: Card) -> object:
    card.sw(verify_so(WRONG_SO))
    return card.status.so_tries


def _so_block_then_right(card: Card) -> object:
    for _ in range(15):
        card.sw(verify_so(WRONG_SO))
    return card.sw(verify_so(SO)), card.sw(initialize())


def _wrong_then_right_user(card: Card) -> object:
    card.sw(verify_user(WRONG_PIN))
    card.sw(verify_user(PIN))
    return card.status.user_tries


def _user_block_then_right(card: Card) -> object:
    for _ in range(3):
        card.sw(verify_user(WRONG_PIN))
    return card.sw(verify_user(PIN))


def _rrc_without_option(card: Card) -> object:
    card.sw(initialize(options=0))
    card.sw(verify_user(WRONG_PIN))
    return card.sw(rrc(SO))


def _so_login_then_user_query(card: Card) -> object:
    card.sw(verify_so(SO))
    return card.sw(query_user())


def _login_reselect_query(card: Card) -> object:
    card.sw(verify_user(PIN))
    card.sw(select_applet())
    return card.sw(query_user())


def _transport_verify(card: Card) -> object:
    card.sw(initialize(options=protocol.OPTION_TRANSPORT_PIN))
    return card.sw(verify_user(PIN))


def _wrong_length(card: Card) -> object:
    card.sw(verify_user(SHORT_PIN))
    return card.status.user_tries


def _events_of_wrong_verify(card: Card) -> object:
    probe = PowerCut()
    card.token.set_power_loss_hook(probe)
    card.sw(verify_user(WRONG_PIN))
    return [(e.point, e.stage) for e in probe.events][:2]


def _queries(card: Card) -> object:
    card.sw(query_user())
    card.sw(query_so())
    return card.status.user_tries, card.status.so_tries


def _uninit_verify(card: Card) -> object:
    return card.sw(verify_user(PIN))


def _first_init(card: Card) -> object:
    card.sw(initialize(so=SO2))
    return card.sw(query_so())


def _serial_across_init(card: Card) -> object:
    before = card.token.serial
    card.sw(initialize())
    return card.token.serial == before


@dataclass(frozen=True)
class Case:
    fault: Fault
    rule: str
    start: Callable[..., Card]
    scenario: Callable[[Card], object]
    good: object
    bad: object


SPENT_FIRST = [
    (PersistencePoint.USER_TRY_SPENT, Stage.BEFORE),
    (PersistencePoint.USER_TRY_SPENT, Stage.AFTER),
]
COMPARED_FIRST = [
    (PersistencePoint.PIN_COMPARED, Stage.INSTANT),
    (PersistencePoint.USER_TRY_SPENT, Stage.BEFORE),
]

CASES = [
    Case(Fault.INITIALIZE_IGNORES_SO_PIN, "R01", initialized_card, _initialize_wrong_code,
         ("63CE", 14), ("9000", 15)),
    Case(Fault.SO_COUNTER_NOT_SPENT, "R02", initialized_card, _wrong_so, 14, 15),
    Case(Fault.SO_UNBLOCKABLE, "R03", initialized_card, _so_block_then_right,
         ("6983", "6983"), ("9000", "9000")),
    Case(Fault.USER_COUNTER_NOT_RESTORED, "R04", initialized_card, _wrong_then_right_user, 3, 2),
    Case(Fault.USER_BLOCK_IGNORED, "R05", initialized_card, _user_block_then_right, "6983", "9000"),
    Case(Fault.RRC_IGNORES_OPTION, "R06", fresh_card, _rrc_without_option, "6986", "9000"),
    Case(Fault.IDENTITY_CHANGES_ON_INIT, "R08", initialized_card, _serial_across_init, True, False),
    Case(Fault.SO_PIN_AUTHORIZES_KEYS, "R09", initialized_card, _so_login_then_user_query,
         "63C3", "9000"),
    Case(Fault.SESSION_SURVIVES_RESELECT, "R10", initialized_card, _login_reselect_query,
         "63C3", "9000"),
    Case(Fault.TRANSPORT_PIN_IGNORED, "R11", fresh_card, _transport_verify, "6984", "9000"),
    Case(Fault.WRONG_LENGTH_SPENDS_TRY, "R16", initialized_card, _wrong_length, 3, 2),
    Case(Fault.TEAR_REFUNDS_TRY, "R17", initialized_card, _events_of_wrong_verify,
         SPENT_FIRST, COMPARED_FIRST),
    Case(Fault.QUERY_SPENDS_TRY, "R19", initialized_card, _queries, (3, 15), (2, 14)),
    Case(Fault.UNINITIALIZED_ACCEPTS_PIN, "R20", fresh_card, _uninit_verify, "6A88", "9000"),
    Case(Fault.FIRST_INIT_SETS_WRONG_TRIES, "R21", fresh_card, _first_init, "63CF", "63CA"),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c.rule}-{c.fault.value}")
def test_fault_breaks_its_rule(case: Case) -> None:
    assert case.scenario(case.start()) == case.good
    assert case.scenario(case.start(faults=frozenset({case.fault}))) == case.bad


def test_fault_values_are_the_documented_strings() -> None:
    assert Fault("so-counter-not-spent") is Fault.SO_COUNTER_NOT_SPENT
    names = {fault.value for fault in Fault}
    assert len(names) == len(Fault)
    assert all(name == name.lower() and " " not in name for name in names)


def test_faults_accepted_as_strings() -> None:
    card = initialized_card(faults=["so-counter-not-spent"])
    assert card.token.faults == frozenset({Fault.SO_COUNTER_NOT_SPENT})
    with pytest.raises(ValueError):
        fresh_card(faults=["no-such-fault"])


def test_tear_refund_fault_really_refunds_on_a_cut_after_comparison() -> None:
    """What R17 forbids: cut the power once the outcome is known, keep the try."""
    for faults, expected in ((frozenset(), 2), (frozenset({Fault.TEAR_REFUNDS_TRY}), 3)):
        card = initialized_card(faults=faults)
        card.token.set_power_loss_hook(PowerCut(at=_index_of_comparison(faults)))
        with pytest.raises(PowerLoss):
            card.token.transmit(verify_user(WRONG_PIN))
        card.token.set_power_loss_hook(None)
        card.token.power_on()
        assert card.status.user_tries == expected


def _index_of_comparison(faults: frozenset[Fault]) -> int:
    probe = PowerCut()
    card = initialized_card(faults=faults)
    card.token.set_power_loss_hook(probe)
    card.sw(verify_user(WRONG_PIN))
    return next(e.seq for e in probe.events if e.point is PersistencePoint.PIN_COMPARED)
