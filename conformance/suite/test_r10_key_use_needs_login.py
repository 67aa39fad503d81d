"""R10 key-use-needs-login: sign, decipher, generate, delete and update need a verified user PIN
in the current card session; a warm reset, a power-off or a re-SELECT of the applet ends it."""

import pytest

from hsm_lifecycle.model.commands import Command as C


@pytest.mark.rule("R10")
@pytest.mark.cost("free")
@pytest.mark.walk(presents="pin")
def test_r10_no_key_use_without_login(hsm):
    hsm.provision(own_key=True)  # DELETE is aimed at a key the suite made, never the owner's
    with hsm.checking("R10.sign-needs-login"):
        hsm.step(C.sign())
    with hsm.checking("R10.generate-needs-login"):
        hsm.step(C.generate_key())
    with hsm.checking("R10.delete-needs-login"):
        hsm.step(C.delete_key())
        hsm.check_keys()


@pytest.mark.rule("R10")
@pytest.mark.cost("wipes")
def test_r10_no_update_without_login(hsm):
    hsm.provision()
    with hsm.checking("R10.update-needs-login"):
        # Refused without login; and not written anyway: after VERIFY 81 the read answers what the
        # model holds (6A82 unless an earlier test on this token wrote the object).
        hsm.steps(C.write_data(), C.verify_user("right"), C.read_protected())
        hsm.steps(C.warm_reset(), C.write_data(), C.verify_user("right"), C.read_protected())


@pytest.mark.rule("R10")
@pytest.mark.cost("free")
@pytest.mark.walk(presents="pin")
def test_r10_reselect_reset_and_power_off_end_the_session(hsm):
    hsm.provision(keys=1)
    with hsm.checking("R10.reselect-ends-session"):
        hsm.steps(C.verify_user("right"), C.sign(), C.select(), C.sign(), C.query_user())
    with hsm.checking("R10.power-off-ends-session"):
        hsm.steps(C.verify_user("right"), C.power_cycle(), C.sign(), C.query_user())
        hsm.steps(C.verify_user("right"), C.sign())
        hsm.reset_and_sign("power", "R10.power-off-ends-session")
    with hsm.checking("R10.warm-reset-ends-session"):
        hsm.steps(C.verify_user("right"), C.sign())
        hsm.reset_and_sign("warm", "R10.warm-reset-ends-session")  # SIGN before the re-SELECT
        hsm.steps(C.verify_user("right"), C.sign(), C.warm_reset(), C.sign(), C.query_user())


@pytest.mark.rule("R10")
@pytest.mark.cost("tries")
def test_r10_no_decipher_without_login(hsm):
    hsm.provision(own_key=True)  # ECDH (DECIPHER, algorithm 80) with a key the suite made
    with hsm.checking("R10.decipher-needs-login"):
        hsm.steps(C.decipher(), C.verify_user("right"), C.decipher())
        hsm.steps(C.select(), C.decipher(), C.verify_user("right"), C.warm_reset(), C.decipher())
