"""R03 so-block-permanent: at 0 SO tries nothing unblocks the SO-PIN; INITIALIZE and RESET RETRY
COUNTER are refused even with the right code; the user PIN and the keys keep working."""

import pytest

from hsm_lifecycle.model.commands import Command as C


@pytest.mark.rule("R03")
@pytest.mark.cost("irreversible")
@pytest.mark.walk(leaves="so-blocked")
def test_r03_blocked_so_pin_stays_blocked(hsm):
    hsm.provision(keys=1)
    while hsm.state.so_tries:
        hsm.step(C.change_so_pin("wrong"))
    hsm.steps(C.query_so(), C.initialize("right"), C.reset_retry_counter("right", False))
    hsm.steps(C.reset_retry_counter("right", True), C.change_so_pin("right"), C.power_cycle(), C.query_so())
    # The user PIN and the keys still work.
    hsm.steps(C.verify_user("right"), C.sign(), C.generate_key(), C.sign())
    hsm.check_keys()
