"""The campaign as one walk on one persistent token, measured over PC/SC: the emulator served
through pcscd (`emulate --portal --power-rig`), set up by its owner with OpenSC's tools only
(sc-hsm-tool --initialize, pkcs11-tool --keypairgen), driven as `pcsc:READER`, from shipped and
from initialized, with each consent of the real-token work. Per campaign: APDUs, tries spent
(from the bundle), SO tries left at the end, firmware updates (from the plan), wall time, rules
judged; and R17 alone through the power-cut rig (APDUs and seconds per tear).

Needs pcscd with vsmartcard's vpcd readers (source scripts/pcscd.sh && pcscd_start).
`python -m bench.bench_walk [--examples N]` prints the figures.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SUITE = Path(__file__).resolve().parents[1] / "conformance" / "suite"
PINS = ("--hsm-pin", "648219", "--hsm-so-pin", "3537363231383830")
OPERATOR = ("serial", "--hsm-allow-irreversible", "--hsm-allow-operator", *PINS)
# name -> (initialized by its owner, SO-blocked updates it already had, pytest arguments)
CAMPAIGNS = {
    "shipped, full consent (no operator)": (False, 0, ("serial", "--hsm-allow-irreversible", *PINS)),
    "initialized, full consent (no operator)": (True, 0, ("serial", "--hsm-allow-irreversible", *PINS)),
    "initialized, 4 updates used, full consent + scripted operator": (True, 4, OPERATOR),
    "initialized, 0 updates used, full consent + scripted operator, --hsm-max-updates 2": (True, 0, (*OPERATOR, "--hsm-max-updates", "2")),
    "initialized, 0 updates used, full consent + scripted operator": (True, 0, OPERATOR),
    "initialized, --serial, no PINs": (True, 0, ("serial",)),
}


def _owned_token():  # tests/conformance/opensc_owner.py: the owner's set-up with OpenSC's tools
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "conformance"))
    from opensc_owner import owned_token

    return owned_token


def measure(work: Path, owned: bool, args: tuple[str, ...], examples: int | None, used: int = 0,
            plan_only: bool = False, select: str | None = None) -> dict:
    from hsm_lifecycle.emulator import VirtualToken

    evidence = work / "evidence"
    with _owned_token()(work, owned=owned, used=used) as token:
        start = _counters(token.reader)
        argv = ["--hsm-serial", token.serial, *args[1:]] if args[0] == "serial" else list(args)
        if examples is not None:
            argv.append(f"--hsm-examples={examples}")
        if plan_only:
            argv.append("--hsm-plan")
        if select:
            argv += ["-k", select]
        began = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "pytest", str(SUITE), "-q", "-p", "no:cacheprovider",
                               f"--hsm-target=pcsc:{token.reader}", *argv, "--hsm-portal", str(token.portal),
                               "--hsm-power-rig", str(token.rig), "--hsm-evidence", str(evidence)],
                              capture_output=True, text=True)  # fmt: skip
        wall = time.perf_counter() - began
        cuts = token.emulator.log().count("power cut: the token is off vpcd")
    if plan_only:
        text = done.stdout[done.stdout.find("Campaign plan"):]
        return {"plan": text.split("\nno tests ran")[0].rstrip()}
    summary = json.loads((evidence / "summary.json").read_text())
    plan = summary["plan"]  # the run's plan.json, as summary.json carries it
    after = VirtualToken.open(token.state)  # the end state, read once the emulator has stopped
    after.power_on()
    end = after.status()
    verdicts = {r["id"]: r["verdict"] for r in summary["rules"]}
    return {
        "exit_status": done.returncode,
        "wall_s": round(wall, 1),
        "apdus": summary["cost"]["apdus"],
        "user_tries_spent": summary["cost"]["user_tries_spent"],
        "so_tries_spent": summary["cost"]["so_tries_spent"],
        "so_tries": f"{start if start is not None else 'uninitialized'} -> {end.so_tries}",
        "firmware_updates": plan["firmware_updates"],
        "so_blocked_updates": end.so_blocked_updates,
        "judged": sum(1 for v in verdicts.values() if v != "not-run"),
        "failed": sorted(r for r, v in verdicts.items() if v == "fail"),
        "passed": sum(1 for v in verdicts.values() if v == "pass"),
        "partial": sorted(r for r, v in verdicts.items() if v == "partial"),
        "verdict": summary["verdict"],
        "changed_by_device": plan["changed_by_device"],
        "so_blocks_in_plan": plan["totals"]["so_blocks"],
        "checks_placed": f"{sum(1 for c in plan['checks'] if c['test'])} of {len(plan['checks'])}",
        "not_run": [n["check"].split("::")[-1] + ": " + n["why"] for n in plan["not_run"]],
        "power_cuts": cuts,
        "r17": verdicts.get("R17"),
    }


def _counters(reader: str) -> int | None:
    """The SO tries left before the run, asked of the token (VERIFY 88 without data, free)."""
    from hsm_lifecycle.conformance.transport.pcsc import PcscTransport
    from hsm_lifecycle.protocol import AID

    with PcscTransport(reader, card_timeout=10.0) as pcsc:
        pcsc.transmit(bytes([0x00, 0xA4, 0x04, 0x00, len(AID)]) + AID + b"\x00")
        rsp = pcsc.transmit(bytes.fromhex("00200088"))
    return rsp.sw & 0x0F if rsp.sw >> 4 == 0x63C else None


def measure_r17(examples: int | None) -> str:
    """R17 alone on the owner's token through the rig: APDUs and seconds per tear."""
    with tempfile.TemporaryDirectory(prefix="bench-rig-") as tmp:
        f = measure(Path(tmp), True, ("serial", *PINS), examples, select="test_r17")
    tears = max(f["power_cuts"], 1)
    return (f"R17 over PC/SC through the power-cut rig: {f['r17']}, {f['power_cuts']} tears, {f['apdus']} APDUs "
            f"({f['apdus'] / tears:.1f} per tear, the run's set-up and custody reads included), {f['wall_s']} s "
            f"({f['wall_s'] / tears:.2f} s per tear, pytest start-up included), exit {f['exit_status']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=None, help="hypothesis examples of the stateful test (suite default: 10)")
    parser.add_argument("--plans", action="store_true", help="print each campaign's plan (--hsm-plan: free reads only) instead of running it")
    parser.add_argument("-k", dest="only", default="", help="only the campaigns whose name contains this text")
    args = parser.parse_args()
    for name, (owned, used, consent) in CAMPAIGNS.items():
        if args.only not in name:
            continue
        with tempfile.TemporaryDirectory(prefix="bench-walk-") as tmp:
            f = measure(Path(tmp), owned, consent, args.examples, used, plan_only=args.plans)
        if args.plans:
            print(f"== {name}\n{f['plan']}\n", flush=True)
            continue
        print(f"{name}: {f['judged']} rules judged, {f['passed']} pass, partial {f['partial'] or 'none'} "
              f"({f['verdict']}, failed {f['failed'] or 'none'}), {f['apdus']} APDUs, "
              f"tries spent user {f['user_tries_spent']} / SO {f['so_tries_spent']}, SO tries {f['so_tries']}, "
              f"{f['firmware_updates']} updates ({f['so_blocked_updates']} SO-blocked in the token's life), "
              f"SO blocks planned {f['so_blocks_in_plan']}, checks placed {f['checks_placed']}, {f['wall_s']} s, "
              f"device changed the plan: {f['changed_by_device']}, R17 {f['r17']} ({f['power_cuts']} power cuts), "
              f"exit {f['exit_status']}; not run: {f['not_run']}", flush=True)
    if not args.plans and not args.only:
        print(measure_r17(args.examples))


if __name__ == "__main__":
    main()
