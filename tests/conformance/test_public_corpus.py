"""The public-record corpus (traces/public) replays on the emulator without a mismatch, and the
replayer does see one when an entry says otherwise."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hsm_lifecycle.conformance import corpus


def test_every_entry_names_its_source_and_replays_without_a_mismatch() -> None:
    result = corpus.run()
    assert result.mismatches == [], [m.describe() for m in result.mismatches]
    assert result.entries >= 25 and len(result.sources) >= 9
    for entry in corpus.load():
        src = entry.data["source"]
        if "repo" in src:
            assert src["repo"] and ("issue" in src or len(src["commit"]) == 40)
        else:  # a public page: its address
            assert src["url"].startswith("https://support.nitrokey.com/t/")
        assert entry.data["kind"] in ("observed", "documented")
        assert entry.data["reconstructed"] is False or isinstance(entry.data["reconstructed"], str)


def _copy(tmp_path: Path, name: str, change) -> Path:  # type: ignore[no-untyped-def]
    lines = [json.loads(line) for line in (corpus.CORPUS / name).read_text().splitlines()]
    change(lines)
    (tmp_path / name).write_text("".join(json.dumps(e) + "\n" for e in lines))
    return tmp_path


def test_a_published_status_word_the_emulator_does_not_give_is_a_mismatch(tmp_path: Path) -> None:
    def wrong_sw(lines: list[dict]) -> None:  # type: ignore[type-arg]
        lines[-1]["sw"] = "6A88"

    result = corpus.run(_copy(tmp_path, "opensc-2432.jsonl", wrong_sw))
    assert [m.entry.id for m in result.mismatches] == ["osc2432-saper-1"]


def test_the_firmware_version_decides_the_fci_layout(tmp_path: Path) -> None:
    def as_v3(lines: list[dict]) -> None:  # type: ignore[type-arg]
        for entry in lines:
            entry["firmware"] = "3.2"

    result = corpus.run(_copy(tmp_path, "opensc-2432.jsonl", as_v3))
    assert [m.entry.id for m in result.mismatches] == ["osc2432-dengert-1", "osc2432-dengert-4"]
    assert "data 62" in result.mismatches[0].what


def test_a_malformed_line_is_refused_with_its_place(tmp_path: Path) -> None:
    (tmp_path / "bad.jsonl").write_text('{"id": "x"}\n')
    with pytest.raises(corpus.CorpusError, match="bad.jsonl:1: missing"):
        corpus.load(tmp_path)


def test_the_device_model_decides_the_atr(tmp_path: Path) -> None:
    def as_card(lines: list[dict]) -> None:  # type: ignore[type-arg]
        lines[0]["setup"]["model"] = "smartcard-hsm"

    result = corpus.run(_copy(tmp_path, "opensc-1861.jsonl", as_card))
    assert [m.entry.id for m in result.mismatches] == ["osc1861-atr"] and "ATR 3BFE" in result.mismatches[0].what


def test_hsm_lifecycle_replay_takes_the_corpus_folder() -> None:
    import shutil
    import subprocess
    import sys

    exe = shutil.which("hsm-lifecycle", path=str(Path(sys.executable).parent))
    if exe is None:
        pytest.skip("the hsm-lifecycle console script is not installed (pip install -e .)")
    done = subprocess.run([exe, "replay", str(corpus.CORPUS)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 mismatch(es)" in done.stdout
    refused = subprocess.run([exe, "replay", str(corpus.CORPUS), "--target", "pcsc:x"], capture_output=True, text=True)
    assert refused.returncode == 2 and "in-process emulator only" in refused.stderr


def test_a_source_without_repository_needs_a_page_address(tmp_path: Path) -> None:
    line = json.loads((corpus.CORPUS / "nitrokey-forum-2169.jsonl").read_text().splitlines()[0])
    line["source"] = {"forum": "support.nitrokey.com", "thread": 2169}
    (tmp_path / "bad.jsonl").write_text(json.dumps(line) + "\n")
    with pytest.raises(corpus.CorpusError, match="bad.jsonl:1: a source is"):
        corpus.load(tmp_path)


def test_the_applet_answers_nothing_but_select_until_selected(tmp_path: Path) -> None:
    def selected(lines: list[dict]) -> None:  # type: ignore[type-arg]
        lines[0]["setup"]["connect"] = "select"

    result = corpus.run(_copy(tmp_path, "nitrokey-forum-2169.jsonl", selected))
    assert [m.entry.id for m in result.mismatches] == ["nkforum2169-1"] and "SW 9000" in result.mismatches[0].what


def test_tries_spent_before_the_published_exchange_are_replayed(tmp_path: Path) -> None:
    def one_less(lines: list[dict]) -> None:  # type: ignore[type-arg]
        lines[0]["setup"]["wrong_so"] = 6

    result = corpus.run(_copy(tmp_path, "nitrokey-forum-1895.jsonl", one_less))
    assert [m.entry.id for m in result.mismatches] == ["nkforum1895-1"] and "SW 63C8" in result.mismatches[0].what
