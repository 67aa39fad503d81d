"""model.applicability: the profile-dependent transitions, checked against the explorer."""

from __future__ import annotations

from hsm_lifecycle.model.applicability import NEEDS, out_of_scope, resolved_from_report
from hsm_lifecycle.model.commands import Command
from hsm_lifecycle.model.explorer import Bounds, explore
from hsm_lifecycle.model.profiles import EMULATOR_DEFAULTS, RETRIES_BY_PIN_LENGTH, RRC_DISABLED


def test_table_matches_what_the_explorer_reaches_under_each_profile() -> None:
    bounds = Bounds(max_keys=1, max_updates=0)
    for spends in (False, True):
        for cap in (False, True):
            profile = EMULATOR_DEFAULTS.resolve({RRC_DISABLED: spends, RETRIES_BY_PIN_LENGTH: cap})
            taken = explore(profile, alphabet=Command.alphabet(retries=(3, 4)), bounds=bounds).transitions
            resolved = {RRC_DISABLED: spends, RETRIES_BY_PIN_LENGTH: cap}
            excluded = set(out_of_scope(resolved))
            assert not (excluded & taken), (resolved, excluded & taken)
            for tid in NEEDS:  # every profile-dependent transition is reached where it applies
                if tid not in excluded and not tid.startswith("F"):
                    assert tid in taken, (resolved, tid)


def test_report_text_parses_and_unknown_keeps_everything_in_scope() -> None:
    assert resolved_from_report({RRC_DISABLED: "6986, spends no SO try", RETRIES_BY_PIN_LENGTH: "false"}) == {
        RRC_DISABLED: False, RETRIES_BY_PIN_LENGTH: False}
    assert resolved_from_report({RRC_DISABLED: "6986, spends SO try"})[RRC_DISABLED] is True
    assert out_of_scope(resolved_from_report({RRC_DISABLED: "not observed"})) == {}
    assert set(out_of_scope({RRC_DISABLED: False, RETRIES_BY_PIN_LENGTH: False})) == {"I17", "I18", "U14", "U15", "S15", "F15", "I45", "U29"}
