"""R08 identity-survives-init: EF.C_DevAut (2F02) is byte-identical before and after every
INITIALIZE (the model keeps the identity generation)."""

import pytest

from hsm_lifecycle.model.commands import Command as C


@pytest.mark.rule("R08")
@pytest.mark.cost("wipes")
def test_r08_identity_unchanged_by_initialize(hsm):
    first = hsm.identity()
    generation = hsm.state.identity
    hsm.provision()
    hsm.steps(C.initialize("right"), C.initialize("right", retries=2))
    assert hsm.state.identity == generation
    hsm.check(hsm.identity() == first, "EF.C_DevAut changed across INITIALIZE", ("R08",))
