"""Graphviz diagrams of the learned machine and of the model's projection, side by side in
the evidence bundle. Parallel transitions are merged into one edge per (source, target,
output); the distinguishing sequence, when there is one, is drawn in red on both.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import graphviz

from hsm_lifecycle.conformance.learn.diff import Diff
from hsm_lifecycle.conformance.learn.machine import LearnedMachine
from hsm_lifecycle.conformance.learn.projection import Projection
from hsm_lifecycle.model.commands import Command
from hsm_lifecycle.model.states import ExtState

HIGHLIGHT = "#c0392b"
# dot's crossing minimisation and spline routing take minutes on the `full` alphabet's ~300
# states; bounded iterations and straight edges lay it out in seconds.
LARGE = 60
LARGE_LAYOUT = {"mclimit": "0.05", "nslimit": "0.5", "nslimit1": "0.5", "splines": "line"}


def short(command: Command) -> str:
    """A compact input name for edge labels (the full form is in the summary)."""
    if command.name == "initialize":
        return f"initialize({command.so},{command.options:#06x})"
    if command.name == "reset_retry_counter":
        return f"reset_retry_counter({command.so}{',new_pin' if command.new_pin else ''})"
    return str(command)


def describe_state(state: ExtState) -> str:
    """A two-line node label from the model's variables that the alphabet can see."""
    if not state.is_initialized:
        return state.abstract
    flags = [f"so {state.so_tries}", f"user {state.user_tries}/{state.user_max}", f"opt {state.options:#06x}"]
    if state.transport:
        flags.append("transport")
    if state.authenticated:
        flags.append("auth")
    flags.append(f"keys {state.keys}")
    return f"{state.abstract}\\n{' · '.join(flags)}"


@dataclass(frozen=True)
class Table:
    """What the drawing needs from either machine."""

    size: int
    alphabet: tuple[Command, ...]
    edge: Callable[[int, int], tuple[int, str]]  # (state, input index) -> (target, output label)
    label: Callable[[int], str]


def learned_table(machine: LearnedMachine, diff: Diff | None, projection: Projection | None) -> Table:
    def label(state: int) -> str:
        matched = diff.model_states_of(state) if diff is not None and projection is not None else []
        name = f"q{state}"
        if len(matched) == 1:
            return f"{name}\\n{describe_state(projection.states[matched[0]])}"  # type: ignore[union-attr]
        if matched:
            return f"{name}\\n≈ model states {', '.join(f'm{m}' for m in matched)}"
        return name

    return Table(
        size=machine.size,
        alphabet=machine.alphabet,
        edge=lambda s, i: (machine.targets[s][i], machine.outputs[s][i]),
        label=label,
    )


def projection_table(projection: Projection) -> Table:
    return Table(
        size=projection.size,
        alphabet=projection.alphabet,
        edge=lambda s, i: (projection.edges[s][i].target, projection.edges[s][i].label),
        label=lambda s: f"m{s}\\n{describe_state(projection.states[s])}",
    )


def path_edges(table: Table, inputs: Sequence[Command]) -> list[tuple[int, int]]:
    """(state, input index) along `inputs` from the initial state."""
    out, state = [], 0
    for command in inputs:
        i = table.alphabet.index(command)
        out.append((state, i))
        state = table.edge(state, i)[0]
    return out


def to_graph(table: Table, title: str, highlight: Sequence[Command] = ()) -> graphviz.Digraph:
    """One edge per (source, target) whose label has a line per output ("inputs / output");
    the lines of the highlighted path are marked » and the edge drawn in red."""
    marked = path_edges(table, highlight)
    last = marked[-1] if marked else None
    lines: dict[tuple[int, int], dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    hot: dict[tuple[int, int], set[str]] = defaultdict(set)
    final: set[tuple[int, int]] = set()
    for s in range(table.size):
        for i, command in enumerate(table.alphabet):
            target, output = table.edge(s, i)
            lines[(s, target)][output].append(short(command))
            if (s, i) in marked:
                hot[(s, target)].add(output)
                if (s, i) == last:
                    final.add((s, target))
    attrs = {"label": title, "labelloc": "t", "rankdir": "LR", "fontname": "Helvetica"}
    if table.size > LARGE:
        attrs.update(LARGE_LAYOUT)
    graph = graphviz.Digraph(name="machine", graph_attr=attrs)
    graph.attr("node", shape="box", style="rounded", fontname="Helvetica", fontsize="10")
    graph.attr("edge", fontname="Helvetica", fontsize="8")
    graph.node("__start", label="", shape="point")
    graph.edge("__start", "s0")
    for s in range(table.size):
        graph.node(f"s{s}", label=table.label(s))
    for (s, target), by_output in lines.items():
        text = "\\l".join(
            f"{'» ' if output in hot.get((s, target), ()) else ''}{', '.join(inputs)} / {output}" for output, inputs in sorted(by_output.items())
        )
        edge_attrs: dict[str, str] = {}
        if hot.get((s, target)):
            edge_attrs = {"color": HIGHLIGHT, "fontcolor": HIGHLIGHT, "penwidth": "1.8"}
        if (s, target) in final:
            edge_attrs.update(style="dashed", penwidth="2.5")
        graph.edge(f"s{s}", f"s{target}", label=text + "\\l", **edge_attrs)
    return graph


def write(graph: graphviz.Digraph, dot_path: Path, svg: bool = True) -> list[Path]:
    """Write the DOT source and, when Graphviz's `dot` is installed, the SVG beside it."""
    dot_path.write_text(graph.source, encoding="utf-8")
    written = [dot_path]
    if svg:
        svg_path = dot_path.with_suffix(".svg")
        try:
            graphviz.render("dot", "svg", str(dot_path), outfile=str(svg_path), quiet=True)
        except graphviz.ExecutableNotFound:
            return written
        written.append(svg_path)
    return written
