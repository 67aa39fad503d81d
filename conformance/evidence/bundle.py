"""The evidence bundle of a campaign (architecture.md, "Evidence bundle").

```
summary.json     machine-readable verdicts        report.html   the report for people
lifecycle.svg    the diagram, covered marked      records.jsonl what the plugin recorded per test
junit.xml        pytest's (rule-id properties)    traces/       one JSON Lines trace per test
MANIFEST.sha256  a sha256sum line per file, written last
```

The plugin calls `write_bundle` at session finish; `hsm-lifecycle run` may call
`rebuild_bundle` afterwards (an interrupted run, a junit.xml written after the bundle).
"""

from __future__ import annotations

import json
import os
import platform
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path

from hsm_lifecycle.conformance.evidence.manifest import write_manifest
from hsm_lifecycle.conformance.evidence.modelview import ModelView
from hsm_lifecycle.conformance.evidence.records import RECORDS_PREFIX, TestRecord, load_records
from hsm_lifecycle.conformance.evidence.report import ReportContext, inline_svg, render_report
from hsm_lifecycle.conformance.evidence.summary import Summary, build_summary

SUMMARY_NAME = "summary.json"
REPORT_NAME = "report.html"
DIAGRAM_NAME = "lifecycle.svg"
RECORDS_NAME = "records.jsonl"
PLAN_NAME = "plan.json"  # written by the campaign (conformance.campaign.PLAN_FILE)
TRACES_DIR = "traces"


def write_bundle(
    out_dir: Path,
    records: Sequence[TestRecord],
    *,
    target: Mapping[str, object],
    started: datetime | str,
    duration_s: float,
    open_behaviours: Mapping[str, object],
    complete: bool = True,
    so_tries_left_end: int | None = None,
    view: ModelView | None = None,
    custody: Mapping[str, object] | None = None,
    plan: Mapping[str, object] | None = None,
) -> Summary:
    """Write every file of the bundle into `out_dir` (created if needed) and return the summary.
    The campaign plan (`plan`, else the plan.json the run left in `out_dir`) goes into summary.json.

    `complete=False` marks a run that did not reach every test (interrupted, stopped early):
    summary.json then says `"complete": false` and its verdict is never "pass".
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / TRACES_DIR).mkdir(exist_ok=True)
    view = view if view is not None else ModelView.load()
    if plan is None and (out_dir / PLAN_NAME).exists():
        try:
            plan = json.loads((out_dir / PLAN_NAME).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            plan = None  # unreadable: the summary keeps the empty plan rather than a guess
    summary = build_summary(
        view,
        records,
        target=target,
        started=started,
        duration_s=duration_s,
        open_behaviours=open_behaviours,
        complete=complete,
        so_tries_left_end=so_tries_left_end,
        custody=custody,
        plan=plan,  # type: ignore[arg-type]
    )
    _write_records(out_dir, records)
    svg, problem = _draw_diagram(out_dir / DIAGRAM_NAME, view, set(summary.coverage.covered_transitions))
    ctx = ReportContext(
        tool_version=_tool_version(),
        pytest_version=_pytest_version(),
        python_version=platform.python_version(),
        generated=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        diagram_svg=svg,
        diagram_problem=problem,
    )
    _atomic_write(out_dir / REPORT_NAME, render_report(summary, view, records, ctx))
    _atomic_write(out_dir / SUMMARY_NAME, json.dumps(summary.to_json_dict(), indent=2) + "\n")
    write_manifest(out_dir)
    return summary


def rebuild_bundle(out_dir: Path, *, complete: bool | None = None, view: ModelView | None = None) -> Summary:
    """Write the bundle again from its own summary.json and records.jsonl (e.g. to mark it
    incomplete, or to list a junit.xml that appeared after it was written)."""
    previous = read_summary(out_dir)
    cost = previous.get("cost", {})
    return write_bundle(
        out_dir,
        load_records(out_dir / RECORDS_NAME),
        target=previous.get("target", {}),
        started=previous.get("started", ""),
        duration_s=float(previous.get("duration_s", 0.0)),
        open_behaviours=previous.get("open_behaviours", {}),
        complete=bool(previous.get("complete", True)) if complete is None else complete,
        so_tries_left_end=cost.get("so_tries_left_end") if isinstance(cost, dict) else None,
        view=view,
        custody=_custody_from_cost(cost) if isinstance(cost, dict) else None,
    )


def _custody_from_cost(cost: dict) -> dict | None:
    """The custody part of an earlier summary's cost, to write it again unchanged."""
    counters = cost.get("counters")
    if not counters and "owner_pins_in_place" not in cost:
        return None
    return {**(counters or {}), "owner_pins_in_place": cost.get("owner_pins_in_place", True), "message": cost.get("custody", "")}


def read_summary(out_dir: Path) -> dict:
    return json.loads((Path(out_dir) / SUMMARY_NAME).read_text(encoding="utf-8"))


def _write_records(out_dir: Path, records: Sequence[TestRecord]) -> None:
    _atomic_write(out_dir / RECORDS_NAME, "".join(r.to_json() + "\n" for r in records))
    # The per-worker staging files (records.records_file) are merged now; one copy is enough.
    for staged in out_dir.glob(f"{RECORDS_PREFIX}-*.jsonl"):
        staged.unlink()


def _draw_diagram(path: Path, view: ModelView, covered: set[str]) -> tuple[str | None, str]:
    if view.render_diagram is None:
        return None, "the model gave no diagram renderer"
    try:
        view.render_diagram(path, covered)
        return inline_svg(path.read_text(encoding="utf-8")), ""
    except Exception as exc:  # noqa: BLE001 - a missing drawing must not cost the evidence
        return None, f"the diagram could not be drawn ({type(exc).__name__}: {exc})"


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _tool_version() -> str:
    from hsm_lifecycle import __version__

    return __version__


def _pytest_version() -> str:
    try:
        import pytest

        return pytest.__version__
    except ImportError:  # the bundle can be rebuilt outside a pytest environment
        return "unknown"
