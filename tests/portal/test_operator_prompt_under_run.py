"""`hsm-lifecycle run --allow-operator` reaches the person: run.py gives pytest no `-s`, so the
suite must see the terminal through pytest's capture and hand it over for the prompt, with the
progress display paused. A real pseudo-terminal on stdin plays the person's."""

from __future__ import annotations

import io
import json
import os
import sys
import textwrap
from pathlib import Path

import pytest
from rich.console import Console

from hsm_lifecycle.conformance import cli, terminal
from hsm_lifecycle.conformance.commands import run as run_cmd

ASKING_SUITE = '''
import pytest
from hsm_lifecycle.conformance.operator import TerminalPrompter

@pytest.mark.rule("R12")
@pytest.mark.cost("operator")
def test_asks_the_person(hsm):
    assert TerminalPrompter().ask("OPERATOR STEP: type done and press Enter\\n") == "done"
'''


@pytest.fixture
def pseudo_terminal(monkeypatch):
    """stdin on a pty whose other end has already typed `done`."""
    master, slave = os.openpty()
    stdin = os.fdopen(slave, "r", encoding="utf-8")
    os.write(master, b"done\n")
    monkeypatch.setattr(sys, "stdin", stdin)
    yield stdin
    stdin.close()
    os.close(master)


def test_operator_prompt_works_under_run(tmp_path: Path, monkeypatch, capfd, pseudo_terminal):
    folder = tmp_path / "asking_suite"
    folder.mkdir()
    (folder / f"test_asking_{tmp_path.name.replace('-', '_')}.py").write_text(textwrap.dedent(ASKING_SUITE))
    monkeypatch.setattr(run_cmd, "suite_dir", lambda: folder)
    # The emulator presented as a real token, so the operator class is guarded as on a token.
    monkeypatch.setenv("PYTEST_ADDOPTS", f"--hsm-emulator-as-real --hsm-emulator-state {tmp_path / 'token.json'}")
    out_dir = tmp_path / "evidence"
    before = list(terminal._pauses)  # this test's own pytest session has one
    code = cli.main(["run", "--out", str(out_dir), "--allow-operator"])
    out = capfd.readouterr().out
    records = [json.loads(line) for line in (out_dir / "records.jsonl").read_text().splitlines()]
    assert [(r["outcome"], r["why"]) for r in records] == [("passed", "")], out
    assert code == 4  # partial: this one-test suite decides no check of the catalog
    assert "OPERATOR STEP: type done" in out
    assert terminal._pauses == before  # run.py and the inner session took theirs back


def test_progress_display_is_paused_while_the_person_answers():
    display = run_cmd.ProgressDisplay(Console(file=io.StringIO(), force_terminal=True))

    class Session:
        items = [object(), object()]

    display.pytest_collection_finish(Session())  # type: ignore[arg-type]
    live = display._progress.live  # type: ignore[union-attr]
    assert live.is_started
    with display.paused():
        assert not live.is_started
    assert live.is_started
    display.pytest_sessionfinish()


def test_capture_pause_leaves_pytest_capture_as_it_found_it():
    """Between phases pytest captures stdin but not stdout: the pause must not start more."""

    class Capture:
        def __init__(self, started: bool) -> None:
            self.started, self.calls = started, []

        def is_started(self) -> bool:
            return self.started

    class Manager:
        def __init__(self, started: bool) -> None:
            self._global_capturing = Capture(started)
            self.calls: list[str] = []

        def suspend(self, in_: bool = False) -> None:
            self.calls.append(f"suspend(in_={in_})")

        def resume(self) -> None:
            self.calls.append("resume")

        def suspend_global_capture(self, in_: bool = False) -> None:
            self.calls.append("suspend_global")

    for started, tail in ((True, []), (False, ["suspend_global"])):
        manager = Manager(started)
        with terminal.CapturePause(manager)():
            pass
        assert manager.calls == ["suspend(in_=True)", "resume", *tail]
