"""The diagram and the generated docs are drawn from the model, and the committed ones are current."""

from __future__ import annotations

import re
import struct
from pathlib import Path

import pytest

from hsm_lifecycle.conformance import cli
from hsm_lifecycle.model import RULES, STATES, TRANSITIONS, diagram, render_docs


def _edge_and_node_text(source: str) -> str:
    return re.sub(r"<[^>]+>", " ", source)


def test_dot_draws_every_state_and_every_transition_id() -> None:
    source = diagram.dot_source()
    text = _edge_and_node_text(source)
    for state in STATES:
        assert f'\t"{state}" [label=' in source or f"\t{state} [label=" in source, state
    for t in TRANSITIONS:
        assert re.search(rf"\b{t.id}\b", text), t.id
    # parallel edges are merged: one edge per (source, dest, cost class) at most
    edges = re.findall(r'^\t"?([a-z-]+)"? -> "?([a-z-]+)"?', source, flags=re.M)
    visible = [e for e in edges if "legend" not in e]
    assert len(visible) == len({(t.source, t.dest, t.cost) for t in TRANSITIONS if t.source != t.dest})
    assert all(a != b for a, b in visible)  # self-loops are summarised inside the nodes
    for cost, colour in diagram.COST_COLOURS.items():
        assert colour in source and cost in source


def test_every_rule_id_of_a_state_change_is_on_an_edge() -> None:
    text = _edge_and_node_text(diagram.dot_source())
    for t in TRANSITIONS:
        if t.source != t.dest:
            for rule in t.rules:
                assert rule in text


def test_covered_transitions_are_marked() -> None:
    covered = {"S06", "I09", "I01"}
    source = diagram.dot_source(covered=covered)
    assert diagram.COVERED_COLOUR in source and "style=dashed" in source and "style=bold" in source
    assert f"3 of {len(TRANSITIONS)} transitions covered" in source
    assert re.search(r"not covered: I02 ", _edge_and_node_text(source))
    everything = diagram.dot_source(covered={t.id for t in TRANSITIONS})
    assert "style=dashed" not in everything
    assert diagram.current_fingerprint(covered) != diagram.current_fingerprint()


@pytest.mark.parametrize("suffix", [".svg", ".png", ".dot"])
def test_render_by_suffix_carries_the_fingerprint(tmp_path: Path, suffix: str) -> None:
    out = diagram.render(tmp_path / f"sub/lifecycle{suffix}", covered={"S01"})
    data = out.read_bytes()
    assert diagram.read_fingerprint(data) == diagram.current_fingerprint({"S01"})
    if suffix == ".png":
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[37:41] == b"tEXt"
        width, height = struct.unpack(">II", data[16:24])
        assert width > 1000 and height > 800
    elif suffix == ".svg":
        assert b"<svg" in data and b"initialized" in data


def test_render_refuses_unknown_suffix(tmp_path: Path) -> None:
    with pytest.raises(diagram.DiagramFormatError, match=r"\.svg, \.png or \.dot"):
        diagram.render(tmp_path / "lifecycle.jpg")


def test_committed_docs_are_current() -> None:
    stale = render_docs.stale()
    assert stale == [], f"regenerate with: python -m hsm_lifecycle.model.render_docs ({stale})"


def test_stale_detects_a_changed_picture_and_table(tmp_path: Path) -> None:
    assert len(render_docs.stale(tmp_path)) == 3  # missing files are stale
    render_docs.write(tmp_path)
    assert render_docs.stale(tmp_path) == []
    diagram.render(tmp_path / "lifecycle.svg", covered={"S01"})  # a different picture
    (tmp_path / "rules.md").write_text("old\n", encoding="utf-8")
    assert {Path(p).name for p in render_docs.stale(tmp_path)} == {"lifecycle.svg", "rules.md"}
    assert render_docs.main(["--docs", str(tmp_path), "--check"]) == 1
    assert render_docs.main(["--docs", str(tmp_path)]) == 0 and render_docs.stale(tmp_path) == []


def test_rules_md_lists_each_rules_transitions() -> None:
    text = render_docs.rules_markdown()
    assert "proposed mapping" in text
    for rid, rule in RULES.items():
        section = text.split(f"### {rid}\n", 1)[1].split("### ", 1)[0]
        assert rule.statement in section
        ids = re.findall(r"^- `([SFIUOB]K?\d\d)`", section, flags=re.M)
        assert ids == [t.id for t in TRANSITIONS if rid in t.rules]


def test_cli_diagram(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "x.dot"
    assert cli.main(["diagram", "--out", str(out)]) == 0
    assert diagram.read_fingerprint(out.read_bytes()) == diagram.current_fingerprint()
    assert cli.main(["diagram", "--out", str(tmp_path / "x.gif")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and ".svg, .png or .dot" in err


def test_cli_diagram_default_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert cli.main(["diagram"]) == 0
    assert (tmp_path / "lifecycle.svg").exists()
