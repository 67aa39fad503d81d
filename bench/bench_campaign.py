"""Campaign cost: what the conformance suite spends, on the emulator and on a real token.

* Emulator campaign: the transition tour plus the stateful test (200 hypothesis examples by
  default), in-process: wall time, APDUs, tries spent. Goal: under 30 s.
* Default real-token campaign: the whole suite as a user runs it without --hsm-serial, against
  the emulator presented as a real token (a used token in a state file, the owner's PINs given):
  APDUs (goal < 500), tries that did not come back (must be 0) and the SO counter at the end
  (must equal the start).

`python -m bench.bench_campaign` prints the figures; `run()` returns them.
"""

from __future__ import annotations

import contextlib
import io
import json
import tempfile
import time
from pathlib import Path

import pytest

SUITE = Path(__file__).resolve().parents[1] / "conformance" / "suite"
OWNER_PINS = ("--hsm-pin", "648219", "--hsm-so-pin", "3537363231383830")
QUIET = ("-p", "no:cacheprovider", "-p", "no:terminal", "-o", "addopts=")  # no:terminal needs addopts without -ra


def _pytest(args: list[str]) -> tuple[int, float]:
    began = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        rc = int(pytest.main(args))
    return rc, time.perf_counter() - began


def _records(evidence: Path) -> list[dict]:
    return [json.loads(line) for line in (evidence / "records.jsonl").read_text().splitlines() if line.strip()]


def _trace_apdus(path: Path) -> int:
    if not path.exists():
        return 0
    return sum(1 for line in path.read_text().splitlines() if line.strip() and len(json.loads(line)["cmd"]) > 2)


def emulator_campaign(work: Path, examples: int = 200) -> dict:
    evidence = work / "emulator"
    rc, seconds = _pytest(
        [str(SUITE), *QUIET, "-k", "test_transition_tour or test_random_sequences", "--hsm-evidence", str(evidence), f"--hsm-examples={examples}"]
    )
    records = _records(evidence)
    by_test = {r["nodeid"].split("::")[-1]: r for r in records}
    tour, stateful = by_test.get("test_transition_tour", {}), by_test.get("test_random_sequences_match_the_model", {})
    return {
        "exit_status": rc,
        "wall_s": round(seconds, 2),
        "tour_apdus": tour.get("apdus", 0),
        "tour_transitions": len(tour.get("transitions", ())),
        "stateful_examples": examples,
        "stateful_apdus": stateful.get("apdus", 0),
        "apdus": sum(r["apdus"] for r in records) + _trace_apdus(evidence / "traces" / "session-setup.jsonl"),
        "user_tries_spent": sum(r["user_tries_spent"] for r in records),
        "so_tries_spent": sum(r["so_tries_spent"] for r in records),
    }


def real_token_campaign(work: Path) -> dict:
    from hsm_lifecycle.conformance.targets import AsRealTarget
    from hsm_lifecycle.emulator import VirtualToken

    state = work / "token.json"
    token = VirtualToken.manufacture(state_path=state)
    AsRealTarget.set_up_as_owner(token)
    start = token.status()
    evidence = work / "as-real"
    rc, seconds = _pytest(
        [str(SUITE), *QUIET, "--hsm-emulator-as-real", "--hsm-emulator-state", str(state), *OWNER_PINS, "--hsm-evidence", str(evidence)]
    )
    records = _records(evidence)
    after = VirtualToken.open(state)
    after.power_on()
    end = after.status()
    outcomes: dict[str, int] = {}
    for r in records:
        outcomes[r["outcome"]] = outcomes.get(r["outcome"], 0) + 1
    return {
        "exit_status": rc,
        "wall_s": round(seconds, 2),
        "apdus": sum(r["apdus"] for r in records) + _trace_apdus(evidence / "traces" / "session-setup.jsonl"),
        "tests": outcomes,
        "so_tries_spent_and_restored": sum(r["so_tries_spent"] for r in records),
        "irreversible_tries_spent": max(0, start.so_tries - end.so_tries) + max(0, start.user_tries - end.user_tries),
        "so_tries_start": start.so_tries,
        "so_tries_end": end.so_tries,
        "owner_keys_kept": set(start.keys) <= set(end.keys),
    }


# The campaigns of the real-token issue, as `--hsm-plan` plans them on the emulator posing as a
# real token: (start, consent). Figures are the plan's (APDUs from bench.check_costs, durations
# from docs/latency.md): what the planner promises before anything is sent.
PLANNED = {
    "shipped, --serial --allow-irreversible, both PINs": ("shipped", ("serial", "--hsm-allow-irreversible", *OWNER_PINS)),
    "initialized, --serial --allow-irreversible, both PINs": ("owned", ("serial", "--hsm-allow-irreversible", *OWNER_PINS)),
    "initialized, + --allow-operator": ("owned", ("serial", "--hsm-allow-irreversible", "--hsm-allow-operator", *OWNER_PINS)),
    "initialized, 4 updates used, + --allow-operator": ("owned", ("serial", "--hsm-allow-irreversible", "--hsm-allow-operator",
                                                                  "--hsm-updates-used", "4", *OWNER_PINS)),
    "initialized, + --allow-operator --max-updates 2": ("owned", ("serial", "--hsm-allow-irreversible", "--hsm-allow-operator",
                                                                  "--hsm-max-updates", "2", *OWNER_PINS)),
    "initialized, --serial, no PINs": ("owned", ("serial",)),
    "initialized, no --serial, both PINs": ("owned", OWNER_PINS),
}


def planned_campaigns(work: Path) -> dict:
    from hsm_lifecycle.conformance.targets import AsRealTarget
    from hsm_lifecycle.emulator import VirtualToken

    out = {}
    for n, (name, (start, args)) in enumerate(PLANNED.items()):
        state = work / f"plan-{n}.json"
        used = int(args[args.index("--hsm-updates-used") + 1]) if "--hsm-updates-used" in args else 0
        token = VirtualToken.manufacture(state_path=state, updates_used=used)
        if start == "owned":
            AsRealTarget.set_up_as_owner(token)
        argv = ["--hsm-serial", token.serial, *args[1:]] if args and args[0] == "serial" else list(args)
        evidence = work / f"plan-{n}"
        rc, seconds = _pytest([str(SUITE), *QUIET, "--hsm-emulator-as-real", "--hsm-emulator-state", str(state),
                               *argv, "--hsm-plan", "--hsm-evidence", str(evidence)])  # fmt: skip
        plan = json.loads((evidence / "plan.json").read_text())
        steps = [s for seg in plan["segments"] for s in seg["steps"]]
        out[name] = {
            "exit_status": rc,
            "planning_s": round(seconds, 2),
            "checks": sum(1 for s in steps if not s["check"].startswith("firmware update")),
            "rules": len({r for s in steps for r in s["rules"]}),
            "not_run": len(plan["not_run"]),
            "segments": len(plan["segments"]),
            **{k: plan["totals"][k] for k in ("apdus", "user_tries", "so_tries", "wipes", "so_blocks")},
            "firmware_updates": plan["firmware_updates"],
            "checks_placed": f"{sum(1 for c in plan['checks'] if c['test'])} of {len(plan['checks'])}",
            "estimated_s": round(plan["totals"]["seconds"], 1),
            "order": [s["check"].split("::")[-1] for s in steps],
        }
    return out


def run(examples: int = 200) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-campaign-") as tmp:
        work = Path(tmp)
        return {"emulator": emulator_campaign(work, examples), "real_token_default": real_token_campaign(work)}


def main() -> None:
    import sys

    if "--plans" in sys.argv:
        with tempfile.TemporaryDirectory(prefix="bench-plans-") as tmp:
            for name, f in planned_campaigns(Path(tmp)).items():
                print(f"{name}: {f['checks']} tests, {f['checks_placed']} checks placed, {f['rules']} rules, {f['not_run']} not run, {f['segments']} segments, "
                      f"{f['apdus']} APDUs, tries user {f['user_tries']} / SO {f['so_tries']}, {f['wipes']} wipes, "
                      f"{f['so_blocks']} SO blocks, {f['firmware_updates']} updates, ~{f['estimated_s']} s on a Nitrokey HSM 2 "
                      f"(planned in {f['planning_s']} s)")
                print("   order: " + ", ".join(f["order"]))
        return
    figures = run()
    emu, real = figures["emulator"], figures["real_token_default"]
    print("emulator campaign (transition tour + stateful test):")
    print(f"  wall time {emu['wall_s']} s (goal < 30 s), exit status {emu['exit_status']}")
    print(f"  tour: {emu['tour_transitions']} transitions in {emu['tour_apdus']} APDUs")
    print(f"  stateful: {emu['stateful_examples']} examples in {emu['stateful_apdus']} APDUs")
    print(f"  tries spent: user {emu['user_tries_spent']}, SO {emu['so_tries_spent']}")
    print("default real-token campaign (emulator presented as a real token, no --hsm-serial):")
    print(f"  APDUs {real['apdus']} (goal < 500), wall time {real['wall_s']} s, tests {real['tests']}")
    print(f"  tries not given back: {real['irreversible_tries_spent']} (must be 0)")
    print(f"  SO counter: {real['so_tries_start']} at the start, {real['so_tries_end']} at the end; owner's keys kept: {real['owner_keys_kept']}")


if __name__ == "__main__":
    main()
