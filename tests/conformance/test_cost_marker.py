"""A step costlier than the test's cost-class marker stops the test: the marker is wrong."""

from __future__ import annotations

import pytest

from hsm_lifecycle.conformance.interlocks import Consent
from hsm_lifecycle.conformance.options import HsmOptions, TargetSpec
from hsm_lifecycle.conformance.admission import CostExceeded
from hsm_lifecycle.conformance.device import open_device
from hsm_lifecycle.conformance.session import prepare
from hsm_lifecycle.conformance.targets import make_target
from hsm_lifecycle.conformance.trace import TraceRecorder
from hsm_lifecycle.model.commands import Command
from hsm_lifecycle.model.cost import CostClass


def test_a_step_above_the_marker_names_both_classes() -> None:
    options = HsmOptions(
        target=TargetSpec("emulator"), serial=None, allow_irreversible=False, allow_operator=False, so_pin=None,
        pin=None, so_floor=5, evidence=None, faults=(), examples=1, steps=1,
    )  # fmt: skip
    consent = Consent(guarded=False, serial=None, allow_irreversible=False, allow_operator=False, so_floor=5, interactive=False)
    target = make_target(options, consent)
    prepare(target, TraceRecorder(), wiping_test_selected=True)
    assert target.profile is not None
    device = open_device(target, TraceRecorder(), target.profile, CostClass.FREE)
    with pytest.raises(CostExceeded, match=r"costs 'wipes' \(S06\), more than this test's marker 'free'"):
        device.step(Command.initialize("right", 1, 3))
