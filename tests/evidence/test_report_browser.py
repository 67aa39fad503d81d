"""report.html in a real browser: headless Chromium renders it, the matrix is in the DOM, and
the page asks the network for nothing.

Network check, two ways: a static scan of every src/href/url()/@import in the HTML, and
Chromium's own net log of the page's requests, with every host name resolving to nothing so a
mistake cannot leave the machine. A control page with an external image proves the net-log
check sees a page request when there is one.
"""

from __future__ import annotations

import json
import re
import shutil
import struct
import subprocess
import zlib
from html.parser import HTMLParser
from pathlib import Path

import pytest

from hsm_lifecycle.conformance.evidence.bundle import write_bundle
from hsm_lifecycle.conformance.evidence.modelview import ModelView
from hsm_lifecycle.conformance.evidence.records import TestRecord

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (scripts/install.sh installs it)")

# Chromium's own services (update checks, accounts) log this initiator; a page's requests do not.
BROWSER_INITIATOR = "not an origin"
WINDOW = (1400, 2000)


def _chromium(tmp: Path, url: str, *mode: str, netlog: Path | None = None) -> subprocess.CompletedProcess[str]:
    args = [
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-default-apps",
        "--disable-domain-reliability", "--no-pings", "--disable-breakpad",
        f"--user-data-dir={tmp / 'profile'}", f"--window-size={WINDOW[0]},{WINDOW[1]}",
        "--host-resolver-rules=MAP * ~NOTFOUND",  # nothing resolves: no request can leave
        *([f"--log-net-log={netlog}"] if netlog else []), *mode, url,
    ]
    return subprocess.run(args, capture_output=True, text=True, timeout=60, check=True)


def _page_requests(netlog: Path) -> list[str]:
    log = json.loads(netlog.read_text())
    start_job = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    return [
        e["params"]["url"]
        for e in log["events"]
        if e["type"] == start_job
        and "url" in e.get("params", {})
        and e["params"].get("initiator") != BROWSER_INITIATOR
    ]


class _MatrixParser(HTMLParser):
    """Collects the rule rows of the traceability matrix and every resource reference."""

    def __init__(self) -> None:
        super().__init__()
        self.rule_rows: list[str] = []
        self.in_matrix = False
        self.references: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "table" and a.get("id") == "traceability-matrix":
            self.in_matrix = True
        if self.in_matrix and tag == "tr" and (a.get("id") or "").startswith("rule-"):
            self.rule_rows.append(a["id"].removeprefix("rule-"))
        for name in ("src", "href", "xlink:href", "data", "poster", "srcset", "action"):
            if a.get(name):
                self.references.append(a[name])

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self.in_matrix = False


def _png_size_and_colours(png: bytes) -> tuple[int, int, int]:
    """Width, height and the number of distinct byte values in the pixel data (a blank page has few)."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, size = 8, b"", (0, 0)
    while pos < len(png):
        length, kind = struct.unpack(">I4s", png[pos : pos + 8])
        body = png[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            size = struct.unpack(">II", body[:8])
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    return size[0], size[1], len(set(zlib.decompress(idat)))


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("bundle")
    view = ModelView.load()
    outcomes = ("passed", "observed", "skipped", "failed")
    records = []
    for i, rule in enumerate(view.rules):
        t = view.transitions_for(rule.id)[:1]
        trace = f"traces/test_{rule.id}.jsonl"
        (out / "traces").mkdir(exist_ok=True)
        (out / trace).write_text('{"i": 0, "cmd": "0020008800", "rsp": "", "sw": "63CF"}\n')
        records.append(
            TestRecord(
                nodeid=f"conformance/suite/test_rules.py::test_{rule.title.replace('-', '_')}",
                rules=(rule.id,), cost="tries", outcome=outcomes[i % 4],  # type: ignore[arg-type]
                why="SW 63CE expected, 63CF seen" if outcomes[i % 4] == "failed" else "",
                trace=trace, apdus=7 + i, so_tries_spent=i % 2,
                transitions=tuple(x.id for x in t), states=tuple(x.source for x in t),
            )
        )
    write_bundle(out, records, target={"kind": "emulator", "serial": "UTCC0000001", "version": "3.2",
                                       "profile": "smartcard-hsm"},
                 started="2025-01-01T00:00:00+00:00", duration_s=4.2,
                 open_behaviours={"last-wrong-try-sw": "63C0"}, view=view)
    return out


def test_static_html_references_nothing_outside_the_bundle(bundle):
    html = (bundle / "report.html").read_text()
    parser = _MatrixParser()
    parser.feed(html)
    external = [r for r in parser.references if re.match(r"^\s*([a-z][a-z0-9+.-]*:|//)", r, re.I)]
    assert external == []
    assert not re.search(r"@import|url\(\s*['\"]?(https?:|//)", html, re.I)
    # http(s) may appear only as XML namespace names of the inlined SVG, which load nothing.
    for match in re.finditer(r"https?://[^\s\"'<>]+", html):
        before = html[max(0, match.start() - 20) : match.start()]
        assert re.search(r"xmlns(:\w+)?=[\"']$", before), f"external URL in report: {match.group()}"


def test_chromium_shows_the_matrix_and_loads_nothing_from_the_network(bundle, tmp_path):
    url = (bundle / "report.html").as_uri()
    netlog = tmp_path / "netlog.json"
    dom = _chromium(tmp_path, url, "--dump-dom", netlog=netlog).stdout
    parser = _MatrixParser()
    parser.feed(dom)
    summary = json.loads((bundle / "summary.json").read_text())
    assert parser.rule_rows == [r["id"] for r in summary["rules"]]
    assert "proposed mapping" in dom and "<svg" in dom
    assert _page_requests(netlog) == []

    png = tmp_path / "report.png"
    _chromium(tmp_path, url, f"--screenshot={png}")
    width, height, colours = _png_size_and_colours(png.read_bytes())
    assert (width, height) == WINDOW
    assert colours > 50, "the screenshot is (nearly) blank"


def test_the_net_log_check_sees_a_page_that_does_load_from_the_network(tmp_path):
    page = tmp_path / "control.html"
    page.write_text('<html><body><img src="https://example.com/logo.png"></body></html>')
    netlog = tmp_path / "netlog.json"
    _chromium(tmp_path, page.as_uri(), "--dump-dom", netlog=netlog)
    assert _page_requests(netlog) == ["https://example.com/logo.png"]
