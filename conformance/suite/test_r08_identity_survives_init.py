"""R08 identity-survives-init: the device key CC00 and EF.C_DevAut (2F02) are the same before
and after every INITIALIZE. 2F02 is compared byte for byte; CC00's private half is never
readable, so it is compared through what it does: after INITIALIZE it still signs a fresh
challenge that verifies under the public key of the device certificate read before."""

import pytest

from hsm_lifecycle.model.commands import Command as C


@pytest.mark.rule("R08")
@pytest.mark.cost("wipes")
def test_r08_identity_unchanged_by_initialize(hsm):
    first = hsm.identity()
    hsm.issuer_root(first, ("R08.device-key-unchanged",))  # CC00 is compared under a known root's chain
    hsm.provision()
    with hsm.checking("R08.device-key-unchanged"):
        # device_sign: SIGN with CC00 must verify under the device key of the 2F02 the mapper read
        # at the first one, before the INITIALIZEs.
        hsm.steps(C.verify_user("right"), C.device_sign())
        hsm.steps(C.initialize("right"), C.initialize("right", retries=2))
        hsm.check(hsm.identity() == first, "EF.C_DevAut changed across INITIALIZE", "R08.c-devaut-unchanged")
        hsm.steps(C.verify_user("right"), C.device_sign())
