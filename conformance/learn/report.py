"""The learning run's files, fit for the evidence bundle:

    learned.dot / learned.svg                  the learned machine
    model-projection.dot / model-projection.svg  the model over the same alphabet and bounds
    diff.json                                  verdict and the shortest distinguishing sequence
    distinguishing.jsonl                       its replay on the device (architecture.md trace format)
    distinguishing.txt                         the same inputs, one Command a line (Command.parse)
    learn-summary.json                         everything above plus the cost and the settings
"""

from __future__ import annotations

import json
from pathlib import Path

from hsm_lifecycle.conformance.learn import render
from hsm_lifecycle.conformance.learn.campaign import LearnReport

SCHEMA = "hsm-lifecycle/learn/1"
TRACE_FILE = "distinguishing.jsonl"
COMMANDS_FILE = "distinguishing.txt"


def summary(report: LearnReport, files: list[str]) -> dict[str, object]:
    result, projection, diff = report.result, report.projection, report.diff
    return {
        "schema": SCHEMA,
        "started": report.started,
        "target": report.target,
        "alphabet": report.alphabet.describe(),
        "bounds": {
            "max_keys": report.alphabet.max_keys,
            "user_retries": report.alphabet.user_retries,
            "so_counter": "all 16 levels (wrong SO-PINs in the alphabet)" if report.alphabet.presents_wrong_so_pin else "never moves (no wrong SO-PIN in the alphabet)",
        },
        "model": {
            "profile": projection.profile.name,
            "open_behaviours": projection.profile.describe(),
            "start": str(projection.start),
            "states": projection.size,
            "extended_states": projection.extended_states,
            "transitions": projection.size * len(projection.alphabet),
            "output_sets": projection.open_sets,
            "note": "outputs the model leaves open are sets; the diff accepts any member (e.g. sign without a key: 6A88|6A82|6982)",
        },
        "learned": {
            "states": result.machine.size,
            "transitions": result.machine.transitions,
            "complete": not result.stopped_early,
        },
        "settings": result.settings.to_dict(),
        "cost": {
            **result.cost,
            "learning_seconds": round(result.seconds, 3),
            "total_seconds": round(report.seconds, 3),
            "queries": result.cost["resets"],
            "steps": result.cost["steps"],
        },
        "aalpy": result.aalpy,
        "oracle": result.oracle,
        "verdict": "equivalent" if diff.equivalent else "differs",
        "isomorphic": diff.isomorphic,
        "divergence": None if diff.divergence is None else diff.divergence.to_dict(),
        "replay": None if report.replay is None else report.replay.to_dict(),
        "files": files,
    }


def write_bundle(report: LearnReport, out: Path, svg: bool = True) -> list[Path]:
    """Writes the files into `out` (created); the trace is written by the replay itself."""
    out.mkdir(parents=True, exist_ok=True)
    highlight = report.diff.divergence.inputs if report.diff.divergence is not None else ()
    title = f"{report.target.get('kind')} over alphabet {report.alphabet.name}"
    written: list[Path] = []
    learned = render.learned_table(report.result.machine, report.diff, report.projection)
    written += render.write(render.to_graph(learned, f"learned: {title} ({report.result.machine.size} states)", highlight), out / "learned.dot", svg)
    model = render.projection_table(report.projection)
    written += render.write(
        render.to_graph(model, f"model projection ({report.projection.profile.name}, {report.projection.size} states)", highlight),
        out / "model-projection.dot",
        svg,
    )
    diff_path = out / "diff.json"
    diff_path.write_text(json.dumps({**report.diff.to_dict(), "replay": None if report.replay is None else report.replay.to_dict()}, indent=2) + "\n", encoding="utf-8")
    written.append(diff_path)
    if report.diff.divergence is not None:
        commands = out / COMMANDS_FILE
        commands.write_text("".join(f"{c}\n" for c in report.diff.divergence.inputs), encoding="utf-8")
        written.append(commands)
        if (out / TRACE_FILE).exists():
            written.append(out / TRACE_FILE)
    summary_path = out / "learn-summary.json"
    names = [p.name for p in written] + [summary_path.name]
    summary_path.write_text(json.dumps(summary(report, names), indent=2, default=_jsonable) + "\n", encoding="utf-8")
    written.append(summary_path)
    return written


def _jsonable(value: object) -> object:
    if isinstance(value, (set, frozenset, tuple)):
        return sorted(value) if not isinstance(value, tuple) else list(value)
    return str(value)

