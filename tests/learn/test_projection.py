"""The model projected onto a learning alphabet."""

from __future__ import annotations

from hsm_lifecycle.conformance.learn.alphabet import CORE, KEY_BOUND, OPTIONS, SO, LearningAlphabet
from hsm_lifecycle.conformance.learn.projection import KEY_BOUND_TRANSITION, output_label, project
from hsm_lifecycle.model.commands import Command
from hsm_lifecycle.model.profiles import EMULATOR_DEFAULTS, REFUSED
from hsm_lifecycle.model.states import BOTH_BLOCKED, SHIPPED, SO_BLOCKED, USER_BLOCKED, ExtState


def test_core_has_nine_states():
    # shipped; initialized x (user 2, 1) x keys (0, 1) not authenticated; authenticated (user 2)
    # x keys (0, 1); user-blocked x keys (0, 1) = 1 + 4 + 2 + 2.
    p = project(CORE, EMULATOR_DEFAULTS)
    assert p.size == 9
    assert p.states[0] == ExtState.shipped()
    assert {s.keys for s in p.states} == {0, 1}
    assert sum(s.abstract == USER_BLOCKED for s in p.states) == 2


def test_so_alphabet_keeps_all_sixteen_so_levels():
    p = project(SO, EMULATOR_DEFAULTS)
    levels = {s.so_tries for s in p.states if s.is_initialized}
    assert levels == set(range(16))
    # 1 shipped + 15 levels x (user 2, user 2 authenticated, user 1, blocked) + 3 SO-blocked + both.
    assert p.size == 65
    assert {s.abstract for s in p.states} >= {SHIPPED, SO_BLOCKED, BOTH_BLOCKED}


def test_minimisation_merges_what_the_alphabet_cannot_see():
    # A token after firmware updates differs from a shipped one only in its identity generation
    # and update count, which no learning input observes.
    fresh = project(CORE, EMULATOR_DEFAULTS)
    updated = project(CORE, EMULATOR_DEFAULTS, ExtState(identity=2, so_blocked_updates=1))
    assert updated.size == fresh.size
    assert [[e.outputs for e in row] for row in updated.edges] == [[e.outputs for e in row] for row in fresh.edges]


def test_generate_key_at_the_bound_is_not_sent():
    p = project(CORE, EMULATOR_DEFAULTS)
    generate = p.index(Command.generate_key())
    at_bound = [row[generate] for s, row in zip(p.states, p.edges) if s.keys == CORE.max_keys]
    assert at_bound and all(e.outputs == {KEY_BOUND} and e.transition == KEY_BOUND_TRANSITION for e in at_bound)


def test_open_outputs_stay_sets_and_are_admitted_as_such():
    p = project(CORE, EMULATOR_DEFAULTS)
    sign = p.index(Command.sign())
    verify = p.index(Command.verify_user("right"))
    authenticated_no_key = next(row[sign] for s, row in zip(p.states, p.edges) if s.authenticated and s.keys == 0)
    assert authenticated_no_key.outputs == {"6A88", "6A82", "6982"}
    assert authenticated_no_key.admits("6A82") and not authenticated_no_key.admits("9000")
    assert p.edges[0][verify].outputs == {"6A88"}
    assert p.open_sets > 0


def test_refused_admits_any_status_word_but_9000():
    # RESET RETRY COUNTER on an SO-blocked token: the rule only says "refused".
    p = project(SO, EMULATOR_DEFAULTS)
    rrc = p.index(Command.reset_retry_counter("right", False))
    edges = [row[rrc] for s, row in zip(p.states, p.edges) if s.abstract == SO_BLOCKED]
    assert edges and all(REFUSED in e.outputs for e in edges)
    assert edges[0].admits("6983") and edges[0].admits("6986") and not edges[0].admits("9000")
    assert not edges[0].admits("key-bound")
    assert output_label(edges[0].outputs) == "!9000"


def test_run_model_follows_exact_extended_states():
    p = project(OPTIONS, EMULATOR_DEFAULTS)
    steps = p.run_model([Command.initialize("right", 0x0002, 2), Command.query_user(), Command.change_user_pin("right"), Command.query_user()])
    assert [s.before.abstract for s in steps] == [SHIPPED, "initialized", "initialized", "initialized"]
    assert steps[1].outputs == {"6984"} and "R11" in steps[1].rules
    assert steps[3].outputs == {"63C2"}
    assert not steps[3].before.transport


def test_access_sequences_reach_their_states():
    p = project(CORE, EMULATOR_DEFAULTS)
    for state, access in enumerate(p.access):
        reached = 0
        for command in access:
            reached = p.edges[reached][p.index(command)].target
        assert reached == state


def test_a_tiny_alphabet_projects_to_a_tiny_machine():
    tiny = LearningAlphabet("tiny", (Command.query_so(), Command.initialize("right", 1, 2)), 0, "")
    p = project(tiny, EMULATOR_DEFAULTS)
    assert p.size == 2
    assert [e.label for e in p.edges[0]] == ["6A88", "9000"]
    assert [e.label for e in p.edges[1]] == ["63CF", "9000"]
