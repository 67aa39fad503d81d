"""R03 so-block-permanent: at 0 SO tries nothing unblocks the SO-PIN; INITIALIZE and RESET RETRY
COUNTER are refused even with the right code; the user PIN and the keys keep working."""

import pytest

from hsm_lifecycle.model.commands import Command as C


@pytest.mark.rule("R03")
@pytest.mark.cost("irreversible")
@pytest.mark.walk(leaves="so-blocked")
def test_r03_blocked_so_pin_stays_blocked(hsm):
    hsm.provision(keys=1)
    while hsm.state.so_tries > 1:
        hsm.step(C.change_so_pin("wrong"))
    with hsm.checking("R03.blocked-at-zero"):
        hsm.steps(C.change_so_pin("wrong"), C.query_so(), C.power_cycle(), C.query_so())
    with hsm.checking("R03.init-refused"):
        hsm.steps(C.initialize("right"), C.query_so())
    with hsm.checking("R03.rrc-refused"):
        hsm.steps(C.reset_retry_counter("right", False), C.reset_retry_counter("right", True), C.query_so())
    with hsm.checking("R03.nothing-unblocks"):
        hsm.steps(C.change_so_pin("right"), C.power_cycle(), C.query_so())
    with hsm.checking("R03.user-pin-and-keys-work"):
        hsm.steps(C.verify_user("right"), C.sign(), C.generate_key(), C.sign())
        hsm.check_keys()
