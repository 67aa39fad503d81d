"""retries-by-pin-length on a device: the suite judges INITIALIZE against the cap for the PIN
it really sends (the mapper's), on an emulator that enforces the cap."""

from __future__ import annotations

import pytest

from hsm_lifecycle.conformance.interlocks import Consent
from hsm_lifecycle.model.cost import CostClass
from hsm_lifecycle.conformance.options import HsmOptions, TargetSpec
from hsm_lifecycle.conformance.device import open_device
from hsm_lifecycle.conformance.session import prepare
from hsm_lifecycle.conformance.targets import make_target
from hsm_lifecycle.conformance.trace import TraceRecorder
from hsm_lifecycle.model.commands import Command


def capped_device(pin: bytes | None):
    spec = TargetSpec("emulator")
    options = HsmOptions(
        target=spec, serial=None, allow_irreversible=False, allow_operator=False, so_pin=None, pin=pin,
        so_floor=5, evidence=None, faults=(), examples=1, steps=1,
        emulator_profile=(("retries_by_pin_length", "true"),),
    )  # fmt: skip
    consent = Consent(guarded=False, serial=None, allow_irreversible=False, allow_operator=False, so_floor=5, interactive=False)
    target = make_target(options, consent)
    prepare(target, TraceRecorder(), wiping_test_selected=True)
    # Observed with the PIN in use (8 characters and more have no cap to probe).
    assert target.observations["retries-by-pin-length"].startswith("true" if len(pin or b"648219") < 8 else "not observed")
    return open_device(target, TraceRecorder(), target.profile, CostClass.WIPES)


@pytest.mark.parametrize("pin, retries, accepted", [(None, 3, True), (None, 5, False), (b"1234567", 5, True), (b"12345678", 10, True), (b"1234567", 6, False)])
def test_initialize_is_judged_by_the_cap_of_the_pin_sent(pin, retries, accepted):
    device = capped_device(pin)
    output = device.step(Command.initialize("right", 1, retries))  # judged: fails if the model disagrees
    assert (output == "9000") == accepted
    assert device.state.is_initialized == accepted
