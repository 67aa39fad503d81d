"""Learning alphabets: validation and the properties the real-token path relies on."""

from __future__ import annotations

import pytest

from hsm_lifecycle.conformance.learn.alphabet import ALPHABETS, CORE, FULL, OPTIONS, SO, LearningAlphabet
from hsm_lifecycle.model.commands import Command


def test_presets_are_distinct_and_named():
    assert set(ALPHABETS) == {"core", "so", "options", "full", "data"}
    for name, alphabet in ALPHABETS.items():
        assert alphabet.name == name
        assert len(set(alphabet.commands)) == len(alphabet.commands)


def test_only_core_is_safe_for_a_real_token():
    assert not CORE.presents_wrong_so_pin and not CORE.changes_so_pin
    assert SO.presents_wrong_so_pin and FULL.presents_wrong_so_pin
    assert not OPTIONS.presents_wrong_so_pin


def test_full_is_the_union_of_the_others():
    assert set(FULL.commands) == set(CORE.commands) | set(SO.commands) | set(OPTIONS.commands)


def test_user_retries_come_from_initialize():
    assert CORE.user_retries == 2
    assert LearningAlphabet("x", (Command.select(),), 0, "").user_retries == 0


def test_duplicates_are_refused():
    with pytest.raises(ValueError, match="twice"):
        LearningAlphabet("dup", (Command.select(), Command.select()), 1, "")


def test_portal_commands_cannot_be_learned():
    with pytest.raises(ValueError, match="portal"):
        LearningAlphabet("portal", (Command.select(), Command.firmware_update()), 1, "")


def test_generate_key_needs_a_key_bound():
    with pytest.raises(ValueError, match="max_keys"):
        LearningAlphabet("keys", (Command.generate_key(),), 0, "")


def test_describe_lists_inputs_in_their_string_form():
    described = CORE.describe()
    assert described["size"] == len(CORE.commands)
    assert all(Command.parse(text) in CORE.commands for text in described["inputs"])  # type: ignore[union-attr]
