"""R17 no-refund-on-tear: a power loss during a PIN check never gives the try back, because the
decrement is persistent before the outcome is known. On the emulator the power is cut the
instant the comparison has decided; on a real token there is no tear hook: observation only."""

import pytest

from hsm_lifecycle.model.commands import Command as C


def cut_when_compared(event):
    from hsm_lifecycle.emulator import PersistencePoint, PowerLoss

    if event.point == PersistencePoint.PIN_COMPARED:
        raise PowerLoss("power cut the instant the PIN comparison decided")


@pytest.mark.rule("R17")
@pytest.mark.cost("tries")
def test_r17_power_cut_after_comparison_keeps_the_try_spent(hsm):
    if hsm.target.emulated_token() is None:
        hsm.observed("not checked: a power cut in the middle of a PIN check needs the emulator's tear hook or a power-cut rig")
        return
    hsm.provision(min_retries=3)  # two user-PIN cuts below, and one try left after them
    for cmd in (C.verify_user("wrong"), C.change_user_pin("wrong"), C.change_so_pin("wrong"), C.reset_retry_counter("wrong", False)):
        hsm.step_with_power_cut(cmd, cut_when_compared)
        hsm.steps(C.power_cycle(), C.query_user(), C.query_so())
