"""Fleet scaling: the same conformance campaign over pcscd + vpcd with 1, 2 and 4 emulated
tokens, one per pytest-xdist worker (`pytest -n N --hsm-target emulator:vpcd`, conformance.fleet).

Each run is a separate `python -m pytest` process, as a user runs it; its wall time includes
starting the workers and one emulator process per token. Per token count: the median wall time
of `repeat` runs, tokens per minute (N / wall time), the speed-up over one token, and per token
the APDUs and tries its bundle reports. A run without xdist (one token, no -n) is the baseline
that shows what xdist itself costs. Skips, with the reason, when pcscd does not offer enough
vpcd readers. `python -m bench.bench_fleet [--quick]` prints the figures; `run()` returns them.
`--plans` prints each token's campaign plan for a fleet of persistent emulators instead.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from hsm_lifecycle.conformance.evidence.combined import read_combined
from hsm_lifecycle.conformance.transport.base import TransportError
from hsm_lifecycle.conformance.transport.pcsc import list_readers
from hsm_lifecycle.emulator.vpcd import vpcd_readers, vpcd_readers_from_names

ROOT = Path(__file__).resolve().parents[1]
SUITE = ROOT / "conformance" / "suite"
ISOLATED = ("-q", "-p", "no:cacheprovider", "-p", "no:randomly", "-p", "no:benchmark", "-o", "addopts=")
QUICK_SELECTION = "test_r10 or test_r19 or test_r21"  # the CI fleet test's subset
TOKEN_COUNTS = (1, 2, 4)


def vpcd_missing(tokens: int) -> str | None:
    """Why `tokens` vpcd emulators cannot run here, or None. Learns the vpcd readers of a
    pcscd started by hand (HSM_VPCD_READERS unset) from their names."""
    try:
        readers = list_readers()
    except TransportError as exc:
        return str(exc)
    if "HSM_VPCD_READERS" not in os.environ:
        found = vpcd_readers_from_names(readers)
        if found:
            os.environ["HSM_VPCD_READERS"] = ";".join(f"{port}={name}" for port, name in found.items())
    present = set(vpcd_readers().values()) & set(readers)
    if len(present) < tokens:
        return f"pcscd offers {len(present)} vpcd readers, {tokens} needed (source scripts/pcscd.sh && pcscd_start gives 8)"
    return None


def campaign(tokens: int | None, work: Path, selection: str | None) -> dict[str, object]:
    """One run: `tokens` workers (None: no xdist, one token); its wall time and bundles."""
    evidence = work / f"evidence-{tokens or 'plain'}-{time.monotonic_ns()}"
    argv = [sys.executable, "-m", "pytest", str(SUITE), *ISOLATED, "--hsm-target", "emulator:vpcd", "--hsm-evidence", str(evidence)]
    if tokens is not None:
        argv += ["-n", str(tokens)]
    if selection:
        argv += ["-k", selection]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_XDIST")}
    began = time.perf_counter()
    done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - began
    bundles = [evidence / t["bundle"] for t in read_combined(evidence)["tokens"]] if tokens is not None else [evidence]
    summaries = [json.loads((b / "summary.json").read_text()) for b in bundles]
    return {
        "exit_status": done.returncode,
        "wall_s": wall,
        "verdicts": [s["verdict"] for s in summaries],
        "apdus": [s["cost"]["apdus"] for s in summaries],
        "user_tries": [s["cost"]["user_tries_spent"] for s in summaries],
        "so_tries": [s["cost"]["so_tries_spent"] for s in summaries],
        "tail": "" if done.returncode == 0 else why_failed(done.stdout + done.stderr),
    }


def why_failed(output: str) -> str:
    """The first reason a token gave (a worker's "gwK: ..." failure), else the output's end."""
    for line in output.splitlines():
        text = line.strip()
        if text.startswith("gw") and ": " in text and "->" not in text:
            return text[:400]
        if text.startswith("E ") and "gw" in text:
            return text[2:].strip()[:400]
    return output[-600:]


def _figures(tokens: int, runs: list[dict[str, object]], baseline_s: float | None) -> dict[str, object]:
    wall = statistics.median(float(r["wall_s"]) for r in runs)  # type: ignore[arg-type]
    first = runs[0]
    return {
        "tokens": tokens,
        "runs": len(runs),
        "wall_s": wall,
        "wall_s_all": [round(float(r["wall_s"]), 2) for r in runs],  # type: ignore[arg-type]
        "tokens_per_minute": tokens * 60.0 / wall,
        "apdus_per_token": statistics.median(a for r in runs for a in r["apdus"]),  # type: ignore[attr-defined]
        "user_tries_per_token": statistics.median(a for r in runs for a in r["user_tries"]),  # type: ignore[attr-defined]
        "so_tries_per_token": statistics.median(a for r in runs for a in r["so_tries"]),  # type: ignore[attr-defined]
        "all_passed": all(passed(r) for r in runs),
        "speedup_vs_one": (baseline_s / wall * tokens) if baseline_s else None,
        "failure": next((str(r["tail"]) for r in runs if r["tail"]), first["tail"]),
    }


def passed(result: dict[str, object]) -> bool:
    return result["exit_status"] == 0 and set(result["verdicts"]) == {"pass"}  # type: ignore[arg-type]


def run(repeat: int = 3, selection: str | None = None, counts: tuple[int, ...] = TOKEN_COUNTS, attempts: int = 3) -> dict[str, object]:
    """Median figures per token count; `selection` a pytest -k expression (None: the whole suite).
    Runs are interleaved (1, 2, 4, 1, 2, 4, ...) so background load hits every count alike. A run
    in which a token did not pass (on a shared machine another program may seize a vpcd card)
    ends early, so its wall time would flatter: it is discarded and run again, up to `attempts`
    times, and the discarded runs are reported with their reason."""
    reason = vpcd_missing(max(counts))
    if reason is not None:
        return {"skipped": f"fleet scaling not measured: {reason}"}
    results: dict[int | None, list[dict[str, object]]] = {n: [] for n in (None, *counts)}
    discarded: list[str] = []
    with tempfile.TemporaryDirectory(prefix="bench-fleet-") as tmp:
        for _ in range(repeat):
            for n in (None, *counts):
                for attempt in range(attempts):
                    result = campaign(n, Path(tmp), selection)
                    if passed(result) or attempt == attempts - 1:
                        break
                    discarded.append(f"{'-n ' + str(n) if n else 'no xdist'}: {result['tail']}")
                results[n].append(result)
    one = statistics.median(float(r["wall_s"]) for r in results[counts[0]])  # type: ignore[arg-type]
    return {
        "repeat": repeat,
        "selection": selection or "the whole suite",
        "cpus": os.cpu_count(),
        "plain": _figures(1, results[None], None),
        "fleet": [_figures(n, results[n], one) for n in counts],
        "discarded": discarded,
    }


def fleet_plans(tokens: int = 2, selection: str | None = None) -> tuple[list[str], float]:
    """`--hsm-plan` over a fleet of persistent vpcd emulators: each token's own plan (from its own
    start state, read free), as the controller prints them, and the wall time."""
    argv = [sys.executable, "-m", "pytest", str(SUITE), *ISOLATED, "-n", str(tokens), "--hsm-target", "emulator:vpcd",
            "--hsm-persistent", "--hsm-plan"]  # fmt: skip
    if selection:
        argv += ["-k", selection]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_XDIST")}
    began = time.perf_counter()
    done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - began
    plans = [block.split("\n=", 1)[0].strip() for block in done.stdout.split(" campaign plan ")[1:]]
    return [p.split("\n", 1)[1] if p.startswith("=") else p for p in plans], wall


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if "--plans" in argv:  # each token of a 2-token persistent fleet planned from its own start state
        reason = vpcd_missing(2)
        if reason is not None:
            print(f"fleet plans not made: {reason}")
            return
        plans, wall = fleet_plans(2, QUICK_SELECTION if "--quick" in argv else None)
        for text in plans:
            print(text + "\n")
        print(f"{len(plans)} plans in {wall:.1f} s")
        return
    quick = "--quick" in argv
    figures = run(repeat=1 if quick else 3, selection=QUICK_SELECTION if quick else None)
    if "skipped" in figures:
        print(figures["skipped"])
        return
    plain = figures["plain"]
    print(f"campaign: {figures['selection']} over pcscd+vpcd, median of {figures['repeat']} runs, {figures['cpus']} CPUs")
    print(f"  no xdist, 1 token : {plain['wall_s']:6.1f} s")  # type: ignore[index]
    for row in figures["fleet"]:  # type: ignore[union-attr]
        print(
            f"  -n {row['tokens']}, {row['tokens']} token(s): {row['wall_s']:6.1f} s, {row['tokens_per_minute']:5.1f} tokens/min, "
            f"speed-up {row['speedup_vs_one']:.2f}x, {row['apdus_per_token']:.0f} APDUs/token, all passed: {row['all_passed']}"
        )


if __name__ == "__main__":
    main()
