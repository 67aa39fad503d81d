"""The trace format of architecture.md, and `hsm-lifecycle replay` on the example traces."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hsm_lifecycle.conformance.cli import main as cli
from hsm_lifecycle.conformance.trace import TraceRecorder, read_trace

TRACES = sorted((Path(__file__).resolve().parents[2] / "traces").glob("*.jsonl"))
KEYS = ["i", "t_ms", "cmd", "rsp", "sw", "step", "state", "rules"]


def test_there_are_example_traces():
    assert 2 <= len(TRACES) <= 5


@pytest.mark.parametrize("path", TRACES, ids=lambda p: p.name)
def test_example_traces_have_the_documented_format(path):
    for number, text in enumerate(path.read_text().splitlines()):
        raw = json.loads(text)
        assert list(raw) == KEYS and raw["i"] == number
        for field in ("cmd", "rsp", "sw"):
            assert raw[field] == raw[field].upper() and " " not in raw[field]
            bytes.fromhex(raw[field])
        assert isinstance(raw["rules"], list) and isinstance(raw["t_ms"], float)


@pytest.mark.parametrize("path", TRACES, ids=lambda p: p.name)
def test_example_traces_replay_on_the_emulator(path, capsys):
    assert cli(["replay", str(path)]) == 0
    apdus = sum(1 for line in read_trace(path) if not line.is_control)
    assert capsys.readouterr().out.strip() == f"replayed {apdus} APDUs, all SWs match"


def test_replay_names_the_first_divergence(tmp_path, capsys):
    story = next(p for p in TRACES if "forum" in p.name)
    assert cli(["replay", str(story), "--emulator-fault", "so-counter-not-spent"]) == 1
    out = capsys.readouterr().out
    assert "first divergence at APDU" in out and "recorded SW 63CE, got 63CF" in out


def test_replay_of_an_edited_trace_fails_where_it_was_edited(tmp_path, capsys):
    lines = [json.loads(t) for t in TRACES[0].read_text().splitlines()]
    target = next(i for i, line in enumerate(lines) if line["sw"] == "9000" and i > 2)
    lines[target]["sw"] = "6A88"
    edited = tmp_path / "edited.jsonl"
    edited.write_text("".join(json.dumps(line) + "\n" for line in lines))
    assert cli(["replay", str(edited)]) == 1
    assert f"APDU {target} " in capsys.readouterr().out


def test_replay_refuses_a_torn_trace_and_bad_files(tmp_path, capsys):
    torn = tmp_path / "torn.jsonl"
    rec = TraceRecorder(torn)
    rec.exchange(bytes.fromhex("00200081063030303030 30".replace(" ", "")), b"", None)
    rec.flush()
    assert cli(["replay", str(torn)]) == 2
    assert "power loss" in capsys.readouterr().err
    assert cli(["replay", str(tmp_path / "missing.jsonl")]) == 2


def test_recorder_writes_power_events_as_vpcd_control_codes(tmp_path):
    rec = TraceRecorder(tmp_path / "t.jsonl")
    rec.context("power_cycle", "initialized", ("R10",))
    rec.control(0x00)
    rec.control(0x01, b"\x3b\x8e")
    rec.exchange(bytes.fromhex("00a4040000"), b"\x62\x00", 0x9000)
    rec.flush()
    lines = list(read_trace(tmp_path / "t.jsonl"))
    assert [(l.cmd, l.rsp, l.sw) for l in lines] == [("00", "", ""), ("01", "3B8E", ""), ("00A4040000", "6200", "9000")]
    assert rec.apdus == 1 and all(l.rules == ("R10",) for l in lines)
