"""The campaign as one walk on one persistent token, measured over PC/SC: the emulator served
through pcscd (`emulate --portal`), driven as `pcsc:READER`, from shipped and from initialized,
with each consent of the real-token work. Per campaign: APDUs, tries spent (from the bundle),
SO tries left at the end, firmware updates (from the plan), wall time, rules judged.

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
CAMPAIGNS = {
    "shipped, full consent (no operator)": (False, ("serial", "--hsm-allow-irreversible", *PINS)),
    "initialized, full consent (no operator)": (True, ("serial", "--hsm-allow-irreversible", *PINS)),
    "initialized, full consent + scripted operator": (True, ("serial", "--hsm-allow-irreversible", "--hsm-allow-operator", *PINS)),
    "initialized, --serial, no PINs": (True, ("serial",)),
}


def measure(work: Path, owned: bool, args: tuple[str, ...], examples: int | None) -> dict:
    from hsm_lifecycle.conformance.targets import AsRealTarget
    from hsm_lifecycle.emulator import VirtualToken
    from hsm_lifecycle.emulator.vpcd import lease_port, serve_emulator, vpcd_readers

    state, sock, evidence = work / "token.json", work / "portal.sock", work / "evidence"
    token = VirtualToken.manufacture(state_path=state)
    if owned:
        AsRealTarget.set_up_as_owner(token)
    token.power_off()
    start = token.status()
    argv = ["--hsm-serial", token.serial, *args[1:]] if args[0] == "serial" else list(args)
    if examples is not None:
        argv.append(f"--hsm-examples={examples}")
    with lease_port(wait=60.0) as port, serve_emulator(port, state, portal=sock):
        time.sleep(0.5)
        began = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "pytest", str(SUITE), "-q", "-p", "no:cacheprovider",
                               f"--hsm-target=pcsc:{vpcd_readers()[port]}", *argv, "--hsm-portal", str(sock),
                               "--hsm-evidence", str(evidence)], capture_output=True, text=True)  # fmt: skip
        wall = time.perf_counter() - began
    summary = json.loads((evidence / "summary.json").read_text())
    plan = json.loads((evidence / "plan.json").read_text())
    after = VirtualToken.open(state)
    after.power_on()
    end = after.status()
    verdicts = {r["id"]: r["verdict"] for r in summary["rules"]}
    return {
        "exit_status": done.returncode,
        "wall_s": round(wall, 1),
        "apdus": summary["cost"]["apdus"],
        "user_tries_spent": summary["cost"]["user_tries_spent"],
        "so_tries_spent": summary["cost"]["so_tries_spent"],
        "so_tries": f"{start.so_tries} -> {end.so_tries}",
        "firmware_updates": plan["firmware_updates"],
        "so_blocked_updates": end.so_blocked_updates,
        "judged": sum(1 for v in verdicts.values() if v != "not-run"),
        "failed": sorted(r for r, v in verdicts.items() if v == "fail"),
        "verdict": summary["verdict"],
        "changed_by_device": plan["changed_by_device"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=None, help="hypothesis examples of the stateful test (suite default: 10)")
    args = parser.parse_args()
    for name, (owned, consent) in CAMPAIGNS.items():
        with tempfile.TemporaryDirectory(prefix="bench-walk-") as tmp:
            f = measure(Path(tmp), owned, consent, args.examples)
        print(f"{name}: {f['judged']} rules judged ({f['verdict']}, failed {f['failed'] or 'none'}), {f['apdus']} APDUs, "
              f"tries spent user {f['user_tries_spent']} / SO {f['so_tries_spent']}, SO tries {f['so_tries']}, "
              f"{f['firmware_updates']} updates ({f['so_blocked_updates']} SO-blocked), {f['wall_s']} s, "
              f"device changed the plan: {f['changed_by_device']}, exit {f['exit_status']}")


if __name__ == "__main__":
    main()
