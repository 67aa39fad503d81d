"""R17 no-refund-on-tear: a power loss during a PIN check never gives the try back, because the
decrement is persistent before the outcome is known. The power is cut the instant the
comparison has decided: on the in-process emulator by its tear hook; on a token reached over
PC/SC by a power-cut rig (--hsm-power-rig), which takes the token's power away in the middle of
the command. After power-on the free queries show whether the try stayed spent. Without a rig
on a token the checks are not run (the rule cannot pass)."""

import pytest

from hsm_lifecycle.conformance.power_rig import CutMoment
from hsm_lifecycle.model.commands import Command as C

CUTS = (
    ("R17.verify-user-tear", C.verify_user("wrong")),
    ("R17.change-user-tear", C.change_user_pin("wrong")),
    ("R17.change-so-tear", C.change_so_pin("wrong")),
    ("R17.rrc-tear", C.reset_retry_counter("wrong", False)),
)


@pytest.mark.rule("R17")
@pytest.mark.cost("tries")
@pytest.mark.needs_power_rig
def test_r17_power_cut_after_comparison_keeps_the_try_spent(hsm):
    hsm.require_power_cut()
    hsm.provision(min_retries=3)  # two user-PIN cuts below, and one try left after them
    for check, cmd in CUTS:
        with hsm.checking(check):
            hsm.step_with_power_cut(cmd, CutMoment.PIN_CHECK)
            hsm.steps(C.power_cycle(), C.query_user(), C.query_so())
