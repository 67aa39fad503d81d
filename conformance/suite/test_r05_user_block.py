"""R05 user-block: at 0 user tries even the right PIN is refused (6983) and no private-key
operation is possible. Reversible here: the token is unblocked with the SO-PIN (option 0x0001)."""

import pytest

from hsm_lifecycle.protocol import OPTION_RESET_RETRY_COUNTER
from hsm_lifecycle.model.commands import Command as C


@pytest.mark.rule("R05")
@pytest.mark.cost("tries")
def test_r05_blocked_user_pin_refuses_right_pin_and_keys(hsm):
    hsm.provision(options=OPTION_RESET_RETRY_COUNTER, keys=1)
    while hsm.state.user_tries:
        hsm.step(C.verify_user("wrong"))  # the last one: open behaviour last-wrong-try-sw
    with hsm.checking("R05.right-pin-refused"):
        hsm.steps(C.query_user(), C.verify_user("right"), C.change_user_pin("right"), C.query_user())
    with hsm.checking("R05.no-key-use"):
        hsm.steps(C.sign(), C.generate_key(), C.power_cycle(), C.verify_user("right"), C.sign(), C.generate_key())
    # Unblock with the SO-PIN, then the key works again (R06's business, not judged here).
    hsm.steps(C.reset_retry_counter("right", False), C.query_user(), C.verify_user("right"), C.sign())
