"""R06 unblock-needs-option: RESET RETRY COUNTER works only if option 0x0001 was set at
INITIALIZE; without it the command is refused. A wrong SO-PIN in it spends an SO try."""

import pytest

from hsm_lifecycle.protocol import OPTION_RESET_RETRY_COUNTER
from hsm_lifecycle.model.commands import Command as C


@pytest.mark.rule("R06")
@pytest.mark.cost("tries")
def test_r06_refused_without_option(hsm):
    hsm.provision(options=0)
    hsm.step(C.verify_user("wrong"))
    with hsm.checking("R06.refused-without-option"):
        hsm.steps(C.reset_retry_counter("right", False), C.query_user())
        hsm.steps(C.reset_retry_counter("right", True), C.query_user())
        hsm.steps(C.verify_user("right"), C.select(), C.query_user())  # the old PIN still works


@pytest.mark.rule("R06")
@pytest.mark.cost("tries")
def test_r06_works_with_option(hsm):
    hsm.provision(options=OPTION_RESET_RETRY_COUNTER, min_retries=2)
    hsm.steps(C.verify_user("wrong"), C.query_user())
    with hsm.checking("R06.wrong-so-spends-one"):
        hsm.steps(C.reset_retry_counter("wrong", False), C.query_so(), C.query_user())
    with hsm.checking("R06.resets-with-option"):
        hsm.steps(C.reset_retry_counter("right", False), C.query_user())
    with hsm.checking("R06.new-pin-with-option"):
        hsm.steps(C.verify_user("wrong"), C.reset_retry_counter("right", True), C.query_user())
        hsm.steps(C.verify_user("right"), C.select(), C.query_user())  # the new PIN works
