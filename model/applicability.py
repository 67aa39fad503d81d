"""Which model transitions a device can take at all, given its observed open behaviours.

A few transitions exist only on devices of one kind: a refused RESET RETRY COUNTER (option
0x0001 off) either spends an SO try or not; a device either enforces the retries-per-PIN-length
cap or not. On a device observed to be of the other kind such a transition is out of scope:
it counts neither as covered nor as missed (summary.json's coverage.transitions.applicable).
Unobserved behaviours leave both kinds in scope. tests/model checks this table against the
explorer, so it cannot drift from the transition guards.
"""

from __future__ import annotations

from collections.abc import Mapping

from hsm_lifecycle.model.profiles import RETRIES_BY_PIN_LENGTH, RRC_DISABLED

# transition -> (open behaviour, the value the transition needs)
NEEDS: dict[str, tuple[str, bool]] = {
    **{t: (RRC_DISABLED, False) for t in ("I16", "U13")},
    **{t: (RRC_DISABLED, True) for t in ("I17", "I18", "U14", "U15")},
    **{t: (RETRIES_BY_PIN_LENGTH, True) for t in ("S15", "F15", "I45", "U29")},
}
MEANING: dict[tuple[str, bool], str] = {
    (RRC_DISABLED, False): "a refused RESET RETRY COUNTER with a wrong SO-PIN spends no SO try",
    (RRC_DISABLED, True): "a refused RESET RETRY COUNTER with a wrong SO-PIN spends an SO try",
    (RETRIES_BY_PIN_LENGTH, True): "the device enforces the retries-per-PIN-length cap",
}


def resolved_from_report(open_behaviours: Mapping[str, str]) -> dict[str, bool]:
    """The state-affecting values the bundle's open_behaviours text reports (observe.py's wording)."""
    out: dict[str, bool] = {}
    rrc = open_behaviours.get(RRC_DISABLED, "")
    if "spends no" in rrc:
        out[RRC_DISABLED] = False
    elif "spends" in rrc:
        out[RRC_DISABLED] = True
    cap = open_behaviours.get(RETRIES_BY_PIN_LENGTH, "").strip().lower()
    if cap.startswith(("true", "false")):
        out[RETRIES_BY_PIN_LENGTH] = cap.startswith("true")
    return out


def out_of_scope(resolved: Mapping[str, bool]) -> dict[str, str]:
    """Transition id -> why this device cannot take it (empty when nothing was observed)."""
    out: dict[str, str] = {}
    for tid, (behaviour, needs) in NEEDS.items():
        if behaviour in resolved and resolved[behaviour] != needs:
            out[tid] = f"only on a device where {MEANING[(behaviour, needs)]}; this one was observed otherwise ({behaviour})"
    return out
