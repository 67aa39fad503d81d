"""The product-BFS diff between a learned machine and the model's projection."""

from __future__ import annotations

from dataclasses import replace

from hsm_lifecycle.conformance.learn.alphabet import CORE
from hsm_lifecycle.conformance.learn.diff import compare
from hsm_lifecycle.conformance.learn.machine import LearnedMachine
from hsm_lifecycle.conformance.learn.projection import Projection, project
from hsm_lifecycle.model.commands import Command
from hsm_lifecycle.model.profiles import EMULATOR_DEFAULTS


def _as_learned(p: Projection, choose=min) -> LearnedMachine:  # noqa: ANN001 - a chooser over outputs
    """A machine that answers like the model, picking one output where the model admits a set."""
    return LearnedMachine(
        alphabet=p.alphabet,
        outputs=tuple(tuple(choose(e.outputs) if "refused" not in e.outputs else "6983" for e in row) for row in p.edges),
        targets=tuple(tuple(e.target for e in row) for row in p.edges),
    )


def _with_output(m: LearnedMachine, state: int, command: Command, output: str) -> LearnedMachine:
    i = m.alphabet.index(command)
    rows = [list(r) for r in m.outputs]
    rows[state][i] = output
    return replace(m, outputs=tuple(tuple(r) for r in rows))


def _with_target(m: LearnedMachine, state: int, command: Command, target: int) -> LearnedMachine:
    i = m.alphabet.index(command)
    rows = [list(r) for r in m.targets]
    rows[state][i] = target
    return replace(m, targets=tuple(tuple(r) for r in rows))


def _state_after(p: Projection, inputs: list[Command]) -> int:
    state = 0
    for c in inputs:
        state = p.edges[state][p.index(c)].target
    return state


P = project(CORE, EMULATOR_DEFAULTS)
INIT = Command.initialize("right", 1, 2)


def test_the_model_itself_is_equivalent_and_isomorphic():
    for choose in (min, max):  # any admitted member of an open set is fine
        d = compare(_as_learned(P, choose), P)
        assert d.equivalent and d.isomorphic and d.divergence is None
        assert len(d.pairs) == P.size


def test_a_wrong_output_gives_the_shortest_distinguishing_sequence():
    authenticated = _state_after(P, [INIT, Command.verify_user("right")])
    learned = _with_output(_as_learned(P), authenticated, Command.query_user(), "63C2")
    d = compare(learned, P)
    assert not d.equivalent and not d.isomorphic
    assert d.divergence is not None
    assert d.divergence.inputs == (INIT, Command.verify_user("right"), Command.query_user())
    assert d.divergence.observed[-1] == "63C2" and d.divergence.admitted[-1] == {"9000"}
    assert d.divergence.transitions[-1] == "I04" and "R19" in d.divergence.rules
    assert "query_user" in d.divergence.explain()


def test_the_explanation_names_the_status_word_the_record_keeps_as_hex():
    authenticated = _state_after(P, [INIT, Command.verify_user("right")])
    d = compare(_with_output(_as_learned(P), authenticated, Command.query_user(), "63C2"), P)
    assert d.divergence is not None
    assert "with 63C2 PIN not verified or wrong, 2 tries left;" in d.divergence.explain()
    assert d.divergence.to_dict()["observed"] == ["9000", "9000", "63C2"]


def test_a_wrong_target_shows_up_later_as_an_output():
    # The device forgets the login on query_user: only a later step can tell.
    authenticated = _state_after(P, [INIT, Command.verify_user("right")])
    fresh = _state_after(P, [INIT])
    learned = _with_target(_as_learned(P), authenticated, Command.query_user(), fresh)
    d = compare(learned, P)
    assert d.divergence is not None
    assert d.divergence.inputs[:3] == (INIT, Command.verify_user("right"), Command.query_user())
    assert len(d.divergence.inputs) == 4  # one more input exposes the lost session


def test_an_output_outside_an_open_set_differs():
    key = _state_after(P, [INIT, Command.verify_user("right")])
    learned = _with_output(_as_learned(P), key, Command.sign(), "6A80")
    d = compare(learned, P)
    assert d.divergence is not None and d.divergence.admitted[-1] == {"6A88", "6A82", "6982"}


def test_a_redundant_state_is_equivalent_but_not_isomorphic():
    narrow = project(CORE, EMULATOR_DEFAULTS)
    learned = _as_learned(narrow)
    d = compare(learned, narrow)
    assert d.isomorphic
    # A copy of the freshly initialized state, entered by the first INITIALIZE: it answers
    # alike, so the machine is equivalent still, yet the pairing is no longer one-to-one.
    extra = LearnedMachine(learned.alphabet, (*learned.outputs, learned.outputs[1]), (*learned.targets, learned.targets[1]))
    extra = _with_target(extra, 0, INIT, len(extra.outputs) - 1)
    d2 = compare(extra, narrow)
    assert d2.equivalent and not d2.isomorphic
