"""R09 so-cannot-use-keys: presenting the SO-PIN (VERIFY 88, RESET RETRY COUNTER, CHANGE 88)
never authorizes key generation, signing, deletion or a PIN-protected read; only the user PIN does."""

import pytest

from hsm_lifecycle.protocol import OPTION_RESET_RETRY_COUNTER
from hsm_lifecycle.model.commands import Command as C


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
    with hsm.checking("R09.protected-read-refused"):
        hsm.steps(C.verify_user("right"), C.write_data(), C.read_protected())
        hsm.steps(C.select(), C.reset_retry_counter("right", False), C.read_protected())
        hsm.steps(C.change_so_pin("right"), C.read_protected())
        hsm.steps(C.verify_user("right"), C.read_protected())
