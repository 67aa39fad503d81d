"""The lifecycle drawn from the transition table (graphviz).

Abstract states are nodes; transitions between two different states are merged into one edge
per (source, destination, cost class), coloured by cost class and labelled with each
transition's id, command and guard plus the rules exercised; transitions that stay in a state
are summarised inside its node. With `covered` (the evidence bundle), covered transitions are
bold green and the others dashed grey.

Every rendering carries a fingerprint of its DOT source (an SVG comment, a PNG tEXt chunk), so
a test can tell whether a committed picture is current without comparing pixels.
"""

from __future__ import annotations

import hashlib
import re
import struct
import zlib
from collections import defaultdict
from html import escape
from pathlib import Path
from typing import Iterable

import graphviz

from hsm_lifecycle.model.cost import COST_CLASSES, COST_MEANINGS, cost_rank
from hsm_lifecycle.model.lifecycle import TRANSITIONS, Transition
from hsm_lifecycle.model.states import SHIPPED, SO_BLOCKED, STATE_MEANINGS, STATE_PROBES, STATES, USER_BLOCKED

FORMATS = (".svg", ".png", ".dot")
FONT = "Helvetica"

# Okabe–Ito colours: distinguishable with the common colour-vision deficiencies.
COST_COLOURS: dict[str, str] = {
    "free": "#0072B2",
    "tries": "#E69F00",
    "wipes": "#CC79A7",
    "irreversible": "#D55E00",
    "operator": "#009E73",
}
COVERED_COLOUR = "#1B7F3B"
UNCOVERED_COLOUR = "#9E9E9E"
FINGERPRINT_KEY = "model fingerprint sha256"
_FINGERPRINT_RE = re.compile(FINGERPRINT_KEY + r"[ \x00]([0-9a-f]{64})")


class DiagramFormatError(ValueError):
    """The output file's suffix names no format we render."""


# -- DOT source ------------------------------------------------------------------------------


def _html(text: str) -> str:
    return escape(text, quote=True)


def _loop_rows(state: str, covered: set[str] | None) -> list[str]:
    """Rows summarising the transitions that stay in `state`, one per cost class."""
    loops = [t for t in TRANSITIONS if t.source == state and t.dest == state]
    by_cost: dict[str, list[Transition]] = defaultdict(list)
    for t in loops:
        by_cost[t.cost].append(t)
    rows = []
    for cost in COST_CLASSES:
        group = by_cost.get(cost)
        if not group:
            continue
        commands = " · ".join(dict.fromkeys(t.trigger for t in group))
        ids = " ".join(t.id for t in group)
        if covered is None:
            colour, tag = COST_COLOURS[cost], f"↺ {cost}"
        else:
            done = sum(t.id in covered for t in group)
            colour = COVERED_COLOUR if done == len(group) else UNCOVERED_COLOUR
            missing = [t.id for t in group if t.id not in covered]
            tag = f"↺ {cost} {done}/{len(group)} covered"
            ids = "not covered: " + " ".join(missing) if missing else ids
        rows.append(
            f'<TR><TD ALIGN="LEFT" BALIGN="LEFT"><FONT COLOR="{colour}"><B>{_html(tag)}</B></FONT> '
            f'<FONT POINT-SIZE="9">{_html(_wrap(commands, 60, " · "))}</FONT><BR/>'
            f'<FONT POINT-SIZE="8" COLOR="#555555">{_html(_wrap(ids, 70))}</FONT></TD></TR>'
        )
    return rows


def _wrap(text: str, width: int, sep: str = " ") -> str:
    """Break a long line after a separator; graphviz HTML labels do not wrap by themselves."""
    parts = text.split(sep)
    tokens = [p + sep.rstrip() for p in parts[:-1]] + parts[-1:]
    lines, line = [], ""
    for token in tokens:
        if line and len(line) + 1 + len(token) > width:
            lines.append(line)
            line = token
        else:
            line = f"{line} {token}" if line else token
    lines.append(line)
    return "\n".join(lines)


def _node_label(state: str, covered: set[str] | None) -> str:
    meaning = _html(_wrap(STATE_MEANINGS[state], 52)).replace("\n", "<BR/>")
    rows = [
        f'<TR><TD BGCOLOR="#ECEFF1"><B><FONT POINT-SIZE="14">{_html(state)}</FONT></B></TD></TR>',
        f'<TR><TD><FONT POINT-SIZE="9">{meaning}</FONT></TD></TR>',
        f'<TR><TD><FONT POINT-SIZE="9" FACE="Courier">{_html(STATE_PROBES[state])}</FONT></TD></TR>',
        *(r.replace("\n", "<BR/>") for r in _loop_rows(state, covered)),
    ]
    return '<<TABLE BORDER="0" CELLBORDER="1" CELLSPACING="0" CELLPADDING="4">' + "".join(rows) + "</TABLE>>"


def _edge_groups(covered: set[str] | None) -> dict[tuple[str, str, str], list[Transition]]:
    """Transitions between different states, merged by (source, dest, cost or coverage)."""
    groups: dict[tuple[str, str, str], list[Transition]] = defaultdict(list)
    for t in TRANSITIONS:
        if t.source == t.dest:
            continue
        key = t.cost if covered is None else ("covered" if t.id in covered else "not covered")
        groups[(t.source, t.dest, key)].append(t)
    return groups


def _edge_label(group: list[Transition], colour: str, with_cost: bool) -> str:
    """HTML label: one left-aligned line per transition (id in the edge colour), then the rules."""
    lines = []
    for t in group:
        guard = f" <I>[{_html(t.guard)}]</I>" if t.guard else ""
        cost = f" ({t.cost})" if with_cost else ""
        lines.append(f'<FONT COLOR="{colour}"><B>{t.id}</B></FONT> {_html(t.command)}{guard}{cost}')
    rules = " ".join(sorted({r for t in group for r in t.rules}))
    lines.append(f'<FONT COLOR="#555555">rules {rules}</FONT>')
    return "<" + "".join(f'{line}<BR ALIGN="LEFT"/>' for line in lines) + ">"


def _legend(covered: set[str] | None) -> str:
    rows = ['<TR><TD COLSPAN="2"><B>Legend</B></TD></TR>']
    if covered is None:
        for cost in COST_CLASSES:
            rows.append(
                f'<TR><TD BGCOLOR="{COST_COLOURS[cost]}" WIDTH="24"> </TD>'
                f'<TD ALIGN="LEFT"><B>{cost}</B>: {_html(COST_MEANINGS[cost])}</TD></TR>'
            )
    else:
        total = len(TRANSITIONS)
        done = sum(t.id in covered for t in TRANSITIONS)
        rows.append(f'<TR><TD BGCOLOR="{COVERED_COLOUR}" WIDTH="24"> </TD><TD ALIGN="LEFT"><B>covered</B> (bold)</TD></TR>')
        rows.append(f'<TR><TD BGCOLOR="{UNCOVERED_COLOUR}" WIDTH="24"> </TD><TD ALIGN="LEFT"><B>not covered</B> (dashed)</TD></TR>')
        rows.append(f'<TR><TD COLSPAN="2" ALIGN="LEFT">{done} of {total} transitions covered</TD></TR>')
    rows.append(
        '<TR><TD COLSPAN="2" ALIGN="LEFT" BALIGN="LEFT">Edge: <I>id command [guard]</I>, then the rules exercised.<BR/>'
        "↺ rows: transitions that stay in the state, by cost class.<BR/>"
        "Ids and rules: docs/rules.md (generated from the same model).</TD></TR>"
    )
    return '<<TABLE BORDER="1" CELLBORDER="0" CELLSPACING="2" CELLPADDING="3">' + "".join(rows) + "</TABLE>>"


def build(covered: Iterable[str] | None = None) -> graphviz.Digraph:
    """The lifecycle as a graphviz graph (without the fingerprint)."""
    cov = None if covered is None else set(covered)
    title = "SmartCard-HSM / Nitrokey HSM 2 lifecycle model"
    if cov is not None:
        title += " — transition coverage"
    g = graphviz.Digraph("lifecycle")
    g.attr(
        rankdir="TB",
        label=f"{title}\n{len(TRANSITIONS)} guarded transitions over {len(STATES)} abstract states",
        labelloc="t",
        fontname=FONT,
        fontsize="18",
        nodesep="0.6",
        ranksep="0.9",
        newrank="true",
    )
    g.attr("node", shape="plain", fontname=FONT, fontsize="10")
    g.attr("edge", fontname=FONT, fontsize="9", fontcolor="#212121", arrowsize="0.8")
    for state in STATES:
        g.node(state, label=_node_label(state, cov))
    with g.subgraph() as same:
        same.attr(rank="same")
        same.node(USER_BLOCKED)
        same.node(SO_BLOCKED)
    groups = _edge_groups(cov)
    for (source, dest, key) in sorted(groups, key=lambda k: (STATES.index(k[0]), STATES.index(k[1]), k[2])):
        group = groups[(source, dest, key)]
        if cov is None:
            colour = COST_COLOURS[key]
            attrs = {"color": colour, "penwidth": "1.8" if cost_rank(key) >= 3 else "1.3"}
        elif key == "covered":
            colour = COVERED_COLOUR
            attrs = {"color": colour, "penwidth": "2.6", "style": "bold"}
        else:
            colour = UNCOVERED_COLOUR
            attrs = {"color": colour, "style": "dashed"}
        attrs["label"] = _edge_label(group, colour, with_cost=cov is not None)
        g.edge(source, dest, **attrs)
    with g.subgraph() as top:  # the legend fills the empty corner beside `shipped`
        top.attr(rank="same")
        top.node("legend", label=_legend(cov), shape="plain")
        top.node(SHIPPED)
        top.edge("legend", SHIPPED, style="invis", minlen="3")
    return g


def fingerprint(source: str) -> str:
    return hashlib.sha256(source.encode("utf-8")).hexdigest()


def dot_source(covered: Iterable[str] | None = None) -> str:
    """The DOT text, with its own fingerprint embedded as a graph comment."""
    g = build(covered)
    digest = fingerprint(g.source)
    g.attr(comment=f"{FINGERPRINT_KEY} {digest}")
    return g.source


def read_fingerprint(data: bytes) -> str | None:
    """The fingerprint embedded in a rendered SVG, PNG or DOT file, or None."""
    m = _FINGERPRINT_RE.search(data.decode("latin-1"))
    return m.group(1) if m else None


def current_fingerprint(covered: Iterable[str] | None = None) -> str:
    return fingerprint(build(covered).source)


# -- rendering -------------------------------------------------------------------------------


def render(path: str | Path, covered: Iterable[str] | None = None) -> Path:
    """Write the diagram to `path`; the format follows the suffix (.svg, .png or .dot)."""
    out = Path(path)
    suffix = out.suffix.lower()
    if suffix not in FORMATS:
        raise DiagramFormatError(f"cannot draw {out.name!r}: use a file name ending in .svg, .png or .dot")
    g = build(covered)
    digest = fingerprint(g.source)
    g.attr(comment=f"{FINGERPRINT_KEY} {digest}")
    if suffix == ".dot":
        data = g.source.encode("utf-8")
    elif suffix == ".svg":
        data = g.pipe(format="svg")
    else:
        g.attr(dpi="110")
        data = _with_text_chunk(g.pipe(format="png"), FINGERPRINT_KEY, digest)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(data)
    return out


def _with_text_chunk(png: bytes, key: str, value: str) -> bytes:
    """Insert a tEXt chunk right after IHDR (PNG: 8-byte signature, then length-type-data-CRC)."""
    if png[:8] != b"\x89PNG\r\n\x1a\n" or png[12:16] != b"IHDR":
        raise ValueError("graphviz did not return a PNG")
    ihdr_end = 8 + 4 + 4 + struct.unpack(">I", png[8:12])[0] + 4
    body = key.encode("latin-1") + b"\x00" + value.encode("latin-1")
    chunk = struct.pack(">I", len(body)) + b"tEXt" + body + struct.pack(">I", zlib.crc32(b"tEXt" + body))
    return png[:ihdr_end] + chunk + png[ihdr_end:]
