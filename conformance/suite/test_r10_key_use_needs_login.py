"""R10 key-use-needs-login: sign, generate and delete need a verified user PIN in the current
card session; a power-off or a re-SELECT of the applet ends that session."""

import pytest

from hsm_lifecycle.model.commands import Command as C


@pytest.mark.rule("R10")
@pytest.mark.cost("free")
@pytest.mark.walk(presents="pin")
def test_r10_no_key_use_without_login(hsm):
    hsm.provision(own_key=True)  # DELETE is aimed at a key the suite made, never the owner's
    hsm.steps(C.sign(), C.generate_key(), C.delete_key())
    hsm.check_keys()


@pytest.mark.rule("R10")
@pytest.mark.cost("free")
@pytest.mark.walk(presents="pin")
def test_r10_reselect_and_power_off_end_the_session(hsm):
    hsm.provision(keys=1)
    hsm.steps(C.verify_user("right"), C.sign(), C.select(), C.sign(), C.query_user())
    hsm.steps(C.verify_user("right"), C.power_cycle(), C.sign(), C.query_user())
