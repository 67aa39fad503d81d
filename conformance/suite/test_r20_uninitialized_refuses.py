"""R20 uninitialized-refuses: on a shipped token PIN and key commands answer 6A88 and change
nothing."""

import pytest

from hsm_lifecycle.model.commands import Command as C
from hsm_lifecycle.protocol import FID_C_DEVAUT, FID_DEVICE_KEY


@pytest.mark.rule("R20")
@pytest.mark.cost("free")
@pytest.mark.walk(start="uninitialized")
def test_r20_uninitialized_token_refuses_pin_and_key_commands(hsm):
    hsm.fresh()
    with hsm.checking("R20.pin-commands-refused"):
        hsm.steps(
            C.query_user(), C.query_so(), C.verify_user("right"), C.verify_user("wrong"), C.verify_user("wrong_length"),
            C.reset_retry_counter("right", True), C.reset_retry_counter("wrong", False), C.change_user_pin("right"),
            C.change_so_pin("right"), C.change_so_pin("wrong"),
        )  # fmt: skip
    with hsm.checking("R20.key-commands-refused"):
        hsm.steps(C.generate_key(), C.sign(), C.delete_key())
    with hsm.checking("R20.changes-nothing"):
        hsm.steps(C.query_user(), C.query_so())
        fids = set(hsm.read("enumerate objects", hsm.mapper.enumerate_objects) or ())
        extra = sorted(fids - {FID_DEVICE_KEY, FID_C_DEVAUT})
        hsm.check(not extra, f"a shipped token lists objects {', '.join(f'{f:04X}' for f in extra)}", "R20.changes-nothing")
