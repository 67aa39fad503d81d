"""The one cost-class definition: ordered by harm, spelled as rules.md spells it."""

from __future__ import annotations

import json

import pytest

from hsm_lifecycle.model.cost import COST_ALLOWED, COST_CLASSES, COST_MEANINGS, CostClass, cost_rank


def test_ordered_by_harm_not_alphabetically() -> None:
    assert sorted(CostClass, key=str) != list(CostClass)  # the str order would be wrong
    assert sorted(reversed(COST_CLASSES)) == [
        CostClass.FREE,
        CostClass.TRIES,
        CostClass.WIPES,
        CostClass.IRREVERSIBLE,
        CostClass.OPERATOR,
    ]
    assert CostClass.TRIES < CostClass.IRREVERSIBLE and min(CostClass.WIPES, CostClass.TRIES) == CostClass.TRIES
    assert [cost_rank(c.value) for c in CostClass] == [0, 1, 2, 3, 4]


def test_a_name_is_the_string_people_and_files_use() -> None:
    assert CostClass.WIPES == "wipes" and f"{CostClass.WIPES}" == "wipes"
    assert json.dumps({"cost": CostClass.IRREVERSIBLE}) == '{"cost": "irreversible"}'
    assert CostClass.parse("Tries") is CostClass.TRIES
    with pytest.raises(ValueError, match="unknown cost class 'cheap'"):
        CostClass.parse("cheap")


def test_no_ordering_against_plain_strings() -> None:
    with pytest.raises(TypeError):
        assert CostClass.FREE < "tries"


def test_every_class_is_explained() -> None:
    assert set(COST_MEANINGS) == set(COST_ALLOWED) == set(CostClass)
