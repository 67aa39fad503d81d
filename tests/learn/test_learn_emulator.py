"""Learning the emulator: the conforming token is the model's machine, and each fault the
alphabets can see is named by a distinguishing sequence the device confirms on replay."""

from __future__ import annotations

import pytest

from hsm_lifecycle.conformance.learn.alphabet import ALPHABETS, CORE
from hsm_lifecycle.conformance.learn.campaign import run_learning
from hsm_lifecycle.conformance.learn.emulator_target import EmulatorTarget
from hsm_lifecycle.conformance.learn.learner import LearnSettings
from hsm_lifecycle.conformance.learn.visibility import EXPOSED_BY, INVISIBLE
from hsm_lifecycle.emulator import Fault
from hsm_lifecycle.model.commands import Command

FAST = LearnSettings(fail_fast=True)


def test_every_fault_is_classified():
    assert set(EXPOSED_BY) | set(INVISIBLE) == {f.value for f in Fault}
    assert not set(EXPOSED_BY) & set(INVISIBLE)
    assert set(EXPOSED_BY.values()) <= set(ALPHABETS)


def test_the_conforming_emulator_learns_to_the_models_machine():
    report = run_learning(EmulatorTarget(), CORE)
    assert report.equivalent and report.diff.isomorphic
    assert report.result.states == report.projection.size == 9
    assert not report.result.stopped_early and report.replay is None
    cost = report.result.cost
    assert cost["resets"] > 0 and cost["steps"] >= cost["resets"]
    assert report.result.oracle["wp_bounds"], "the Wp-method must have confirmed the last hypothesis"


def test_black_box_learning_without_the_models_help_agrees():
    report = run_learning(EmulatorTarget(), CORE, LearnSettings(guided=False, walk_steps=2000))
    assert report.equivalent and report.diff.isomorphic
    assert report.result.oracle["model_proposals"] == 0


def test_kv_learns_the_same_machine():
    report = run_learning(EmulatorTarget(), CORE, LearnSettings(algorithm="kv", extra_states=0))
    assert report.equivalent and report.result.states == 9


# The smoking gun: an input the distinguishing sequence must contain for each fault.
SMOKING_GUN = {
    "uninitialized-accepts-pin": "verify_user(right)",
    "first-init-sets-wrong-tries": "query_so",
    "user-counter-not-restored": "verify_user(right)",
    "user-block-ignored": "verify_user(right)",
    "reinit-keeps-keys": "generate_key",
    "key-use-without-login": "generate_key",
    "session-survives-reselect": "select",
    "wrong-length-spends-try": "verify_user(wrong_length)",
    "query-spends-try": "query_user",
    "initialize-ignores-so-pin": "initialize(so=wrong,options=0x0001,retries=2)",
    "so-counter-not-spent": "initialize(so=wrong,options=0x0001,retries=2)",
    "so-unblockable": "initialize(so=wrong,options=0x0001,retries=2)",
    "rrc-ignores-option": "reset_retry_counter(so=right,new_pin=false)",
    "transport-pin-ignored": "initialize(so=right,options=0x0002,retries=2)",
    "query-ends-session": "query_user",
    "rrc-wrong-spends-two": "reset_retry_counter(so=wrong,new_pin=false)",
    "change-user-pin-refused": "change_user_pin(right)",
    "reinit-keeps-user-pin": "change_user_pin(right)",
    "generate-without-login": "generate_key",
    "delete-without-login": "delete_key",
    "wrong-verify-spends-two": "verify_user(wrong)",
    "wrong-change-spends-two": "change_user_pin(wrong)",
    "reinit-changes-so-pin": "initialize(so=right,options=0x0001,retries=2)",
    "first-init-ignores-retries": "query_user",
    "rrc-does-not-reset": "reset_retry_counter(so=right,new_pin=false)",
    "rrc-logs-in": "reset_retry_counter(so=right,new_pin=false)",
    "uninitialized-key-use-6982": "generate_key",
    "wrong-init-spends-user-try": "initialize(so=wrong,options=0x0001,retries=2)",
    "so-block-query-answers-63c0": "query_so",
    "rrc-works-when-so-blocked": "reset_retry_counter(so=right,new_pin=false)",
    "so-block-blocks-user-pin": "verify_user(right)",
    "wrong-so-erases-keys": "change_so_pin(wrong)",
    "wrong-init-spends-two": "initialize(so=wrong,options=0x0001,retries=2)",
    "blocked-user-key-use": "verify_user(wrong)",
    "transport-verify-logs-in": "initialize(so=right,options=0x0002,retries=2)",
    "change-keeps-transport": "change_user_pin(right)",
    "so-query-spends-try": "query_so",
    "uninitialized-generate-writes": "generate_key",
    "decipher-without-login": "decipher",
    "long-pin-spends-try": "verify_user(over_long)",
    "reinit-keeps-data-objects": "read_protected",
    "protected-read-without-login": "read_protected",
    "update-without-login": "write_data",
    "short-so-pin-spends-try": "change_so_pin(wrong_length)",
    "identity-changes-on-init": "device_sign",
}


def _check_exposed(fault: str, settings: LearnSettings) -> None:
    report = run_learning(EmulatorTarget(faults=frozenset({Fault(fault)})), ALPHABETS[EXPOSED_BY[fault]], settings)
    assert not report.equivalent, f"{fault}: learning found no difference from the model"
    divergence = report.diff.divergence
    assert divergence is not None and report.replay is not None
    assert report.replay.confirmed, f"{fault}: the device did not answer the distinguishing sequence as learned"
    assert report.replay.device[-1] not in divergence.admitted[-1]
    assert Command.parse(SMOKING_GUN[fault]) in divergence.inputs
    assert any(line.step == str(divergence.inputs[-1]) for line in report.replay.trace)


@pytest.mark.parametrize("fault", sorted(EXPOSED_BY))
def test_each_visible_fault_is_exposed_fast(fault: str):
    _check_exposed(fault, FAST)


@pytest.mark.slow
@pytest.mark.parametrize("fault", sorted(EXPOSED_BY))
def test_each_visible_fault_is_exposed_by_a_complete_learn(fault: str):
    _check_exposed(fault, LearnSettings())


@pytest.mark.slow
@pytest.mark.parametrize("fault", sorted(INVISIBLE))
def test_invisible_faults_learn_to_the_models_machine(fault: str):
    # Documents the limit of the abstraction (visibility.INVISIBLE): if one of these starts to
    # show, the alphabet or the model's outputs changed and the table must say so.
    report = run_learning(EmulatorTarget(faults=frozenset({Fault(fault)})), CORE)
    assert report.equivalent


@pytest.mark.slow
@pytest.mark.parametrize("name", ["so", "options"])
def test_larger_alphabets_learn_to_the_models_machine(name: str):
    report = run_learning(EmulatorTarget(), ALPHABETS[name])
    assert report.equivalent and report.diff.isomorphic
