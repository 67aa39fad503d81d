"""Status words are named wherever a person reads them, from the one SW enum (protocol.SW)."""

from __future__ import annotations

import pytest

from hsm_lifecycle.conformance.cli import main as cli
from hsm_lifecycle.conformance.interlocks import Consent
from hsm_lifecycle.conformance.options import HsmOptions, TargetSpec
from hsm_lifecycle.conformance.device import open_device
from hsm_lifecycle.conformance.session import prepare
from hsm_lifecycle.conformance.targets import make_target
from hsm_lifecycle.conformance.verdict import ConformanceFailure
from hsm_lifecycle.conformance.trace import TraceRecorder
from hsm_lifecycle.emulator.apdu import ApduError
from hsm_lifecycle.model.commands import Command
from hsm_lifecycle.model.cost import CostClass
from hsm_lifecycle.protocol import SW, describe_sw, sw_from_hex, sw_name

from test_trace_and_replay import TRACES


@pytest.mark.parametrize(
    "sw, shown",
    [
        (0x6982, "6982 security status not satisfied"),
        (0x9000, "9000 OK"),
        (0x6A86, "6A86 incorrect P1P2"),
        (0x63C2, "63C2 PIN not verified or wrong, 2 tries left"),
        (0x63C1, "63C1 PIN not verified or wrong, 1 try left"),
        (0x6110, "6110 16 more bytes waiting (GET RESPONSE)"),
        (0x6C08, "6C08 wrong Le, 8 bytes available"),
        (0x6A89, "6A89 wrong parameters P1-P2"),  # no name here: the ISO 7816-4 class
        (0x6400, "6400 execution error, state unchanged"),
        (0x1234, "1234 not an ISO 7816-4 status word"),
        ("6983", "6983 auth method blocked"),
        ("update-ok", "update-ok"),
        ("63Cx", "63Cx"),
    ],
)
def test_describe_sw(sw: int | str, shown: str) -> None:
    assert describe_sw(sw) == shown


def test_every_named_sw_reads_from_the_enum() -> None:
    for sw in SW:
        assert sw_name(sw) == sw.name
        assert describe_sw(sw).startswith(f"{sw.value:04X} ")
    assert sw_from_hex("6a82") == 0x6A82 and sw_from_hex("6A8") is None and sw_from_hex("XY00") is None


def test_the_emulators_refusal_prints_the_sw_by_name() -> None:
    assert str(ApduError(SW.SECURITY_STATUS_NOT_SATISFIED, "user PIN not verified")) == (
        "SW=6982 (SECURITY_STATUS_NOT_SATISFIED) user PIN not verified"
    )
    assert str(ApduError(0x63C0)) == "SW=63C0 (PIN not verified or wrong, 0 tries left)"


def test_a_rule_failure_names_what_the_device_answered() -> None:
    options = HsmOptions(
        target=TargetSpec("emulator"), serial=None, allow_irreversible=False, allow_operator=False, so_pin=None,
        pin=None, so_floor=5, evidence=None, faults=("query-spends-try",), examples=1, steps=1,
    )  # fmt: skip
    consent = Consent(guarded=False, serial=None, allow_irreversible=False, allow_operator=False, so_floor=5, interactive=False)
    target = make_target(options, consent)
    prepare(target, TraceRecorder(), wiping_test_selected=True)
    assert target.profile is not None
    recorder = TraceRecorder()
    device = open_device(target, recorder, target.profile, CostClass.WIPES)
    device.step(Command.initialize("right", 1, 3))
    with pytest.raises(ConformanceFailure, match="but the device answered 63C2 PIN not verified or wrong, 2 tries left"):
        device.step(Command.query_user())
    assert "63C2 PIN not verified or wrong, 2 tries left" in recorder.render()


def test_a_replay_divergence_names_both_status_words(capsys: pytest.CaptureFixture[str]) -> None:
    story = next(p for p in TRACES if "forum" in p.name)
    assert cli(["replay", str(story), "--emulator-fault", "so-counter-not-spent"]) == 1
    out = capsys.readouterr().out
    assert (
        "recorded SW 63CE, got 63CF (63CE PIN not verified or wrong, 14 tries left; "
        "63CF PIN not verified or wrong, 15 tries left)" in out
    )
