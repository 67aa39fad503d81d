"""The campaign planner (model.plan): one walk through the model for a persistent token."""

from __future__ import annotations

import json

import pytest

from hsm_lifecycle.model.plan import (
    NEED_IRREVERSIBLE,
    NEED_OPERATOR,
    NEED_PIN,
    NEED_SERIAL,
    NEED_SO_PIN,
    RENEWAL,
    CheckSpec,
    PlanConsent,
    plan_campaign,
    plan_fresh_each,
)
from hsm_lifecycle.model.profiles import EMULATOR_DEFAULTS, SMARTCARD_HSM
from hsm_lifecycle.model.states import ExtState

U = {"start": "uninitialized", "leaves": "initialized"}
# The conformance suite's tests as the planner sees them (their markers), with the tries they spend.
SUITE = [
    ("open_behaviours", (), "free", {"start": "any"}),
    ("r01_wrong_so", ("R01",), "tries", {}), ("r01_wrong_init", ("R01",), "tries", {}),
    ("r02_starts_at_15", ("R02",), "wipes", U), ("r02_each_spends", ("R02",), "tries", {}),
    ("r03_block", ("R03",), "irreversible", {"leaves": "so-blocked"}),
    ("r04_tag_91", ("R04",), "wipes", U), ("r04_spends", ("R04",), "tries", {}),
    ("r05", ("R05",), "tries", {}), ("r06_without", ("R06",), "tries", {}), ("r06_with", ("R06",), "tries", {}),
    ("r07", ("R07",), "wipes", {}), ("r08", ("R08",), "wipes", {}), ("r09", ("R09",), "tries", {}),
    ("r10_login", ("R10",), "free", {}), ("r10_session", ("R10",), "free", {}), ("r11", ("R11",), "wipes", {}),
    ("r12", ("R12",), "operator", {"updates": 1, "leaves": "firmware-reset"}),
    ("r13", ("R13", "R12"), "operator", {"updates": 6, "counted": 5, "leaves": "firmware-reset"}),
    ("r14", ("R14",), "operator", {"updates": 1, "leaves": "firmware-reset"}),
    ("r15_blocked", ("R15",), "operator", {}), ("r15_so_blocked", ("R15",), "operator", {"leaves": "so-blocked"}),
    ("r16", ("R16",), "free", {}), ("r17", ("R17",), "tries", {}), ("r18", ("R18",), "free", {"start": "any"}),
    ("r19", ("R19",), "free", {}), ("r20", ("R20",), "free", {"start": "uninitialized"}), ("r21", ("R21",), "wipes", U),
    ("stateful", (), "wipes", {}), ("story", ("R01", "R02", "R03", "R05"), "irreversible", {"leaves": "both-blocked"}),
    ("tour", (), "tries", {}),
]  # fmt: skip
TRIES_SPENT = {"tries": 2, "irreversible": 15, "wipes": 1}
CHECKS = [
    CheckSpec(i, r, c, start=w.get("start", ""), leaves=w.get("leaves"), updates=w.get("updates", 0), counted=w.get("counted", 0), apdus=10,
              user_tries=TRIES_SPENT.get(c, 0))
    for i, r, c, w in SUITE
]  # fmt: skip
NO_OPERATOR_RULES = {f"R{n:02d}" for n in range(1, 22)} - {"R12", "R13", "R14", "R15"}
FULL = PlanConsent(serial=True, irreversible=True, user_pin=True, so_pin=True)
OWNED = ExtState.initialized(keys=1)


def plan(start: ExtState, consent: PlanConsent, checks=CHECKS):
    return plan_campaign(start, checks, consent, SMARTCARD_HSM)


def index(p, check_id: str) -> int:
    return p.order.index(check_id)


def assert_so_blocked_once_at_the_end(p) -> None:
    blocks = [s for s in p.steps if s.so_blocks]
    assert len(blocks) == 1
    last = p.segments[-1].steps[-1]
    assert blocks[0] is last, f"{last.check} runs after the SO-PIN block"


def test_from_shipped_every_rule_without_an_operator_in_one_walk():
    p = plan(ExtState.shipped(), FULL)
    assert p.rules_planned >= NO_OPERATOR_RULES
    assert index(p, "r20") < index(p, "r21") < index(p, "r01_wrong_so")  # uninitialized first, R20 before the init
    assert p.steps[0].way_in == () and p.steps[0].starts_in == "shipped"
    assert_so_blocked_once_at_the_end(p)
    assert p.firmware_updates == 0
    not_run = {n.check: n for n in p.not_run}
    assert NEED_OPERATOR in not_run["story"].allowed_by  # only a firmware update gives it a working SO-PIN


def test_from_initialized_without_an_operator_the_uninitialized_checks_say_what_would_allow_them():
    p = plan(OWNED, FULL)
    assert p.rules_planned >= NO_OPERATOR_RULES - {"R20", "R21"}
    assert_so_blocked_once_at_the_end(p)
    not_run = {n.check: n for n in p.not_run}
    for check in ("r20", "r21", "r02_starts_at_15", "r04_tag_91"):
        assert not_run[check].allowed_by == (NEED_OPERATOR,), not_run[check]


def test_with_an_operator_every_rule_and_two_updates_besides_r13s_own():
    consent = PlanConsent(serial=True, irreversible=True, operator=True, user_pin=True, so_pin=True)
    p = plan(OWNED, consent)
    assert p.rules_planned >= {f"R{n:02d}" for n in range(1, 22)}
    r13 = next(s for s in p.steps if s.check == "r13")
    assert p.firmware_updates - r13.firmware_updates <= 2
    assert sum(s.so_blocked_updates for s in p.steps) <= 5  # R13: a token's lifetime of SO-blocked updates
    assert_so_blocked_once_at_the_end(p)
    for seg in p.segments[:-1]:  # a segment ends with the update that renews the token
        assert seg.steps[-1].firmware_updates >= 1 and seg.steps[-1].leaves == "firmware-reset"
    assert p.segments[1].starts_in == "firmware-reset"
    # A token that already had an SO-blocked update has no room for R13's five.
    used = plan(OWNED.but(identity=1, so_blocked_updates=1), consent)
    assert "r13" not in used.order
    assert "admitted for a blocked SO-PIN" in next(n for n in used.not_run if n.check == "r13").why


def test_with_a_serial_and_no_pins_only_free_checks_run():
    p = plan(OWNED, PlanConsent(serial=True))
    assert {s.cost for s in p.steps} == {"free"}
    assert p.total("user_tries") == 0 and p.total("so_tries") == 0
    not_run = {n.check: n for n in p.not_run}
    assert set(not_run["r05"].allowed_by) == {NEED_PIN, NEED_SO_PIN}
    assert not_run["r03_block"].allowed_by == (NEED_IRREVERSIBLE,)


def test_without_a_serial_nothing_that_wipes_is_planned():
    p = plan(OWNED, PlanConsent(user_pin=True, so_pin=True))
    assert {s.cost for s in p.steps} <= {"free", "tries"}
    assert not any(s.wipes for s in p.steps)
    assert {n.check: n for n in p.not_run}["r07"].allowed_by == (NEED_SERIAL,)


def test_from_shipped_the_suite_holds_the_pins_it_set_itself():
    p = plan(ExtState.shipped(), PlanConsent(serial=True))
    assert "r05" in p.order  # the suite initialized the token: its own PINs restore what r05 spends


def test_way_in_is_the_models_cheapest_path():
    blocked = ExtState.initialized(user_tries=0, keys=1)
    p = plan(blocked, PlanConsent(user_pin=True, so_pin=True), [CheckSpec("t", ("R04",), "tries")])
    (step,) = p.steps
    assert step.way_in == ("reset_retry_counter(so=right,new_pin=false)",) and step.way_in_cost == "tries"
    without_so = plan(blocked, PlanConsent(user_pin=True), [CheckSpec("t", ("R04",), "tries")])
    assert not without_so.steps and NEED_SO_PIN in without_so.not_run[0].allowed_by


def test_renewal_only_while_a_rule_lacks_a_planned_check():
    checks = [
        CheckSpec("block", ("R03",), "irreversible", leaves="so-blocked"),
        CheckSpec("uninit", ("R20",), "free", start="uninitialized"),
    ]
    consent = PlanConsent(serial=True, irreversible=True, operator=True, user_pin=True, so_pin=True)
    p = plan(ExtState.initialized(), consent, checks)
    assert [s.check for s in p.steps] == ["block", RENEWAL, "uninit"]  # nothing else reaches R20
    assert p.firmware_updates == 1
    again = plan(ExtState.initialized(), consent, [*checks, CheckSpec("block2", ("R03",), "irreversible", leaves="so-blocked")])
    # The renewed token serves the second block too; no update is spent on it alone.
    assert again.firmware_updates == 1 and again.order == ("block", "uninit", "block2")
    alone = plan(ExtState.initialized(), consent, [checks[0], CheckSpec("block2", ("R03",), "irreversible", leaves="so-blocked")])
    assert alone.firmware_updates == 0 and alone.not_run[0].check == "block2"  # R03 is judged already


def test_plan_is_json_with_the_summary_fields():
    doc = json.loads(json.dumps(plan(ExtState.shipped(), FULL).to_dict()))
    assert {"segments", "firmware_updates", "changed_by_device"} <= doc.keys()
    assert doc["segments"][0]["steps"][0]["check"] == "r20"


def test_fresh_token_per_check_on_the_in_process_emulator():
    p = plan_fresh_each(CHECKS, EMULATOR_DEFAULTS)
    assert len(p.order) == len(CHECKS) and not p.not_run
    assert all(s.way_in in ((), ("initialize(so=right,options=0x0001,retries=3)",)) for s in p.steps)


@pytest.mark.parametrize("leaves", ["nowhere"])
def test_unknown_leaves_state_is_an_error(leaves):
    with pytest.raises(ValueError, match="unknown state"):
        plan(ExtState.initialized(), FULL, [CheckSpec("x", (), "wipes", leaves=leaves)])
