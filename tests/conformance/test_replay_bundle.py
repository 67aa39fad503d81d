"""Every trace of an in-process emulator bundle replays from a fresh token to its end: setup
steps, tour segments on fresh tokens, firmware installs and power cuts included."""

from __future__ import annotations

import json

import pytest

from hsm_lifecycle.conformance.cli import main as cli
from hsm_lifecycle.conformance.commands.replay import CannotReplay, ReplayLink, replay
from hsm_lifecycle.conformance.trace import EVENT_FIRMWARE, EVENT_NEW_TOKEN, EVENT_POWER_CUT, TraceRecorder, read_trace
from hsm_lifecycle.conformance.transport.inprocess import InProcessTransport
from hsm_lifecycle.emulator import VirtualToken

# The tour (fresh tokens, updates), R17 (power cuts), R13 (counted updates), R04 (provisioning),
# the stateful test (a fresh token per example).
SELECT = "tour or r17 or r13 or r04_wrong or stateful"


def test_every_trace_of_a_bundle_replays_on_a_fresh_emulator(run_suite, capfd):
    run = run_suite("--hsm-examples", "3", select=SELECT)
    assert run.rc == 0, run.output
    traces = sorted((run.evidence / "traces").glob("*.jsonl"))
    assert len(traces) >= 6
    codes = {line.code for path in traces for line in read_trace(path) if line.is_control}
    assert {EVENT_NEW_TOKEN, EVENT_FIRMWARE, EVENT_POWER_CUT} <= codes  # what needs redoing is there
    for path in traces:
        assert cli(["replay", str(path), "--target", "emulator"]) == 0, f"{path.name}: {capfd.readouterr()}"
        apdus = sum(1 for line in read_trace(path) if not line.is_control)
        assert capfd.readouterr().out.strip() == f"replayed {apdus} APDUs, all SWs match"


def test_setup_steps_are_in_the_trace_and_marked(run_suite):
    run = run_suite(select="r04_wrong")
    lines = [line for line in run.trace_lines() if not line.is_control]
    assert lines[0].state == "shipped"
    setup = [line.step for line in lines if line.step.startswith("setup:")]
    assert setup and setup[0].startswith("setup:initialize(")
    assert any(line.step == "verify_user(wrong)" for line in lines)


def test_a_replay_that_leaves_out_an_event_diverges(run_suite, tmp_path, capfd):
    """The events are what keep the replay in step: without the firmware install, it diverges."""
    run = run_suite(select="r14")
    path = next((run.evidence / "traces").glob("*r14*.jsonl"))
    kept = [json.loads(t) for t in path.read_text().splitlines() if json.loads(t)["cmd"][:2] != f"{EVENT_FIRMWARE:02X}"]
    edited = tmp_path / "no-install.jsonl"
    edited.write_text("".join(json.dumps(line) + "\n" for line in kept))
    assert cli(["replay", str(edited)]) == 1
    assert "first divergence" in capfd.readouterr().out


def test_a_target_that_cannot_redo_an_event_stops_with_the_reason(tmp_path):
    rec = TraceRecorder(tmp_path / "t.jsonl")
    rec.event(EVENT_NEW_TOKEN)
    transport = InProcessTransport(VirtualToken.manufacture())
    with pytest.raises(CannotReplay, match="fresh emulated token"):
        replay(rec.lines, ReplayLink(transport, "pcsc:Nitrokey"))


def test_a_trace_begun_on_a_used_device_says_so_when_it_diverges(run_suite, capfd):
    run = run_suite("--hsm-emulator-as-real", "--hsm-pin", "648219", "--hsm-so-pin", "3537363231383830", select="r04_wrong")
    path = next((run.evidence / "traces").glob("*r04_wrong*.jsonl"))
    assert next(read_trace(path)).state == "initialized"
    assert cli(["replay", str(path), "--pin", "648219"]) == 1
    assert "begins in state 'initialized'" in capfd.readouterr().out
