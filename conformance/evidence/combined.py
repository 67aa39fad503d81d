"""combined-summary.json: the verdicts of a fleet run (one token per xdist worker, conformance.fleet).

```
DIR/combined-summary.json   per token: worker, target, serial, bundle, verdict, rules failed; overall verdict
DIR/<serial>/               that token's complete evidence bundle (its own MANIFEST.sha256);
                            named after the xdist worker (gw0, ...) when the serial is unknown
DIR/MANIFEST.sha256         a sha256sum line for every file above, written last
```

Each token's bundle is written by the ordinary bundle writer from that token's records; this
module only reads the bundles' summary.json files back, so the combined verdicts can never
disagree with the bundles.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from hsm_lifecycle.conformance.evidence.bundle import DIAGRAM_NAME, RECORDS_NAME, REPORT_NAME, SUMMARY_NAME, read_summary
from hsm_lifecycle.conformance.evidence.manifest import MANIFEST_NAME, write_manifest
from hsm_lifecycle.conformance.evidence.summary import SCHEMA as BUNDLE_SCHEMA

SCHEMA = "hsm-lifecycle/fleet/1"
COMBINED_NAME = "combined-summary.json"
STAGING_RE = re.compile(r"gw\d+")  # a worker's folder while the run goes on


@dataclass(frozen=True)
class TokenEntry:
    """One token of the fleet, as its own bundle's summary.json says."""

    worker: str
    bundle: str  # the bundle's folder, relative to the fleet's evidence folder
    target: dict[str, str]
    verdict: str
    complete: bool
    rules_failed: tuple[str, ...]
    consent: str
    apdus: int

    @classmethod
    def from_bundle(cls, root: Path, bundle: Path, worker: str, consent: str) -> "TokenEntry":
        summary = read_summary(bundle)
        return cls(
            worker=worker,
            bundle=bundle.relative_to(root).as_posix(),
            target={str(k): str(v) for k, v in summary.get("target", {}).items()},
            verdict=str(summary.get("verdict", "fail")),
            complete=bool(summary.get("complete", False)),
            rules_failed=tuple(r["id"] for r in summary.get("rules", []) if r.get("verdict") == "fail"),
            consent=consent,
            apdus=int(summary.get("cost", {}).get("apdus", 0)),
        )

    def to_json(self) -> dict[str, object]:
        return {
            "worker": self.worker,
            "target": self.target,
            "serial": self.target.get("serial", ""),
            "bundle": self.bundle,
            "verdict": self.verdict,
            "complete": self.complete,
            "rules_failed": list(self.rules_failed),
            "consent": self.consent,
            "apdus": self.apdus,
        }


def overall_verdict(entries: Sequence[TokenEntry], expected: int) -> str:
    """pass only if every token of the fleet left a bundle and every bundle passed; fail if a
    token failed a rule or left no bundle; else error (a suite error on some token) or partial."""
    verdicts = {e.verdict for e in entries}
    if len(entries) != expected or not entries or "fail" in verdicts:
        return "fail"
    if verdicts == {"pass"}:
        return "pass"
    return "error" if "error" in verdicts else "partial"


def write_combined(
    root: Path,
    entries: Sequence[TokenEntry],
    *,
    expected: int,
    started: str,
    duration_s: float,
    serials_not_found: Sequence[str] = (),
) -> dict[str, object]:
    """combined-summary.json, then the fleet folder's manifest (over every token's files too)."""
    doc: dict[str, object] = {
        "schema": SCHEMA,
        "started": started,
        "duration_s": round(duration_s, 3),
        "tokens": [e.to_json() for e in entries],
        "serials_not_found": list(serials_not_found),
        "verdict": overall_verdict(entries, expected),
        "complete": len(entries) == expected and all(e.complete for e in entries),
    }
    tmp = root / (COMBINED_NAME + ".tmp")
    tmp.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, root / COMBINED_NAME)
    write_manifest(root)
    return doc


def read_combined(root: Path) -> dict:
    return json.loads((Path(root) / COMBINED_NAME).read_text(encoding="utf-8"))


def bundle_name(serial: str, worker: str, taken: set[str]) -> str:
    """A token's folder: its serial when known and free (a serial is the token's identity,
    stable across runs), else the worker id."""
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", serial).strip("._")
    if safe and safe not in taken and not STAGING_RE.fullmatch(safe):
        return safe
    return worker


def _is_ours(summary_path: Path) -> bool:
    try:
        return json.loads(summary_path.read_text(encoding="utf-8")).get("schema") == BUNDLE_SCHEMA
    except (OSError, ValueError, AttributeError):
        return False


def clear_fleet_output(root: Path, *, single_bundle_too: bool) -> None:
    """Remove what an earlier fleet run left in `root` (combined summary and its manifest, token
    bundles, worker folders), so a new run's manifest lists only its own files.
    `single_bundle_too`: also an earlier single-token bundle's files at the top (a fleet's folder
    holds none). Folders and files that are not ours are left alone."""
    if not root.is_dir():
        return
    if (root / COMBINED_NAME).exists():
        (root / COMBINED_NAME).unlink()
        (root / MANIFEST_NAME).unlink(missing_ok=True)
    for child in root.iterdir():
        if child.is_dir() and not child.is_symlink() and (STAGING_RE.fullmatch(child.name) or _is_ours(child / SUMMARY_NAME)):
            shutil.rmtree(child)
    if single_bundle_too and _is_ours(root / SUMMARY_NAME):
        for name in (SUMMARY_NAME, REPORT_NAME, DIAGRAM_NAME, RECORDS_NAME, MANIFEST_NAME):
            (root / name).unlink(missing_ok=True)
