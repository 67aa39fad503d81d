"""R19 queries-are-free: VERIFY 81/88 without data never change a counter or the session."""

import pytest

from hsm_lifecycle.model.commands import Command as C


@pytest.mark.rule("R19")
@pytest.mark.cost("free")
@pytest.mark.walk(presents="pin")
def test_r19_queries_change_nothing(hsm):
    hsm.provision(keys=1)
    with hsm.checking("R19.query-user-free"):
        hsm.steps(*[C.query_user()] * 4)
    with hsm.checking("R19.query-so-free"):
        hsm.steps(*[C.query_so()] * 4, C.query_user())
    with hsm.checking("R19.query-keeps-session"):
        hsm.steps(C.verify_user("right"), C.query_user(), C.query_so(), C.query_user(), C.sign())
