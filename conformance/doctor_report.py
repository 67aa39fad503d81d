"""`hsm-lifecycle doctor --json`: the diagnosis as data, for scripts that check many tokens.

One JSON object, schema `hsm-lifecycle/doctor/1` (the JSON Schema ships as
`conformance/data/doctor.schema.json`; docs/doctor-json.md explains every field): the run's
exit code and one entry per reader asked about, either a token's reading (state, counters,
what the owner can and cannot do, what would make it worse) or the sentence saying why no
token was read there.

Exit codes (the same with and without --json): 0 every token read is healthy, 1 some token is
one mistake away from a loss, 2 a usage mistake, 3 no token where one was asked for. A danger
outranks a missing token: it is the one a fleet administrator must act on first.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from typing import Any

from hsm_lifecycle.conformance.danger_words import DangerGroup, losses_text, ways_out_text
from hsm_lifecycle.conformance.doctor import OPTION_NAMES, ActionVerdict, Diagnosis
from hsm_lifecycle.model.dangers import Danger

SCHEMA = "hsm-lifecycle/doctor/1"
SCHEMA_FILE = "doctor.schema.json"

HEALTHY = 0
DANGER = 1
USAGE = 2
NO_TOKEN = 3


@dataclass(frozen=True)
class Checked:
    """What doctor found in one reader: a diagnosis, or why there was no token to diagnose."""

    reader: str | None
    diagnosis: Diagnosis | None = None
    error: str = ""

    @property
    def exit_code(self) -> int:
        if self.diagnosis is None:
            return NO_TOKEN
        return DANGER if self.diagnosis.one_mistake_away else HEALTHY


def exit_code(checked: list[Checked]) -> int:
    """1 if any token is one mistake from a loss, else 3 if any reader held no token, else 0."""
    codes = {c.exit_code for c in checked} or {NO_TOKEN}
    return DANGER if DANGER in codes else NO_TOKEN if NO_TOKEN in codes else HEALTHY


def report(checked: list[Checked], profile: str) -> dict[str, Any]:
    return {
        "schema": SCHEMA,
        "profile": profile,
        "exit_code": exit_code(checked),
        "tokens": [_entry(c) for c in checked],
    }


def load_schema() -> dict[str, Any]:
    """The JSON Schema of `report`, as shipped in the package."""
    text = resources.files("hsm_lifecycle.conformance").joinpath("data", SCHEMA_FILE).read_text("utf-8")
    return json.loads(text)


def _entry(c: Checked) -> dict[str, Any]:
    if c.diagnosis is None:
        return {"reader": c.reader, "found": False, "error": c.error, "exit_code": c.exit_code}
    d = c.diagnosis
    r = d.reading
    ident = r.identity
    primary = d.dangers.state
    return {
        "reader": r.reader,
        "found": True,
        "exit_code": c.exit_code,
        "atr": r.atr.hex().upper(),
        "version": r.version,
        "options": r.options,
        "option_names": [name for bit, name in OPTION_NAMES.items() if (r.options or 0) & bit],
        "identity": None
        if ident is None
        else {
            "serial": ident.serial,
            "device_chr": ident.device_chr,
            "dica_chr": ident.dica_chr,
            "root_chr": ident.root_chr,
            "verified": ident.verified,
            "genuine": ident.genuine,
            "problem": ident.problem,
        },
        "state": {
            "abstract": list(d.states),
            "meaning": d.meaning,
            "extended": primary.to_dict(),
        },
        "counters": {
            "so_sw": f"{r.so_sw:04X}",
            "user_sw": f"{r.user_sw:04X}",
            "initialized": r.initialized,
            "so_tries": r.so_tries if r.initialized else None,
            "user_tries": r.user_tries if r.initialized else None,
            "user_blocked": r.user_blocked,
            "transport_pin": r.transport_pin,
            "keys": None if r.key_ids is None else len(r.key_ids),
            "key_ids": None if r.key_ids is None else list(r.key_ids),
        },
        "one_mistake_away": d.one_mistake_away,
        "first_warnings": list(d.first_lines),
        "can": [_action(v) for v in d.can],
        "cannot": [_action(v) for v in d.cannot],
        "no_factory_reset": d.no_factory_reset,
        "dangers": [_danger(x, primary.keys) for x in d.dangers.dangers],
        "losses_already": list(d.dangers.suffered),
        "danger_caveats": list(d.danger_caveats),
        "danger_profile": d.dangers.profile,
        "key_backup": d.key_backup,
        "warnings": list(d.warnings),
        "apdus_sent": len(r.exchanges),
    }


def _action(v: ActionVerdict) -> dict[str, Any]:
    p = v.prediction
    return {
        "action": v.action.key,
        "label": v.action.label,
        "admitted": v.admitted,
        "needs": v.action.needs,
        "tool": v.action.tool,
        "cost": p.cost,
        "rules": list(p.rules),
        "transition": p.transition,
        "output": p.output,
        "consequences": list(p.changes),
        "maybe": list(p.maybe),
        "depends": p.depends or None,
        "caveat": v.caveat,
    }


def _danger(x: Danger, keys: int) -> dict[str, Any]:
    alone = DangerGroup(x.route, (x,))
    return {
        "loss": x.loss.id,
        "title": x.loss.title,
        "meaning": x.loss.meaning,
        "rules": list(x.loss.rules),
        "imminent": x.imminent,
        "by_mistakes_alone": x.by_mistakes_alone,
        "mistakes": x.route.mistakes,
        "actions": x.route.actions,
        "steps_away": x.steps_away,
        "summary": x.route.summary,
        "sentence": f"{x.route.summary} away from {losses_text(alone, keys, 'doing')}: {ways_out_text(alone, keys)}",
        "route": [str(c) for c in x.route.steps],
        "runs": [{"label": r.label, "kind": r.kind, "count": r.count, "tries_left": r.tries_left} for r in x.route.runs],
        "depends": list(x.route.depends),
        "ways_out": [
            {
                "action": w.key,
                "label": w.label,
                "admitted": w.admitted,
                "rules": list(w.rules),
                "losses": list(w.losses),
                "counted_update": w.counted_update,
            }
            for w in x.ways_out
        ],
    }
