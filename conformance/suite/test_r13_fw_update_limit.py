"""R13 fw-update-limit: updates admitted only because the SO-PIN is blocked are limited to 5 per
device, across the new identities each update brings: the sixth is refused while keys remain.
Without keys the update is still admitted (condition 1, R12) and does not count; that last
update also leaves a real token usable again (as shipped) rather than blocked for good."""

import pytest

from hsm_lifecycle.protocol import FIRMWARE_UPDATES_WHILE_SO_BLOCKED
from hsm_lifecycle.model.commands import Command as C


def block_so_pin(hsm):
    while hsm.state.so_tries:
        hsm.step(C.change_so_pin("wrong"))


@pytest.mark.rule("R13", "R12")
@pytest.mark.cost("operator")
@pytest.mark.walk(updates=6, counted=5, leaves="firmware-reset")
def test_r13_so_blocked_updates_limited_to_5(hsm):
    hsm.require_portal()
    for n in range(FIRMWARE_UPDATES_WHILE_SO_BLOCKED):
        hsm.provision(keys=1)
        block_so_pin(hsm)
        with hsm.checking("R13.five-admitted", "R12.admitted-when-so-blocked"):
            hsm.step(C.firmware_update())  # admitted although keys remain: the SO-PIN is blocked
    hsm.provision(keys=1)
    block_so_pin(hsm)
    with hsm.checking("R13.sixth-refused"):
        hsm.step(C.firmware_update())  # refused: keys remain and the 5 are used up
        hsm.steps(C.query_so(), C.verify_user("right"), C.sign())  # the refusal changed nothing
        hsm.check_keys()
    while hsm.state.keys:
        hsm.step(C.delete_key())
    with hsm.checking("R13.empty-not-counted"):
        hsm.steps(C.firmware_update(), C.query_so())  # no keys: admitted (condition 1), not counted
