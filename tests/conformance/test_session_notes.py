"""What the bundle says about the device and the run's cost at its end: the applet version
(also when the run stops while opening the token) and the SO tries left, which only a
persistent device has."""

from __future__ import annotations

import re
from pathlib import Path

from hsm_lifecycle.emulator import VirtualToken
from hsm_lifecycle.protocol import DEFAULT_VERSION
from test_interlocks import as_real, own_token

VERSION = "{}.{}".format(*DEFAULT_VERSION)


def test_target_names_the_applet_version(run_suite):
    run = run_suite(select="r18")
    assert run.rc == 0, run.output
    assert run.summary["target"]["version"] == VERSION


def test_a_run_stopped_by_a_serial_mismatch_still_names_the_device(run_suite, tmp_path: Path):
    path, serial = own_token(tmp_path / "token.json")
    run = run_suite(*as_real(path, "--hsm-serial", "DENK0000000"), select="r18")
    assert run.rc == 3, run.output
    target = run.summary["target"]
    assert (target["serial"], target["version"], target["kind"]) == (serial, VERSION, "pcsc")
    report = (run.evidence / "report.html").read_text()
    assert "Device version unknown" not in re.sub(r"<[^>]+>", " ", report).replace("  ", " ")


def test_in_process_emulator_has_no_so_tries_left_at_the_end(run_suite):
    run = run_suite(select="r01_wrong or r02_each")  # tests that spend SO tries
    assert run.rc == 0, run.output
    assert run.summary["cost"]["so_tries_left_end"] is None
    assert "n/a (fresh token per test)" in (run.evidence / "report.html").read_text()


def _spend_so_tries(path: Path, n: int) -> None:
    """The owner presents a wrong SO-PIN `n` times before the run."""
    token = VirtualToken.open(path)
    token.power_on()
    token.transmit(bytes.fromhex("00A404000BE82B0601040181C31F020100"))
    for _ in range(n):
        token.transmit(bytes.fromhex("0024008810" + "00" * 8 + "3132333435363738"))
    token.power_off()


def test_persistent_device_reports_the_so_tries_it_has_at_the_end(run_suite, tmp_path: Path):
    path, _ = own_token(tmp_path / "token.json")
    _spend_so_tries(path, 2)
    # No SO-PIN given: nothing in the run can restore the counter.
    run = run_suite("--hsm-emulator-as-real", "--hsm-emulator-state", str(path), select="r18 or r19")
    assert run.rc == 0, run.output
    assert run.summary["cost"]["so_tries_left_end"] == 13
    end = list((run.evidence / "traces").glob("session-custody*.jsonl"))  # the custody reads them
    assert end and "00200088" in end[0].read_text()


def test_so_tries_at_the_end_are_asked_of_the_device_not_the_model(tmp_path: Path):
    from hsm_lifecycle.conformance.interlocks import Consent
    from hsm_lifecycle.conformance.options import HsmOptions, TargetSpec
    from hsm_lifecycle.conformance.session import read_so_tries
    from hsm_lifecycle.conformance.targets import AsRealTarget
    from hsm_lifecycle.conformance.trace import TraceRecorder
    from hsm_lifecycle.model.states import ExtState

    path, _ = own_token(tmp_path / "token.json")
    _spend_so_tries(path, 3)
    spec = TargetSpec("emulator", None, as_real=True)
    options = HsmOptions(
        target=spec, serial=None, allow_irreversible=False, allow_operator=False, so_pin=None, pin=None,
        so_floor=5, evidence=None, faults=(), examples=1, steps=1, emulator_state=str(path),
    )  # fmt: skip
    consent = Consent(guarded=True, serial=None, allow_irreversible=False, allow_operator=False, so_floor=5, interactive=False)
    target = AsRealTarget(spec, options, consent)
    target.twin = ExtState.initialized(keys=1)  # the model believes 15
    assert read_so_tries(target, TraceRecorder()) == 12
