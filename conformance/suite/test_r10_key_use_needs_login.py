"""R10 key-use-needs-login: sign, decipher, generate, delete and update need a verified user PIN
in the current card session; a warm reset, a power-off or a re-SELECT of the applet ends it."""

import pytest

from hsm_lifecycle.conformance import offalphabet as raw
from hsm_lifecycle.model.commands import Command as C

UNWRITTEN = 0xCF7E  # a data object nobody may create without the user PIN


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
    check = "R10.update-needs-login"
    raw.expect_sw(hsm, check, f"UPDATE BINARY {UNWRITTEN:04X} without login", raw.update_binary(UNWRITTEN, b"x"), raw.NOT_LOGGED_IN, "6982")
    hsm.check(UNWRITTEN not in raw.listed(hsm), f"{UNWRITTEN:04X} was created without login", check)


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
        hsm.reset_and_sign("warm", "R10.warm-reset-ends-session")
        hsm.steps(C.sign(), C.query_user())


@pytest.mark.rule("R10")
@pytest.mark.cost("tries")
def test_r10_no_decipher_without_login(hsm):
    hsm.provision()
    check = "R10.decipher-needs-login"
    hsm.step(C.verify_user("right"))
    present = hsm.mapper.key_ids() or set()
    key_id = next(i for i in range(1, 256) if i not in present)
    raw.expect_sw(hsm, check, f"GENERATE an RSA-2048 key {key_id:02X}", raw.rsa_gakp(key_id), lambda sw: sw == raw.OK, "9000")
    hsm.guard.note_generated(key_id)  # the suite's own key: deleted again below
    hsm.mapper.keys.append(key_id)
    hsm.state = hsm.state.but(keys=hsm.state.keys + 1)
    hsm.check_keys()  # the device lists it: the model follows what the device answered
    raw.expect_sw(hsm, check, "DECIPHER with the user PIN verified", raw.decipher_raw(key_id), lambda sw: sw == raw.OK, "9000")
    hsm.step(C.select())
    raw.expect_sw(hsm, check, "DECIPHER after re-SELECT (no login)", raw.decipher_raw(key_id), raw.NOT_LOGGED_IN, "6982")
    hsm.decided(check)
    hsm.steps(C.verify_user("right"), C.delete_key())
