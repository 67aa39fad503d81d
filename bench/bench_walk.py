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
CAMPAIGNS = {
    "shipped, full consent (no operator)": (False, ("serial", "--hsm-allow-irreversible", *PINS)),
    "initialized, full consent (no operator)": (True, ("serial", "--hsm-allow-irreversible", *PINS)),
    "initialized, full consent + scripted operator": (True, ("serial", "--hsm-allow-irreversible", "--hsm-allow-operator", *PINS)),
    "initialized, --serial, no PINs": (True, ("serial",)),
}


def _owned_token():  # tests/conformance/opensc_owner.py: the owner's set-up with OpenSC's tools
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "conformance"))
    from opensc_owner import owned_token

    return owned_token


def measure(work: Path, owned: bool, args: tuple[str, ...], examples: int | None, select: str | None = None) -> dict:
    from hsm_lifecycle.emulator import VirtualToken

    evidence = work / "evidence"
    with _owned_token()(work, owned=owned) as token:
        start = _counters(token.reader)
        argv = ["--hsm-serial", token.serial, *args[1:]] if args[0] == "serial" else list(args)
        if examples is not None:
            argv.append(f"--hsm-examples={examples}")
        if select:
            argv += ["-k", select]
        began = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "pytest", str(SUITE), "-q", "-p", "no:cacheprovider",
                               f"--hsm-target=pcsc:{token.reader}", *argv, "--hsm-portal", str(token.portal),
                               "--hsm-power-rig", str(token.rig), "--hsm-evidence", str(evidence)],
                              capture_output=True, text=True)  # fmt: skip
        wall = time.perf_counter() - began
        cuts = token.emulator.log().count("power cut: the token is off vpcd")
    summary = json.loads((evidence / "summary.json").read_text())
    plan = json.loads((evidence / "plan.json").read_text())
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
        "verdict": summary["verdict"],
        "changed_by_device": plan["changed_by_device"],
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
        f = measure(Path(tmp), True, PINS, examples, select="test_r17")
    tears = max(f["power_cuts"], 1)
    return (f"R17 over PC/SC through the power-cut rig: {f['r17']}, {f['power_cuts']} tears, {f['apdus']} APDUs "
            f"({f['apdus'] / tears:.1f} per tear, the run's set-up and custody reads included), {f['wall_s']} s "
            f"({f['wall_s'] / tears:.2f} s per tear, pytest start-up included), exit {f['exit_status']}")


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
              f"device changed the plan: {f['changed_by_device']}, R17 {f['r17']} ({f['power_cuts']} power cuts), "
              f"exit {f['exit_status']}")
    print(measure_r17(args.examples))


if __name__ == "__main__":
    main()
