"""The rule catalog is a faithful copy of shared docs/rules.md, and the profiles behave."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from hsm_lifecycle.model import EMULATOR_DEFAULTS, RULES, SMARTCARD_HSM, Command, ExtState, UnresolvedBehaviour, expect
from hsm_lifecycle.model.catalog import AUTHORITIES
from hsm_lifecycle.model.cost import COST_CLASSES
from hsm_lifecycle.model.profiles import OPEN_BEHAVIOURS, REFUSED, STATE_AFFECTING, Profile

SHARED_RULES = Path(__file__).resolve().parents[2].parent / "shared" / "docs" / "rules.md"


def _shared_rule_rows() -> dict[str, list[str]]:
    if not SHARED_RULES.exists():
        pytest.skip(f"shared rules.md not found at {SHARED_RULES}")
    rows = {}
    for line in SHARED_RULES.read_text(encoding="utf-8").splitlines():
        if re.match(r"\| R\d\d \|", line):
            cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
            rows[cells[0]] = cells
    return rows


def test_catalog_rule_ids_are_consecutive_from_r01() -> None:
    assert list(RULES) == [f"R{n:02d}" for n in range(1, len(RULES) + 1)] and "R22" in RULES
    for rid, rule in RULES.items():
        assert rule.id == rid
        assert rule.authority in AUTHORITIES and rule.authority != "open"
        assert rule.cost in COST_CLASSES
        assert rule.sfrs and all(re.fullmatch(r"F[A-Z]{2}_[A-Z_]{3,7}\.\d", s) for s in rule.sfrs), rule.sfrs
        assert rule.source and rule.statement.endswith(".")


def test_catalog_copies_shared_rules_md_verbatim() -> None:
    rows = _shared_rule_rows()
    assert set(rows) == set(RULES)
    for rid, (id_, title, authority, statement, sfrs) in rows.items():
        rule = RULES[rid]
        assert (rule.title, rule.authority, rule.statement) == (title, authority, statement), rid
        assert rule.sfrs == tuple(s.strip() for s in sfrs.split(","))


def test_profiles_name_every_open_behaviour() -> None:
    assert set(SMARTCARD_HSM.describe()) == set(OPEN_BEHAVIOURS) == set(EMULATOR_DEFAULTS.describe())
    assert set(SMARTCARD_HSM.unresolved) == set(STATE_AFFECTING)
    assert EMULATOR_DEFAULTS.is_resolved and not SMARTCARD_HSM.is_resolved


def test_emulator_defaults_are_the_design_defaults() -> None:
    d = EMULATOR_DEFAULTS.describe()
    assert d["init-wrong-so-sw"] == "63Cx" and d["last-wrong-try-sw"] == "63C0"
    assert d["wrong-length-pin-sw"] == "6A80" and d["rrc-disabled"] == "6986 spends-so-try=false"
    assert (d["so-success-restores"], d["retries-by-pin-length"]) == ("true", "false")
    assert (d["auth-after-init"], d["auth-after-change"]) == ("false", "false")


def test_resolve_fills_in_observations() -> None:
    p = SMARTCARD_HSM.resolve(
        {"so-success-restores": False, "rrc-disabled": False, "auth-after-init": True, "auth-after-change": True,
         "wrong-pin-ends-session": False},
        name="my-token",
    )
    assert p.is_resolved and p.name == "my-token" and p.so_success_restores is False
    narrowed = p.resolve({"last-wrong-try-sw": "6983", "rrc-disabled": "6a81", "wrong-length-pin-sw": ["6700", "63cx"]})
    assert narrowed.last_wrong_try_sw == {"6983"} and narrowed.rrc_disabled_sw == {"6A81"}
    assert narrowed.wrong_length_pin_sw == {"6700", "63Cx"}
    both = SMARTCARD_HSM.resolve({"rrc-disabled": {"sw": "6986", "spends": True}})
    assert both.rrc_disabled_sw == {"6986"} and both.rrc_disabled_spends_so_try is True
    assert SMARTCARD_HSM.so_success_restores is None  # resolve copies


@pytest.mark.parametrize(
    "bad",
    [{"no-such-thing": True}, {"so-success-restores": "yes"}, {"last-wrong-try-sw": True},
     {"last-wrong-try-sw": "XYZ"}, {"init-wrong-so-sw": []}, {"rrc-disabled": {"spends": "no"}}],
)  # fmt: skip
def test_resolve_rejects_bad_observations(bad: dict) -> None:
    with pytest.raises(ValueError):
        SMARTCARD_HSM.resolve(bad)


@pytest.mark.parametrize(
    ("state", "command", "behaviour"),
    [
        (ExtState.shipped(), Command.initialize("right"), "auth-after-init"),
        (ExtState.initialized(so_tries=9), Command.change_so_pin("right"), "so-success-restores"),
        (ExtState.initialized(so_tries=9), Command.reset_retry_counter("right"), "so-success-restores"),
        (ExtState.initialized(options=0), Command.reset_retry_counter("wrong"), "rrc-disabled"),
        (ExtState.initialized(), Command.change_user_pin("right"), "auth-after-change"),
    ],
)
def test_oracle_refuses_to_guess_a_state_affecting_behaviour(state: ExtState, command: Command, behaviour: str) -> None:
    with pytest.raises(UnresolvedBehaviour, match=behaviour) as info:
        expect(state, command, SMARTCARD_HSM)
    assert info.value.behaviour == behaviour and "resolve" in str(info.value)


def test_unknown_behaviours_are_not_asked_when_they_cannot_matter() -> None:
    # SO tries already 15: restoring or not gives the same state. Transport PIN: no session.
    assert expect(ExtState.initialized(), Command.change_so_pin("right"), SMARTCARD_HSM).next.so_tries == 15
    out = expect(ExtState.shipped(), Command.initialize("wrong", 0x0002), SMARTCARD_HSM)
    assert out.next.transport and not out.next.authenticated and out.depends == ()
    # rrc disabled with the right SO-PIN spends nothing either way; any refusal is accepted.
    refused = expect(ExtState.initialized(options=0), Command.reset_retry_counter("right"), SMARTCARD_HSM)
    assert refused.outputs == {REFUSED} and refused.accepts("6A81") and not refused.accepts("9000")


def test_profile_is_hashable_and_frozen() -> None:
    assert hash(SMARTCARD_HSM) != hash(EMULATOR_DEFAULTS)
    with pytest.raises(AttributeError):
        SMARTCARD_HSM.name = "x"  # type: ignore[misc]
    assert isinstance(SMARTCARD_HSM, Profile)
