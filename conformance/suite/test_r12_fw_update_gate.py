"""R12 fw-update-gate: a firmware update is admitted only if the token holds no keys or its
SO-PIN is blocked; a blocked user PIN does not stop it. On the emulator the simulated portal
does the update; on a real token a person does it in the portal (cost class operator)."""

import pytest

from hsm_lifecycle.model.commands import Command as C


@pytest.mark.rule("R12")
@pytest.mark.cost("operator")
@pytest.mark.walk(decides=("R12.refused-with-keys",))
def test_r12_update_refused_with_keys(hsm):
    hsm.require_portal()
    hsm.provision(keys=1)
    with hsm.checking("R12.refused-with-keys"):
        hsm.step(C.firmware_update())  # refused: "Smartcard-HSM contains keys. Please remove keys first"
        hsm.check_keys()  # and nothing changed


@pytest.mark.rule("R12", "R15")
@pytest.mark.cost("operator")
@pytest.mark.walk(updates=1, leaves="firmware-reset", decides=("R12.admitted-without-keys", "R15.account-updates-blocked-device"))
def test_r12_update_admitted_without_keys_with_user_pin_blocked(hsm):
    hsm.require_portal()
    hsm.provision()
    if hsm.state.keys:
        hsm.step(C.verify_user("right"))
        while hsm.state.keys:
            hsm.step(C.delete_key())
    while hsm.state.user_tries:
        hsm.step(C.verify_user("wrong"))  # a blocked user PIN must not matter
    # The portal session is another HSM's (the suite's own on the emulator, the operator's on a
    # token): its account updates this blocked one (R15's last sentence).
    with hsm.checking("R12.admitted-without-keys", "R15.account-updates-blocked-device"):
        hsm.steps(C.firmware_update(), C.query_so(), C.query_user())
