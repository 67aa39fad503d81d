"""R09 so-cannot-use-keys: presenting the SO-PIN (VERIFY 88, RESET RETRY COUNTER, CHANGE 88)
never authorizes key generation, signing, deletion or a PIN-protected read; only the user PIN does."""

import pytest

from hsm_lifecycle.conformance import offalphabet as raw
from hsm_lifecycle.protocol import OPTION_RESET_RETRY_COUNTER
from hsm_lifecycle.model.commands import Command as C

PROTECTED = 0xCD02  # a PIN-protected data object the suite writes and deletes again


@pytest.mark.rule("R09")
@pytest.mark.cost("tries")
def test_r09_so_pin_opens_no_key_use(hsm):
    hsm.provision(options=OPTION_RESET_RETRY_COUNTER, own_key=True)
    # VERIFY 88 with data is not in the model's alphabet: its answer is recorded, not judged;
    # what it must not do (open key use) is judged by the steps after it.
    if hsm.present_so_pin_with_verify():
        with hsm.checking("R09.verify-so-opens-nothing"):
            hsm.steps(C.generate_key(), C.sign(), C.delete_key())
    with hsm.checking("R09.rrc-opens-nothing"):
        hsm.steps(C.reset_retry_counter("right", False), C.generate_key(), C.sign(), C.delete_key())
    with hsm.checking("R09.change-so-opens-nothing"):
        hsm.steps(C.change_so_pin("right"), C.generate_key(), C.sign(), C.delete_key())
    hsm.check_keys()


@pytest.mark.rule("R09")
@pytest.mark.cost("wipes")
def test_r09_so_pin_opens_no_protected_read(hsm):
    hsm.provision(options=OPTION_RESET_RETRY_COUNTER)
    check = "R09.protected-read-refused"
    hsm.step(C.verify_user("right"))
    raw.write_objects(hsm, {PROTECTED: b"only for the user"}, check)
    hsm.steps(C.select(), C.reset_retry_counter("right", False), C.change_so_pin("right"))
    raw.expect_sw(hsm, check, f"READ BINARY {PROTECTED:04X} after the SO-PIN", raw.read_binary(PROTECTED), raw.NOT_LOGGED_IN, "6982")
    hsm.step(C.verify_user("right"))
    rsp = raw.expect_sw(hsm, check, f"READ BINARY {PROTECTED:04X} after VERIFY 81", raw.read_binary(PROTECTED), raw.READ_OK, "9000 or 6282")
    hsm.check(rsp.data == b"only for the user", f"READ BINARY {PROTECTED:04X} returned {rsp.data.hex()}", check)
    raw.expect_sw(hsm, check, f"DELETE FILE {PROTECTED:04X}", raw.delete_file(PROTECTED), lambda sw: sw == raw.OK, "9000")
