"""R07 reinit-wipes: INITIALIZE with the right SO-PIN erases every key, certificate and data
object, sets the new user PIN and counter, and keeps the SO-PIN."""

import pytest

from hsm_lifecycle.conformance import offalphabet as raw
from hsm_lifecycle.model.commands import Command as C

# A certificate, a readable and a PIN-protected data object the suite writes before INITIALIZE.
OBJECTS = {0xCE01: b"\x30\x03\x02\x01\x07", 0xCF01: b"suite data object", 0xCD01: b"suite protected data object"}


@pytest.mark.rule("R07")
@pytest.mark.cost("wipes")
def test_r07_reinitialize_erases_keys_and_keeps_so_pin(hsm):
    hsm.provision(keys=2)
    hsm.check_keys()
    with hsm.checking("R07.counter-set"):
        hsm.steps(C.initialize("right", retries=2), C.query_user())  # <= 3: see test_r04
    with hsm.checking("R07.keys-erased"):
        hsm.check_keys()
        hsm.check_objects_wiped()
        hsm.steps(C.verify_user("right"), C.sign())  # no key left to sign with
    with hsm.checking("R07.so-pin-kept"):
        hsm.steps(C.initialize("right"), C.query_so())  # the SO-PIN is still the one the suite knows


@pytest.mark.rule("R07")
@pytest.mark.cost("wipes")
def test_r07_reinitialize_erases_certificates_and_data_objects(hsm):
    hsm.provision()
    hsm.step(C.verify_user("right"))
    # Certificates are outside the model's alphabet: written and checked with raw APDUs.
    raw.write_objects(hsm, {0xCE01: OBJECTS[0xCE01], 0xCF01: OBJECTS[0xCF01]}, "R07.certificates-erased")
    with hsm.checking("R07.data-objects-erased"):
        hsm.steps(C.write_data(), C.read_protected())  # the suite's PIN-protected object, read back
        hsm.step(C.initialize("right"))
        hsm.steps(C.verify_user("right"), C.read_protected())  # 6A82: gone, not hidden by a closed session
    raw.check_erased(hsm, [0xCE01], "R07.certificates-erased")
    raw.check_erased(hsm, [0xCF01], "R07.data-objects-erased")


@pytest.mark.rule("R07")
@pytest.mark.cost("wipes")
def test_r07_reinitialize_sets_a_new_user_pin(hsm):
    hsm.provision()
    hsm.step(C.change_user_pin("right"))  # the token's PIN is now the suite's second one ...
    stale = hsm.mapper.pins.user_pin
    with hsm.checking("R07.new-user-pin-set"):
        hsm.step(C.initialize("right"))  # ... and INITIALIZE sets the first one
        hsm.present_stale_user_pin(stale)  # refused: one try spent
        hsm.steps(C.query_user(), C.verify_user("right"), C.select(), C.query_user())
