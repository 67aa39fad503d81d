"""report.html: the evidence report for people, one self-contained file.

No external CSS, scripts, fonts or images: the state diagram is inlined as SVG and every link
(traces, lifecycle.svg) is relative, so the report opens offline from the bundle folder.
The traceability matrix follows prior-art §4: rule → SFR (proposed) → model transitions →
tests → verdict → traces.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape
from urllib.parse import quote

from hsm_lifecycle.conformance.evidence.modelview import ModelView, TransitionInfo
from hsm_lifecycle.conformance.evidence.records import TestRecord
from hsm_lifecycle.conformance.evidence.summary import Summary
from hsm_lifecycle.conformance.evidence.verdicts import VERDICTS, RuleVerdict
from hsm_lifecycle.model.cost import COST_CLASSES
from hsm_lifecycle.protocol import sw_from_hex, sw_meaning

SFR_CHECK = "Check it against the Security Target before citing it in an evaluation."


# Taken transitions listed in a matrix cell before the rest is folded away.
_TRANSITIONS_SHOWN = 6


@dataclass(frozen=True)
class ReportContext:
    """What the report shows besides the summary: provenance and the rendered diagram."""

    tool_version: str
    pytest_version: str
    python_version: str
    generated: str  # ISO-8601
    diagram_svg: str | None  # the SVG markup of lifecycle.svg, or None
    diagram_problem: str = ""  # why there is no diagram


def render_report(summary: Summary, view: ModelView, records: Sequence[TestRecord], ctx: ReportContext) -> str:
    sections = [
        _header(summary, ctx),
        _matrix(summary, view, records),
        _checks(summary),
        _errors(summary),
        _coverage(summary, view, ctx),
        _cost(summary, records),
        _open_behaviours(summary),
        _tests(records),
        _footer(),
    ]
    title = f"hsm-lifecycle evidence: {summary.target.get('kind', '')} {summary.target.get('serial', '')}".strip()
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{escape(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
        + "\n".join(sections)
        + "\n</body>\n</html>\n"
    )


def overall_label(summary: Summary) -> str:
    if not summary.complete:
        return "INCOMPLETE"
    return summary.verdict.upper()


def _header(summary: Summary, ctx: ReportContext) -> str:
    t = summary.target
    counts = Counter(r.verdict for r in summary.rules)
    facts = [
        ("Target", f"{t.get('kind', '')}" + (f" — reader {t['reader']}" if t.get("reader") else "")),
        ("Device serial", t.get("serial", "") or "unknown"),
        *([("xdist worker", f"{t['worker']} (one token per worker; see ../combined-summary.json)")] if t.get("worker") else []),
        ("Device version", t.get("version", "") or "unknown"),
        ("Profile", t.get("profile", "") or "unknown"),
        ("Started", summary.started),
        ("Duration", f"{summary.duration_s:.1f} s"),
        ("Tool", f"hsm-lifecycle {ctx.tool_version} (pytest {ctx.pytest_version}, Python {ctx.python_version})"),
        ("Report written", ctx.generated),
    ]
    rows = "".join(f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in facts)
    tally = " · ".join(f"{counts.get(v, 0)} {v}" for v in VERDICTS)
    label = overall_label(summary)
    incomplete = (
        '<p class="warn" id="incomplete">This run was interrupted before every test ran: the bundle is '
        "partial, and its verdict cannot be pass.</p>"
        if not summary.complete
        else ""
    )
    return (
        f'<header><h1>Conformance evidence <span class="badge v-{escape(label.lower())}" id="overall-verdict">'
        f"{escape(label)}</span></h1>"
        f'<p class="headline" id="headline">{escape(summary.headline)}</p>'
        f'<p class="tally">{len(summary.rules)} rules: {escape(tally)}</p>{incomplete}'
        f'<table class="facts">{rows}</table></header>'
    )


def _matrix(summary: Summary, view: ModelView, records: Sequence[TestRecord]) -> str:
    outcome_of = {r.nodeid: r.outcome for r in records}
    trace_of = {r.nodeid: r.trace for r in records if r.trace}
    covered = set(summary.coverage.covered_transitions)
    rows = "".join(_matrix_row(v, view, outcome_of, trace_of, covered) for v in summary.rules)
    return (
        '<section id="matrix"><h2>Traceability matrix</h2>'
        f'<p class="caveat" id="sfr-caveat"><strong>Caveat.</strong> {escape(view.sfr_caveat)} {escape(SFR_CHECK)}</p>'
        '<table class="matrix" id="traceability-matrix"><thead><tr>'
        "<th>Rule</th><th>Statement</th><th>SFR (proposed)</th><th>Model transitions</th>"
        "<th>Tests</th><th>Verdict</th><th>Traces</th></tr></thead><tbody>"
        f"{rows}</tbody></table></section>"
    )


def _matrix_row(
    verdict: RuleVerdict, view: ModelView, outcome_of: dict[str, str], trace_of: dict[str, str], covered: set[str]
) -> str:
    rule = view.rule(verdict.id)
    statement = (
        f"{escape(rule.statement)}<div class='meta'>authority: {escape(rule.authority)}"
        + (f" · source: {escape(rule.source)}" if rule.source else "")
        + "</div>"
        if rule
        else "<em>not in the model's rule catalog</em>"
    )
    sfrs = "<br>".join(escape(s) for s in rule.sfrs) if rule else ""
    transitions = _rule_transitions(view.transitions_for(verdict.id), covered)
    tests = "".join(
        f"<li><span class='pill o-{escape(outcome_of.get(n, 'unknown'))}'>{escape(outcome_of.get(n, '?'))}</span> "
        f"<code>{escape(n)}</code></li>"
        for n in verdict.tests
    )
    # One link per test, named by the test, so a row reads test → trace.
    traces = "<br>".join(
        f"<a href='{_href(trace_of[n])}' title='{escape(trace_of[n])}'>{escape(n.rsplit('::', 1)[-1])}</a>"
        for n in verdict.tests
        if n in trace_of
    )
    why = f"<div class='why'>{escape(verdict.why)}</div>" if verdict.why else ""
    return (
        f"<tr id='rule-{escape(verdict.id)}' class='rule-row'>"
        f"<td><strong>{escape(verdict.id)}</strong><br>{escape(verdict.title)}</td>"
        f"<td class='statement'>{statement}</td><td>{sfrs}</td><td>{transitions or '—'}</td>"
        f"<td><ul class='tests'>{tests}</ul>{'' if tests else '—'}</td>"
        f"<td><span class='badge v-{escape(verdict.verdict)}'>{escape(verdict.verdict)}</span>{why}</td>"
        f"<td class='traces'>{traces or '—'}</td></tr>"
    )


def _rule_transitions(transitions: Sequence[TransitionInfo], covered: set[str]) -> str:
    """The rule's model transitions: the ones this run took listed, the rest folded away."""
    if not transitions:
        return ""
    hit = [t for t in transitions if t.id in covered]
    missed = [t for t in transitions if t.id not in covered]

    def item(t: TransitionInfo) -> str:
        return f"<li><code>{escape(t.id)}</code> <span class='meta'>{escape(t.source)} → {escape(t.dest)}: {escape(t.command)}</span></li>"

    head = f"<div class='meta'>{len(hit)} of {len(transitions)} taken</div>"
    shown, more = hit[:_TRANSITIONS_SHOWN], hit[_TRANSITIONS_SHOWN:]
    taken = f"<ul class='tr'>{''.join(item(t) for t in shown)}</ul>" if shown else ""
    if more:
        taken += f"<details><summary>{len(more)} more taken</summary><ul class='tr'>{''.join(item(t) for t in more)}</ul></details>"
    rest = (
        f"<details><summary>{len(missed)} not taken</summary><ul class='tr'>{''.join(item(t) for t in missed)}</ul></details>"
        if missed
        else ""
    )
    return head + taken + rest


def _checks(summary: Summary) -> str:
    """Every check of every rule: what part of the statement, what the device must answer,
    the verdict and the traces that decided it."""
    rows = []
    for rule in summary.rules:
        for c in rule.checks:
            traces = " ".join(_trace_link(t) for t in c.traces)
            why = f"<div class='why'>{escape(c.why)}</div>" if c.why else ""
            rows.append(
                f"<tr id='check-{escape(c.id)}' class='check-row'><td><code>{escape(c.id)}</code></td>"
                f"<td>{escape(c.part)}</td><td>{escape(c.observation)}</td>"
                f"<td><span class='badge v-{escape(c.verdict)}'>{escape(c.verdict)}</span>{why}</td><td>{traces}</td></tr>"
            )
    return (
        "<section id='checks'><h2>Checks</h2><p>A rule passes only when every one of its checks ran against "
        "the device's answers and passed; a check nobody decided is <em>not-run</em>, and the rule is then at most "
        "<em>partial</em>.</p><table class='checks'><thead><tr><th>Check</th><th>Part of the rule</th>"
        "<th>Decided by</th><th>Verdict</th><th>Traces</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table></section>"
    )


def _errors(summary: Summary) -> str:
    if not summary.errors:
        return ""
    items = "".join(f"<li>{escape(e)}</li>" for e in summary.errors)
    return (
        "<section id='errors'><h2>Suite errors</h2><p class='warn'>These tests broke on the suite's side (an "
        "exception, a crash while planning, a Hypothesis health or consistency error). They are not the device's "
        f"failures, and they keep the run from passing.</p><ul>{items}</ul></section>"
    )


def _coverage(summary: Summary, view: ModelView, ctx: ReportContext) -> str:
    cov = summary.coverage
    covered_states = set(cov.covered_states)
    states = "".join(
        f"<li class='{'hit' if s in covered_states else 'miss'}'>{'✔' if s in covered_states else '✘'} {escape(s)}</li>"
        for s in view.states
    )
    covered_transitions = set(cov.covered_transitions)
    rows = "".join(
        f"<tr class='{'hit' if t.id in covered_transitions else 'miss'}'><td><code>{escape(t.id)}</code></td>"
        f"<td>{escape(t.source)} → {escape(t.dest)}</td><td>{escape(t.command)}</td>"
        f"<td>{escape(', '.join(t.rules))}</td><td>{'covered' if t.id in covered_transitions else 'not covered'}</td></tr>"
        for t in view.transitions
    )
    if ctx.diagram_svg:
        # Fitted to the page for the overview; a CSS-only switch (no script) shows it at full
        # size in a scrolling box, where every label is readable.
        diagram = (
            "<figure class='diagram'><input type='checkbox' id='diagram-zoom'>"
            "<label for='diagram-zoom'>show at full size</label>"
            f"<div class='scroll'>{ctx.diagram_svg}</div><figcaption>Covered transitions are drawn bold, the others "
            "dashed; the same drawing is <a href='lifecycle.svg'>lifecycle.svg</a>.</figcaption></figure>"
        )
    else:
        diagram = f"<p class='warn'>No diagram: {escape(ctx.diagram_problem or 'it could not be drawn')}.</p>"
    s, tr = cov.to_summary()["states"], cov.to_summary()["transitions"]
    scope = ""
    if cov.out_of_scope:
        items = "".join(f"<li><code>{escape(tid)}</code>: {escape(why)}</li>" for tid, why in cov.out_of_scope)
        scope = f"<div id='out-of-scope'><h3>Out of scope for this device</h3><ul>{items}</ul></div>"
    return (
        "<section id='coverage'><h2>Coverage of the model</h2>"
        f"<p><strong>States:</strong> {s['covered']} of {s['total']} · "
        f"<strong>Transitions:</strong> {tr['covered']} of {tr['applicable']} applicable ({tr['total']} in the model)</p>"
        f"<ul class='states'>{states}</ul>{diagram}{scope}"
        "<details><summary>Every transition of the model</summary><table class='transitions'><thead><tr>"
        "<th>Transition</th><th>From → to</th><th>Command</th><th>Rules</th><th>This run</th></tr></thead>"
        f"<tbody>{rows}</tbody></table></details></section>"
    )


def _cost(summary: Summary, records: Sequence[TestRecord]) -> str:
    c = summary.cost
    if c.so_tries_left_end is not None:
        left = str(c.so_tries_left_end)
    else:
        left = "n/a (fresh token per test)" if c.fresh_per_test else "not queried"
    by_class = Counter(r.cost for r in records)
    classes = "".join(
        f"<tr><td>{escape(k)}</td><td>{by_class.get(k, 0)}</td></tr>" for k in COST_CLASSES if by_class.get(k)
    )
    return (
        "<section id='cost'><h2>What the run cost the device</h2><table class='facts'>"
        f"<tr><th>APDUs exchanged</th><td>{c.apdus}</td></tr>"
        f"<tr><th>User-PIN tries spent</th><td>{c.user_tries_spent}</td></tr>"
        f"<tr><th>SO-PIN tries spent</th><td>{c.so_tries_spent}</td></tr>"
        f"<tr><th>SO-PIN tries left at the end</th><td>{escape(left)}</td></tr></table>"
        "<h3>Tests per cost class</h3><table class='facts'><tr><th>class</th><th>tests</th></tr>"
        f"{classes}</table></section>"
    )


def _open_behaviours(summary: Summary) -> str:
    if not summary.open_behaviours:
        body = "<p>No open behaviour was observed in this run.</p>"
    else:
        rows = "".join(
            f"<tr><th>{escape(k)}</th><td>{_shown_value(v)}</td></tr>" for k, v in summary.open_behaviours.items()
        )
        body = f"<table class='facts' id='open-behaviours-table'>{rows}</table>"
    return (
        "<section id='open-behaviours'><h2>Open behaviours observed</h2>"
        "<p>What the device does where no public source says what it must do. Reported, not judged.</p>"
        f"{body}</section>"
    )


def _shown_value(value: str) -> str:
    """An observed value; a status word also by name (summary.json keeps the hex only)."""
    sw = sw_from_hex(value)
    meaning = f" {escape(sw_meaning(sw))}" if sw is not None else ""
    return f"<code>{escape(value)}</code>{meaning}"


def _tests(records: Sequence[TestRecord]) -> str:
    rows = "".join(
        f"<tr><td><code>{escape(r.nodeid)}</code></td><td>{escape(', '.join(r.rules))}</td><td>{escape(r.cost)}</td>"
        f"<td><span class='pill o-{escape(r.outcome)}'>{escape(r.outcome)}</span></td><td>{r.apdus}</td>"
        f"<td>{r.user_tries_spent}/{r.so_tries_spent}</td><td>{r.duration_s:.2f}</td>"
        f"<td>{_trace_link(r.trace)}</td>"
        f"<td class='why'>{escape(r.why)}</td></tr>"
        for r in records
    )
    return (
        f"<section id='tests'><h2>Tests ({len(records)})</h2><table class='tests-table'><thead><tr>"
        "<th>Test</th><th>Rules</th><th>Cost class</th><th>Outcome</th><th>APDUs</th><th>Tries user/SO</th>"
        f"<th>Seconds</th><th>Trace</th><th>Details</th></tr></thead><tbody>{rows}</tbody></table></section>"
    )


def _footer() -> str:
    return (
        "<footer><p>Check that this bundle is unaltered: in its folder run "
        "<code>sha256sum -c MANIFEST.sha256</code>. Replay a trace against a device: "
        "<code>hsm-lifecycle replay traces/&lt;file&gt;.jsonl --target …</code>. "
        "How to read this report: docs/report-guide.md of hsm-lifecycle.</p></footer>"
    )


def inline_svg(svg_text: str) -> str:
    """SVG markup fit to sit inside HTML: no XML prolog, no DOCTYPE (graphviz's names an
    external DTD), no comments; scaled to the page width."""
    text = re.sub(r"<\?xml[^>]*\?>", "", svg_text)
    text = re.sub(r"<!DOCTYPE[^>]*>", "", text, flags=re.IGNORECASE)
    text = re.sub(r"<!--.*?-->", "", text, flags=re.DOTALL)
    text = re.sub(r"<svg\b", '<svg role="img" aria-label="lifecycle state diagram"', text, count=1)
    return text.strip()


def _href(relpath: str) -> str:
    return escape(quote(relpath, safe="/._-"), quote=True)


def _trace_link(relpath: str | None) -> str:
    return f"<a href='{_href(relpath)}'>trace</a>" if relpath else "—"


_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",Arial,sans-serif;margin:24px;
color:#1d2329;line-height:1.4;font-size:14px;max-width:1600px}
h1{font-size:24px;margin:0 0 8px}h2{font-size:19px;margin:28px 0 8px;border-bottom:2px solid #d0d7de;padding-bottom:4px}
h3{font-size:15px}
table{border-collapse:collapse;margin:6px 0}th,td{border:1px solid #d0d7de;padding:5px 8px;vertical-align:top;text-align:left}
thead th{background:#f3f5f7;position:sticky;top:0}
table.facts th{background:#f7f8fa;font-weight:600;white-space:nowrap}
table.matrix{width:100%;table-layout:fixed}
table.matrix th:nth-child(1){width:9%}table.matrix th:nth-child(2){width:24%}table.matrix th:nth-child(3){width:8%}
table.matrix th:nth-child(4){width:17%}table.matrix th:nth-child(5){width:20%}table.matrix th:nth-child(6){width:13%}
table.matrix th:nth-child(7){width:9%}table.matrix td{overflow-wrap:anywhere}
code{font-family:ui-monospace,"DejaVu Sans Mono",Menlo,Consolas,monospace;font-size:12px}
.meta{color:#57606a;font-size:12px}.why{color:#57606a;font-size:12px;margin-top:4px}
ul.tr{margin:2px 0;padding-left:0;list-style:none}ul.tr li{margin:1px 0}
ul.tests{margin:0;padding-left:0;list-style:none}ul.tests li{margin:2px 0;word-break:break-all}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;font-weight:700;font-size:12px;color:#fff}
h1 .badge{font-size:16px;vertical-align:middle}
.v-partial{background:#9a6700}.v-error{background:#8250df}.v-pass{background:#1a7f37}.v-fail{background:#cf222e}.v-observed{background:#0969da}.v-not-run{background:#6e7781}
.v-incomplete{background:#bc4c00}
.pill{display:inline-block;min-width:52px;text-align:center;border-radius:4px;font-size:11px;padding:0 4px;border:1px solid}
.o-passed{color:#1a7f37;border-color:#1a7f37}.o-failed,.o-error{color:#cf222e;border-color:#cf222e}
.o-skipped{color:#6e7781;border-color:#6e7781}.o-observed{color:#0969da;border-color:#0969da}
.caveat{background:#fff8c5;border:1px solid #d4a72c;padding:8px 10px;border-radius:4px}
.warn{background:#ffebe9;border:1px solid #cf222e;padding:8px 10px;border-radius:4px}
ul.states{display:flex;flex-wrap:wrap;gap:6px 18px;list-style:none;padding:0}
li.hit,tr.hit td:last-child{color:#1a7f37}li.miss,tr.miss td:last-child{color:#cf222e}
figure.diagram{margin:10px 0;border:1px solid #d0d7de;padding:8px}
figure.diagram div.scroll{overflow:auto}figure.diagram svg{width:100%;height:auto}
#diagram-zoom:checked~div.scroll{max-height:900px}#diagram-zoom:checked~div.scroll svg{width:auto;height:auto}
figure.diagram label{font-size:12px;color:#0969da;cursor:pointer;margin-left:4px}
td.traces a{font-size:12px}
table.tests-table{width:100%;table-layout:fixed}table.tests-table td{overflow-wrap:anywhere}
table.tests-table th:nth-child(1){width:26%}table.tests-table th:nth-child(2){width:12%}
table.tests-table th:nth-child(3){width:8%}table.tests-table th:nth-child(4){width:7%}
table.tests-table th:nth-child(5){width:5%}table.tests-table th:nth-child(6){width:7%}
table.tests-table th:nth-child(7){width:6%}table.tests-table th:nth-child(8){width:5%}
footer{margin-top:32px;color:#57606a;font-size:12px}
"""
