"""The SUL: lazy prefix-tree cache, cost counting, the key bound, non-determinism."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from hsm_lifecycle.conformance.learn.alphabet import CORE, KEY_BOUND
from hsm_lifecycle.conformance.learn.emulator_target import EmulatorTarget
from hsm_lifecycle.conformance.learn.sul import LearningCost, DeviceSession, DeviceSUL, NonDeterminism, Target
from hsm_lifecycle.conformance.trace import TraceRecorder
from hsm_lifecycle.model.commands import Command
from hsm_lifecycle.model.profiles import EMULATOR_DEFAULTS, Profile
from hsm_lifecycle.model.states import ExtState

INIT = str(Command.initialize("right", 1, 2))


def test_a_repeated_query_is_answered_from_the_tree():
    sul = DeviceSUL(EmulatorTarget(), CORE)
    word = (INIT, "verify_user(right)", "query_user")
    first = sul.query(word)
    assert first == ["9000", "9000", "9000"]
    cost = sul.cost.to_dict()
    assert cost["resets"] == 1 and cost["steps"] == 3
    assert sul.query(word[:2]) == first[:2]  # a prefix: no device needed
    assert sul.cost.resets == 1 and sul.cost.cached_queries == 1


def test_a_new_suffix_replays_the_prefix_on_a_fresh_token():
    sul = DeviceSUL(EmulatorTarget(), CORE)
    sul.query((INIT, "verify_user(wrong)"))
    assert sul.query((INIT, "verify_user(wrong)", "query_user")) == ["9000", "63C1", "63C1"]
    assert sul.cost.resets == 2 and sul.cost.steps == 2 + 3
    assert sul.tree_steps == 3


def test_apdus_are_counted():
    sul = DeviceSUL(EmulatorTarget(), CORE)
    sul.query((INIT, "query_so"))
    assert sul.cost.apdus == 1 + 2  # the reset's SELECT, INITIALIZE, VERIFY 88


def test_key_bound_comes_from_the_device_count():
    sul = DeviceSUL(EmulatorTarget(), CORE)
    out = sul.query((INIT, "verify_user(right)", "generate_key", "generate_key", "delete_key", "generate_key"))
    assert out == ["9000", "9000", "9000", KEY_BOUND, "9000", "9000"]


@dataclass
class FlakyTarget(Target):
    """Answers query_so differently on every other reset."""

    kind: str = "flaky"
    opened: int = 0
    inner: EmulatorTarget = field(default_factory=EmulatorTarget)

    def open_session(self, alphabet, cost, recorder: TraceRecorder | None = None) -> DeviceSession:  # noqa: ANN001
        self.opened += 1
        session = self.inner.open_session(alphabet, cost, recorder)
        if self.opened % 2 == 0:
            session.execute(Command.initialize("right", 1, 2))  # the "reset" left it initialized
        return session

    def start_state(self) -> ExtState:
        return ExtState.shipped()

    @property
    def model_profile(self) -> Profile:
        return EMULATOR_DEFAULTS

    def describe(self) -> dict[str, object]:
        return {"kind": self.kind}


def test_a_device_that_answers_twice_differently_stops_learning():
    sul = DeviceSUL(FlakyTarget(), CORE)
    sul.query(("query_so",))
    with pytest.raises(NonDeterminism, match="not deterministic"):
        sul.query(("query_so", "query_user"))


def test_cost_to_dict_has_the_reported_fields():
    assert set(LearningCost().to_dict()) == {"resets", "steps", "apdus", "cached_queries"}
