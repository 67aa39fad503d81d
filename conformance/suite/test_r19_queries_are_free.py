"""R19 queries-are-free: VERIFY 81/88 without data never change a counter or the session."""

import pytest

from hsm_lifecycle.model.commands import Command as C


@pytest.mark.rule("R19")
@pytest.mark.cost("free")
@pytest.mark.walk(presents="pin")
def test_r19_queries_change_nothing(hsm):
    hsm.provision(keys=1)
    hsm.steps(*[C.query_user(), C.query_so()] * 3)
    hsm.steps(C.verify_user("right"), C.query_user(), C.query_so(), C.query_user(), C.sign())
