"""`hsm-lifecycle learn`: exit status, the files of the bundle, usage refusals."""

from __future__ import annotations

import json

import pytest

from hsm_lifecycle.conformance.cli import main
from hsm_lifecycle.conformance.trace import read_trace
from hsm_lifecycle.model.commands import Command

QUICK = ["--walk-steps", "300", "--extra-states", "0"]


def test_learning_the_emulator_exits_0_and_writes_the_bundle(tmp_path):
    assert main(["learn", "--out", str(tmp_path), *QUICK]) == 0
    names = {p.name for p in tmp_path.iterdir()}
    assert {"learned.dot", "learned.svg", "model-projection.dot", "model-projection.svg", "diff.json", "learn-summary.json"} <= names
    assert "distinguishing.jsonl" not in names
    summary = json.loads((tmp_path / "learn-summary.json").read_text())
    assert summary["schema"] == "hsm-lifecycle/learn/1"
    assert summary["verdict"] == "equivalent" and summary["isomorphic"] is True
    assert summary["learned"]["states"] == summary["model"]["states"] == 9
    assert summary["cost"]["queries"] > 0 and summary["cost"]["steps"] > 0 and summary["cost"]["learning_seconds"] > 0
    assert summary["alphabet"]["name"] == "core" and summary["model"]["profile"] == "emulator-defaults"
    assert set(summary["files"]) == names
    assert (tmp_path / "learned.svg").read_text().lstrip().startswith(("<?xml", "<svg"))


def test_a_fault_exits_1_with_a_replayable_distinguishing_sequence(tmp_path):
    assert main(["learn", "--out", str(tmp_path), "--fault", "session-survives-reselect", "--fail-fast"]) == 1
    diff = json.loads((tmp_path / "diff.json").read_text())
    assert diff["verdict"] == "differs" and diff["replay"]["confirmed"] is True
    inputs = [Command.parse(line) for line in (tmp_path / "distinguishing.txt").read_text().splitlines()]
    assert [str(c) for c in inputs] == diff["divergence"]["inputs"]
    assert Command.select() in inputs
    trace = list(read_trace(tmp_path / "distinguishing.jsonl"))
    assert trace[-1].step == str(inputs[-1]) and trace[-1].sw == diff["divergence"]["observed"][-1]
    assert all(line.state for line in trace)
    # The divergent step is drawn in red on both diagrams.
    assert "dashed" in (tmp_path / "learned.dot").read_text()
    assert "dashed" in (tmp_path / "model-projection.dot").read_text()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--fault", "no-such-fault"], "unknown --fault"),
        (["--target", "pcsc:Nitrokey", "--fault", "query-spends-try"], "only applies to --target emulator"),
        (["--target", "pcsc:Nitrokey"], "needs --serial, --so-pin, --pin"),
        (["--target", "pcsc:Nitrokey", "--serial", "X", "--so-pin", "57621880", "--pin", "648219"], "16 hex digits"),
        (["--target", "emulator:vpcd"], "persistent token"),
        (["--target", "somewhere"], "unknown --target"),
        (["--serial", "DENK0100000"], "for a real token"),
        (["--fail-fast", "--no-model-guidance"], "needs the model's guidance"),
        (["--extra-states", "-1"], "must be >= 0"),
    ],
)
def test_usage_mistakes_exit_2_with_one_sentence(tmp_path, capsys, argv, message):
    assert main(["learn", "--out", str(tmp_path), *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
