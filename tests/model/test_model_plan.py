"""The campaign planner (model.plan): one walk through the model for a persistent token."""

from __future__ import annotations

import json

import pytest

from hsm_lifecycle.model.plan import (
    NEED_IRREVERSIBLE,
    NEED_MORE_UPDATES,
    NEED_OPERATOR,
    NEED_POWER_RIG,
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


# The operator tests as the suite marks them: what each decides, R13's made with the updates left.
R13_DECIDES = frozenset({
    "R13.five-admitted", "R13.sixth-refused", "R13.empty-not-counted", "R12.admitted-when-so-blocked",
    "R12.admitted-without-keys", "R15.so-blocked-logs-in", "R15.uninitialized-refused",
    "R15.account-updates-blocked-device", "R14.as-shipped", "R14.no-keys", "R14.new-identity", "R14.same-root",
})  # fmt: skip
OPERATOR_TESTS = [
    CheckSpec("r12_refused", ("R12",), "operator", decides=frozenset({"R12.refused-with-keys"})),
    CheckSpec("r12_admitted", ("R12", "R15"), "operator", updates=1, leaves="firmware-reset",
              decides=frozenset({"R12.admitted-without-keys", "R15.account-updates-blocked-device"})),
    CheckSpec("r13", ("R12", "R13", "R14", "R15"), "operator", updates=1, counts_left=True, leaves="firmware-reset",
              decides=R13_DECIDES, apdus=200),
    CheckSpec("r14", ("R14",), "operator", updates=1, leaves="firmware-reset",
              decides=frozenset({"R14.as-shipped", "R14.no-keys", "R14.new-identity", "R14.same-root"})),
    CheckSpec("r15_blocked", ("R15",), "operator",
              decides=frozenset({"R15.working-logs-in", "R15.user-blocked-refused", "R15.transport-refused"})),
    CheckSpec("r15_so_blocked", ("R15",), "operator", leaves="so-blocked", decides=frozenset({"R15.so-blocked-logs-in"})),
]  # fmt: skip
WITH_DECIDES = [c for c in CHECKS if c.id not in {"r12", "r13", "r14", "r15_blocked", "r15_so_blocked"}] + OPERATOR_TESTS
OPERATOR = PlanConsent(serial=True, irreversible=True, operator=True, user_pin=True, so_pin=True)
ALL_RULES = {f"R{n:02d}" for n in range(1, 22)}


def test_a_token_with_four_updates_used_gets_every_rule_in_two_updates():
    p = plan(OWNED.but(identity=4, so_blocked_updates=4), OPERATOR, WITH_DECIDES)
    assert p.rules_planned >= ALL_RULES
    assert p.firmware_updates == 2 and sum(s.so_blocked_updates for s in p.steps) == 1
    not_run = {n.check: n for n in p.not_run}
    for shared in ("r12_admitted", "r14", "r15_so_blocked"):  # their checks ride on R13's updates
        assert "decided by r13" in not_run[shared].why, not_run[shared]
    assert index(p, "r20") > index(p, "r13")  # the update R13 ends with gives R20 its uninitialized token
    assert_so_blocked_once_at_the_end(p)
    r15 = {c.check: c for c in p.checks if c.check.startswith("R15.")}
    assert r15["R15.uninitialized-refused"].test == "r13" and r15["R15.so-blocked-logs-in"].test == "r13"


def test_from_no_history_the_plan_says_what_r13_needs_and_max_updates_bounds_it():
    p = plan(OWNED, OPERATOR, WITH_DECIDES)
    r13 = next(s for s in p.steps if s.check == "r13")
    assert r13.firmware_updates == 6 and r13.so_blocked_updates == 5
    assert p.firmware_updates == 6  # R12's and R14's own updates are not needed on top
    bounded = plan(OWNED, PlanConsent(**{**OPERATOR.__dict__, "max_updates": 2}), WITH_DECIDES)
    assert bounded.firmware_updates <= 2
    miss = {n.check: n for n in bounded.not_run}["r13"]
    assert "needs 6 firmware updates (5 admitted only for a blocked SO-PIN)" in miss.why and miss.allowed_by == (NEED_MORE_UPDATES,)
    assert {c.check for c in bounded.unplaced} >= {"R13.five-admitted", "R13.sixth-refused"}
    assert all(NEED_MORE_UPDATES in c.allowed_by for c in bounded.unplaced if c.check.startswith("R13."))


def test_every_check_is_placed_or_says_why():
    from hsm_lifecycle.model.checks import CHECKS as CATALOG

    p = plan(OWNED.but(identity=4, so_blocked_updates=4), OPERATOR, WITH_DECIDES)
    scope = {r for c in WITH_DECIDES for r in c.rules}
    assert {c.check for c in p.checks} == {c.id for c in CATALOG if c.rule in scope}
    assert all(c.test is not None or c.why for c in p.checks)
    # Each check carries what its test run needs: start states, cost class, consent.
    five = next(c for c in p.checks if c.check == "R13.five-admitted")
    assert five.cost == "operator" and {NEED_OPERATOR, NEED_MORE_UPDATES} <= set(five.needs) and "initialized" in five.starts
    r20 = next(c for c in p.checks if c.check == "R20.pin-commands-refused")
    assert set(r20.starts) == {"shipped", "firmware-reset"} and r20.cost == "free"


def test_a_power_rig_is_a_capability_like_consent():
    rig = CheckSpec("r17", ("R17",), "tries", needs=frozenset({NEED_POWER_RIG}))
    without = plan(OWNED, FULL, [rig])
    assert not without.steps and without.not_run[0].allowed_by == (NEED_POWER_RIG,)
    assert all(c.allowed_by == (NEED_POWER_RIG,) for c in without.checks)
    with_rig = plan(OWNED, PlanConsent(**{**FULL.__dict__, "capabilities": frozenset({NEED_POWER_RIG})}), [rig])
    assert with_rig.order == ("r17",)
