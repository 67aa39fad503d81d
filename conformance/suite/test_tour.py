"""The transition tour: every model transition this target allows, at least once, deterministic.

On the emulator every transition but the portal's is taken (segments restart on a fresh token
when the SO-PIN is blocked). On a real token the tour starts from the token's state and takes only
what the consent allows (cost class, SO floor, no INITIALIZE without --hsm-serial); the record
lists what it took and the test prints what it left out and why.
"""

import pytest

from hsm_lifecycle.model.cost import CostClass
from hsm_lifecycle.conformance.tour import limits_for, plan_tour


@pytest.mark.cost("tries")
def test_transition_tour(hsm_run, record_property):
    device = hsm_run.open_device(keep_trace=True)
    limits = limits_for(device)
    plan = plan_tour(device.profile, device.state, limits)
    declared = CostClass.parse(limits.max_cost)
    for index, segment in enumerate(plan.segments):
        if index:
            device = hsm_run.open_device(keep_trace=True)
            device.fresh()
        device.declared = declared
        for cmd in segment:
            device.step(cmd)
    record_property("tour-transitions", len(plan.covered))
    record_property("tour-steps", plan.steps)
    record_property("tour-apdus", hsm_run.apdus)
    left_out = "; ".join(f"{tid}: {why}" for tid, why in sorted(plan.left_out.items()))
    print(
        f"tour: {len(plan.covered)} transitions in {len(plan.segments)} segments, {plan.steps} steps, "
        f"{hsm_run.apdus} APDUs; left out: {left_out}"
    )
