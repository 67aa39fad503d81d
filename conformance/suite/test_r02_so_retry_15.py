"""R02 so-retry-15: the SO counter starts at 15; every failed SO-PIN presentation (INITIALIZE,
RESET RETRY COUNTER, CHANGE REFERENCE DATA 88) spends exactly one try."""

import pytest

from hsm_lifecycle.model.commands import Command as C
from hsm_lifecycle.protocol import OPTION_RESET_RETRY_COUNTER


@pytest.mark.rule("R02")
@pytest.mark.cost("wipes")
@pytest.mark.walk(start="uninitialized", leaves="initialized")
def test_r02_counter_starts_at_15(hsm):
    hsm.fresh()
    hsm.step(C.initialize("right"))
    with hsm.checking("R02.starts-at-15"):
        hsm.step(C.query_so())


@pytest.mark.rule("R02")
@pytest.mark.cost("tries")
def test_r02_each_failed_presentation_spends_one(hsm):
    hsm.provision()
    with hsm.checking("R02.change-so-wrong-spends-one"):
        hsm.steps(C.change_so_pin("wrong"), C.query_so())
    if hsm.state.rrc_enabled:
        with hsm.checking("R02.rrc-wrong-spends-one"):
            hsm.steps(C.reset_retry_counter("wrong", False), C.query_so())
    with hsm.checking("R02.right-spends-none"):
        hsm.steps(C.change_so_pin("right"), C.query_so())  # the right code spends nothing


@pytest.mark.rule("R02")
@pytest.mark.cost("wipes")
def test_r02_initialize_and_refused_rrc_spend_as_stated(hsm):
    hsm.provision()
    with hsm.checking("R02.init-wrong-spends-one"):
        hsm.steps(C.initialize("wrong"), C.query_so())
    hsm.provision(options=0)
    with hsm.checking("R02.rrc-disabled-wrong-spends-per-profile"):
        hsm.steps(C.reset_retry_counter("wrong", False), C.query_so())  # 0 or 1 per open rrc-disabled
    hsm.provision(options=OPTION_RESET_RETRY_COUNTER)
    with hsm.checking("R02.rrc-wrong-spends-one"):
        hsm.steps(C.reset_retry_counter("wrong", False), C.query_so())
