"""R14 fw-update-new-identity: after an update the token is as shipped (no SO-PIN, no user PIN,
no keys) and has a new identity: a new EF.C_DevAut whose chain verifies to the same root."""

import pytest

from hsm_lifecycle.conformance.renewal import check_renewed
from hsm_lifecycle.model.commands import Command as C


@pytest.mark.rule("R14")
@pytest.mark.cost("operator")
@pytest.mark.walk(updates=1, leaves="firmware-reset", decides=("R14.as-shipped", "R14.no-keys", "R14.new-identity", "R14.same-root"))
def test_r14_update_gives_new_identity(hsm):
    hsm.require_portal()
    hsm.provision()
    if hsm.state.keys:  # a used token: the update needs it empty (R12)
        hsm.step(C.verify_user("right"))
        while hsm.state.keys:
            hsm.step(C.delete_key())
    before = hsm.identity()
    hsm.step(C.firmware_update())
    check_renewed(hsm, before)
