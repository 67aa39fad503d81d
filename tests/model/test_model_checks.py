"""The checks catalog (model.checks): every rule split into named checks, each deciding
transition a real one, ids unique and well formed."""

from __future__ import annotations

import re

from hsm_lifecycle.model.catalog import RULES
from hsm_lifecycle.model.checks import BY_ID, CHECKS, checks_at, checks_of, unknown_check
from hsm_lifecycle.model.lifecycle import BY_ID as TRANSITIONS


def test_every_rule_has_checks_and_every_check_a_rule() -> None:
    assert {c.rule for c in CHECKS} == set(RULES)
    for rule in RULES:
        assert len(checks_of(rule)) >= 2 or rule in ("R21",), rule


def test_check_ids_unique_and_well_formed() -> None:
    assert len(BY_ID) == len(CHECKS)
    for check in CHECKS:
        assert re.fullmatch(r"R\d\d\.[a-z0-9-]+", check.id), check.id
        assert check.part and check.observation


def test_deciding_transitions_exist_and_exercise_the_rule_family() -> None:
    for check in CHECKS:
        for tid in check.transitions:
            assert tid in TRANSITIONS, f"{check.id}: unknown transition {tid}"
            assert check in checks_at(tid)


def test_unknown_check_names_the_known_ones() -> None:
    assert unknown_check("R07.keys-erased") is None
    assert "R07.keys-erased" in (unknown_check("R07.keys-gone") or "")
    assert "not a rule" in (unknown_check("R99.x") or "")
