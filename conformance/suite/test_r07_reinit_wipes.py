"""R07 reinit-wipes: INITIALIZE with the right SO-PIN erases every key and object, sets the new
user PIN and counter, and keeps the SO-PIN."""

import pytest

from hsm_lifecycle.model.commands import Command as C


@pytest.mark.rule("R07")
@pytest.mark.cost("wipes")
def test_r07_reinitialize_erases_keys_and_keeps_so_pin(hsm):
    hsm.provision(keys=2)
    hsm.check_keys()
    hsm.steps(C.initialize("right", retries=2), C.query_user())  # <= 3: see test_r04
    hsm.check_keys()
    hsm.check_objects_wiped()
    hsm.steps(C.verify_user("right"), C.sign())  # no key left to sign with
    hsm.steps(C.initialize("right"), C.query_so())  # the SO-PIN is still the one the suite knows
