"""R16 pin-formats: a user PIN of the wrong length is refused without spending a try (the SW is
the open behaviour wrong-length-pin-sw)."""

import pytest

from hsm_lifecycle.model.commands import Command as C


@pytest.mark.rule("R16")
@pytest.mark.cost("free")
def test_r16_wrong_length_pin_spends_nothing(hsm):
    hsm.provision()
    hsm.steps(C.query_user(), C.verify_user("wrong_length"), C.query_user(), C.verify_user("wrong_length"), C.query_user())
