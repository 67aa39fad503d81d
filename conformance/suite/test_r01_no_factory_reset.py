"""R01 no-factory-reset: without the SO-PIN nothing brings an initialized token back to shipped,
re-initializes it or erases its keys; INITIALIZE with a wrong code changes only the SO counter."""

import pytest

from hsm_lifecycle.model.commands import Command as C


@pytest.mark.rule("R01")
@pytest.mark.cost("tries")
def test_r01_wrong_so_presentations_keep_token_and_keys(hsm):
    hsm.provision(keys=1)
    keys = hsm.state.keys
    # What an owner who lost the SO-PIN would try: wrong codes, power cycles, a wrong user PIN.
    hsm.steps(C.reset_retry_counter("wrong", True), C.change_so_pin("wrong"), C.power_cycle(), C.verify_user("wrong"))
    with hsm.checking("R01.wrong-so-keeps-initialized"):
        hsm.steps(C.query_so(), C.query_user(), C.verify_user("right"))
    with hsm.checking("R01.wrong-so-keeps-keys"):
        hsm.check_keys()
        hsm.step(C.sign())  # same user PIN, same key: nothing was reset
        hsm.check(hsm.key_count() == keys, f"ENUMERATE lists {hsm.key_count()} keys, {keys} before", "R01.wrong-so-keeps-keys")


@pytest.mark.rule("R01")
@pytest.mark.cost("tries")
def test_r01_initialize_with_wrong_code_is_refused(hsm):
    hsm.provision(keys=1)
    with hsm.checking("R01.wrong-init-refused"):
        hsm.step(C.initialize("wrong"))  # refused; how many SO tries it spent is R02's
    with hsm.checking("R01.wrong-init-changes-only-so"):
        hsm.step(C.query_user())
        hsm.check_keys()
        hsm.steps(C.verify_user("right"), C.sign())
