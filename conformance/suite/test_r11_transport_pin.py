"""R11 transport-pin: with option 0x0002 the user PIN answers 6984 and key use is refused until
the PIN is changed with CHANGE REFERENCE DATA 81."""

import pytest

from hsm_lifecycle.protocol import OPTION_RESET_RETRY_COUNTER, OPTION_TRANSPORT_PIN
from hsm_lifecycle.model.commands import Command as C


@pytest.mark.rule("R11")
@pytest.mark.cost("wipes")
def test_r11_transport_pin_until_changed(hsm):
    hsm.provision(options=OPTION_TRANSPORT_PIN | OPTION_RESET_RETRY_COUNTER)
    with hsm.checking("R11.pin-answers-6984"):
        hsm.steps(C.query_user(), C.verify_user("right"), C.verify_user("wrong"), C.query_user())
    with hsm.checking("R11.key-use-refused"):
        hsm.steps(C.generate_key(), C.sign())
    with hsm.checking("R11.change-ends-transport"):
        hsm.steps(C.change_user_pin("right"), C.query_user())  # the session after it: open auth-after-change
        hsm.steps(C.select(), C.verify_user("right"), C.generate_key(), C.sign())
