"""R20 uninitialized-refuses: on a shipped token PIN and key commands answer 6A88 and change
nothing."""

import pytest

from hsm_lifecycle.model.commands import Command as C


@pytest.mark.rule("R20")
@pytest.mark.cost("free")
@pytest.mark.walk(start="uninitialized")
def test_r20_uninitialized_token_refuses_pin_and_key_commands(hsm):
    hsm.fresh()
    for cmd in (
        C.query_user(), C.query_so(), C.verify_user("right"), C.verify_user("wrong"), C.verify_user("wrong_length"),
        C.reset_retry_counter("right", True), C.change_user_pin("right"), C.change_so_pin("right"),
        C.generate_key(), C.sign(), C.delete_key(), C.query_user(), C.query_so(),
    ):  # fmt: skip
        hsm.step(cmd)
