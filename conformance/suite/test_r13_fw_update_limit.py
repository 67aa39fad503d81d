"""R13 fw-update-limit: updates admitted only because the SO-PIN is blocked are limited to 5 per
device, across the new identities each update brings: the sixth is refused while keys remain.
Without keys the update is still admitted (condition 1, R12) and does not count; that last
update also leaves a real token usable again (as shipped) rather than blocked for good.

A token with an update history has used some of its 5 already: the count the portal shows (a
free query, read into the start state) says how many, and the test makes only the ones left.
The updates it makes anyway also decide what R12, R14 and R15 say about updates and portal
logins, so a campaign short of updates spends no other one on them."""

import pytest

from hsm_lifecycle.conformance.renewal import check_renewed
from hsm_lifecycle.model.commands import Command as C
from hsm_lifecycle.protocol import FIRMWARE_UPDATES_WHILE_SO_BLOCKED

DECIDES = (
    "R13.five-admitted", "R13.sixth-refused", "R13.empty-not-counted",
    "R12.admitted-when-so-blocked", "R12.admitted-without-keys",
    "R15.so-blocked-logs-in", "R15.uninitialized-refused", "R15.account-updates-blocked-device",
    "R14.as-shipped", "R14.no-keys", "R14.new-identity", "R14.same-root",
)  # fmt: skip


def block_so_pin(hsm):
    while hsm.state.so_tries:
        hsm.step(C.change_so_pin("wrong"))


@pytest.mark.rule("R13", "R12", "R14", "R15")
@pytest.mark.cost("operator")
@pytest.mark.walk(updates=1, counted="left", leaves="firmware-reset", decides=DECIDES)
def test_r13_so_blocked_updates_limited_to_5(hsm):
    hsm.require_portal()
    left = FIRMWARE_UPDATES_WHILE_SO_BLOCKED - hsm.state.so_blocked_updates
    for n in range(left):
        hsm.provision(keys=1)
        block_so_pin(hsm)
        if n == 0:
            with hsm.checking("R15.so-blocked-logs-in"):
                hsm.steps(C.portal_login(), C.query_user())  # a blocked SO-PIN does not stop the login
        with hsm.checking("R13.five-admitted", "R12.admitted-when-so-blocked"):
            hsm.step(C.firmware_update())  # admitted although keys remain: the SO-PIN is blocked
        if n == 0:
            with hsm.checking("R15.uninitialized-refused"):
                hsm.step(C.portal_login())  # as shipped: no user PIN to authenticate with
    hsm.provision(keys=1)
    block_so_pin(hsm)
    with hsm.checking("R13.sixth-refused"):
        hsm.step(C.firmware_update())  # refused: keys remain and the 5 are used up
        hsm.steps(C.query_so(), C.verify_user("right"), C.sign())  # the refusal changed nothing
        hsm.check_keys()
    while hsm.state.keys:
        hsm.step(C.delete_key())
    while hsm.state.user_tries:
        hsm.step(C.verify_user("wrong"))  # a blocked user PIN does not stop it either (R12)
    before = hsm.identity()
    # The portal session is another HSM's: its account updates this blocked one (R15).
    with hsm.checking("R13.empty-not-counted", "R12.admitted-without-keys", "R15.account-updates-blocked-device"):
        hsm.steps(C.firmware_update(), C.query_so())  # no keys: admitted (condition 1), not counted
    check_renewed(hsm, before)
