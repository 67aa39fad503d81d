"""R17 no-refund-on-tear: a power loss during a PIN check never gives the try back, because the
decrement is persistent before the outcome is known. On the emulator the power is cut the
instant the comparison has decided; a real token offers no tear hook, so the checks stay
not-run there (a power-cut rig is needed) and the rule cannot pass."""

import pytest

from hsm_lifecycle.model.commands import Command as C

CUTS = (
    ("R17.verify-user-tear", C.verify_user("wrong")),
    ("R17.change-user-tear", C.change_user_pin("wrong")),
    ("R17.change-so-tear", C.change_so_pin("wrong")),
    ("R17.rrc-tear", C.reset_retry_counter("wrong", False)),
)


def cut_when_compared(event):
    from hsm_lifecycle.emulator import PersistencePoint, PowerLoss

    if event.point == PersistencePoint.PIN_COMPARED:
        raise PowerLoss("power cut the instant the PIN comparison decided")


@pytest.mark.rule("R17")
@pytest.mark.cost("tries")
@pytest.mark.needs_power_rig
def test_r17_power_cut_after_comparison_keeps_the_try_spent(hsm):
    if hsm.target.emulated_token() is None:
        pytest.skip("a power cut in the middle of a PIN check needs the emulator's tear hook or a power-cut rig")
    hsm.provision(min_retries=3)  # two user-PIN cuts below, and one try left after them
    for check, cmd in CUTS:
        with hsm.checking(check):
            hsm.step_with_power_cut(cmd, cut_when_compared)
            hsm.steps(C.power_cycle(), C.query_user(), C.query_so())
