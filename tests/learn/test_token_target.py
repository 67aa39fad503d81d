"""The real-token path, on the emulator presented as a PC/SC token (kind "pcsc"): consent,
refusals before anything changes, the watchdogs, and the token left as promised."""

from __future__ import annotations

from dataclasses import replace

import pytest

from hsm_lifecycle.conformance.learn.alphabet import CORE, SO
from hsm_lifecycle.conformance.learn.campaign import run_learning
from hsm_lifecycle.conformance.learn.learner import LearnSettings
from hsm_lifecycle.conformance.learn.sul import LearningCost, LearningAborted
from hsm_lifecycle.conformance.learn.token_target import LearningRefused, RealTokenTarget
from hsm_lifecycle.conformance.mapper import Mapper, PinBook
from hsm_lifecycle.conformance.transport.inprocess import InProcessTransport
from hsm_lifecycle.emulator import Fault, VirtualToken
from hsm_lifecycle.model.commands import Command

SO_PIN = bytes.fromhex("0102030405060708")
USER_PIN = b"24681357"
QUICK = LearnSettings(walk_steps=300, extra_states=0)


def _token(initialized: bool = True, faults: frozenset[Fault] = frozenset(), wrong_so_tries: int = 0) -> VirtualToken:
    token = VirtualToken.manufacture(faults=faults)
    if initialized:
        transport = InProcessTransport(token)
        mapper = Mapper(transport, pins=PinBook.create(USER_PIN, SO_PIN))
        mapper.select()
        assert mapper.run(Command.initialize("right", 0x0001, 3), uninitialized=True) == "9000"
        for _ in range(wrong_so_tries):
            mapper.run(Command.change_so_pin("wrong"), uninitialized=False)
        transport.close()
    return token


def _target(token: VirtualToken, serial: str | None = None, so_pin: bytes = SO_PIN, alphabet=CORE, so_floor: int = 5) -> RealTokenTarget:  # noqa: ANN001
    return RealTokenTarget(
        transport=InProcessTransport(token, kind="pcsc", reader="emulated reader"),
        serial=token.serial if serial is None else serial,
        so_pin=so_pin,
        user_pin=USER_PIN,
        alphabet=alphabet,
        so_floor=so_floor,
    )


def test_learning_a_token_restores_it_and_matches_the_model():
    token = _token()
    report = run_learning(_target(token), CORE, QUICK)
    assert report.equivalent and report.diff.isomorphic
    assert report.result.states == 8  # core's nine minus shipped: the resets start initialized
    assert report.target["kind"] == "pcsc" and report.target["serial"] == token.serial
    assert report.target["observed"] == {"auth-after-init": False, "wrong-pin-ends-session": True}
    status = token.status()
    assert status.initialized and status.so_tries == 15 and status.user_tries == status.user_max == 2
    assert status.options == 0x0001 and [k for k in status.keys if k != 0xCC00] == []  # CC00: the device key
    # The user's PINs are the ones on the token.
    mapper = Mapper(InProcessTransport(token), pins=PinBook.create(USER_PIN, SO_PIN))
    mapper.select()
    assert mapper.run(Command.verify_user("right"), uninitialized=False) == "9000"
    assert mapper.run(Command.change_so_pin("right"), uninitialized=False) == "9000"


def test_a_serial_that_does_not_match_changes_nothing():
    token = _token()
    writes, before = token.writes, token.status()
    with pytest.raises(LearningRefused, match="does not match"):
        run_learning(_target(token, serial="DENK0000000"), CORE, QUICK)
    assert token.writes == writes  # nothing durable: only free reads happened
    assert replace(token.status(), selected=False) == replace(before, selected=False)


def test_an_alphabet_that_can_spend_so_tries_is_refused_before_any_apdu():
    token = _token()
    target = _target(token, alphabet=SO)
    with pytest.raises(LearningRefused, match="never spend an SO try"):
        target.prepare(LearningCost())
    assert not target.transport.powered  # type: ignore[attr-defined]


def test_an_uninitialized_token_is_refused():
    token = _token(initialized=False)
    with pytest.raises(LearningRefused, match="not initialized"):
        run_learning(_target(token), CORE, QUICK)
    assert not token.status().initialized


def test_a_wrong_so_pin_costs_one_try_and_stops_everything():
    token = _token()
    with pytest.raises(LearningRefused, match="one SO try is spent") as refused:
        run_learning(_target(token, so_pin=bytes(range(8, 16))), CORE, QUICK)
    assert "14 left" in str(refused.value)
    status = token.status()
    assert status.so_tries == 14 and status.initialized and status.user_max == 3


def test_too_few_so_tries_are_refused():
    token = _token(wrong_so_tries=10)  # 5 left: at the default floor
    with pytest.raises(LearningRefused, match="floor"):
        run_learning(_target(token), CORE, QUICK)
    assert token.status().so_tries == 5


def test_a_token_that_spends_so_tries_on_queries_is_stopped_at_once():
    token = _token(faults=frozenset({Fault.QUERY_SPENDS_TRY}))
    with pytest.raises(LearningAborted, match="SO counter"):
        run_learning(_target(token), CORE, QUICK)
    assert token.status().so_tries >= 12  # stopped far above the block
