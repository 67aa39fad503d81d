"""R02 so-retry-15: the SO counter starts at 15; every failed SO-PIN presentation (INITIALIZE,
RESET RETRY COUNTER, CHANGE REFERENCE DATA 88) spends exactly one try."""

import pytest

from hsm_lifecycle.model.commands import Command as C


@pytest.mark.rule("R02")
@pytest.mark.cost("wipes")
@pytest.mark.walk(start="uninitialized", leaves="initialized")
def test_r02_counter_starts_at_15(hsm):
    hsm.fresh()
    hsm.steps(C.initialize("right"), C.query_so())


@pytest.mark.rule("R02")
@pytest.mark.cost("tries")
def test_r02_each_failed_presentation_spends_one(hsm):
    hsm.provision()
    hsm.steps(C.change_so_pin("wrong"), C.query_so())
    hsm.steps(C.reset_retry_counter("wrong", False), C.query_so())
    if hsm.may_initialize():
        hsm.steps(C.initialize("wrong"), C.query_so())
    hsm.steps(C.change_so_pin("right"), C.query_so())  # the right code spends nothing
