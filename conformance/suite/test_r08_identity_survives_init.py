"""R08 identity-survives-init: the device key CC00 and EF.C_DevAut (2F02) are the same before
and after every INITIALIZE. 2F02 is compared byte for byte; CC00's private half is never
readable, so it is compared through what it does: after INITIALIZE it still signs a fresh
challenge that verifies under the public key of the device certificate read before."""

import pytest

from hsm_lifecycle.conformance import offalphabet as raw
from hsm_lifecycle.conformance import probes
from hsm_lifecycle.model.commands import Command as C


@pytest.mark.rule("R08")
@pytest.mark.cost("wipes")
def test_r08_identity_unchanged_by_initialize(hsm):
    first = hsm.identity()
    device_key = probes.device_public_key(hsm, first, ("R08.device-key-unchanged",))
    hsm.provision()
    hsm.steps(C.initialize("right"), C.initialize("right", retries=2))
    hsm.check(hsm.identity() == first, "EF.C_DevAut changed across INITIALIZE", "R08.c-devaut-unchanged")
    hsm.step(C.verify_user("right"))
    raw.device_key_signs(hsm, device_key, "R08.device-key-unchanged")
