"""Learning cost on the in-memory emulator: queries (device resets), steps (abstract commands),
APDUs and seconds for complete learns, and the learned machine's size.

`run()` learns the `core` alphabet `repeat` times (median), the `so` and `options` alphabets a
few times, the `full` alphabet once when `full=True` (about ten minutes, Wp bound + 0),
black-box learning (no model
guidance) of `core` for comparison, and every emulator fault once (complete learn over the
alphabet that exposes it; the invisible ones over `core`). `python -m bench.bench_learn`
prints them; `--full` adds the `full` alphabet.
"""

from __future__ import annotations

import statistics
from dataclasses import replace
import sys
import time

from hsm_lifecycle.conformance.learn.alphabet import ALPHABETS
from hsm_lifecycle.conformance.learn.campaign import LearnReport, run_learning
from hsm_lifecycle.conformance.learn.emulator_target import EmulatorTarget
from hsm_lifecycle.conformance.learn.learner import LearnSettings
from hsm_lifecycle.conformance.learn.visibility import EXPOSED_BY, INVISIBLE
from hsm_lifecycle.emulator import Fault


def _figures(report: LearnReport) -> dict[str, float]:
    cost = report.result.cost
    return {
        "states": float(report.result.states),
        "model_states": float(report.projection.size),
        "inputs": float(len(report.alphabet.commands)),
        "queries": float(cost["resets"]),
        "steps": float(cost["steps"]),
        "apdus": float(cost["apdus"]),
        "seconds": report.result.seconds,
        "equivalent": float(report.equivalent),
    }


def _median(runs: list[dict[str, float]]) -> dict[str, float]:
    out = {key: statistics.median(r[key] for r in runs) for key in runs[0]}
    out["runs"] = float(len(runs))
    return out


def learn_alphabet(name: str, repeat: int, settings: LearnSettings = LearnSettings()) -> dict[str, float]:
    """Median figures of `repeat` complete learns of the conforming emulator (seeds 1..repeat)."""
    runs = []
    for seed in range(1, repeat + 1):
        report = run_learning(EmulatorTarget(), ALPHABETS[name], replace(settings, seed=seed))
        if not report.equivalent:
            raise RuntimeError(f"the conforming emulator differs from the model over {name}: {report.diff.divergence}")
        runs.append(_figures(report))
    return _median(runs)


def learn_faults() -> dict[str, dict[str, float | str]]:
    """One complete learn per fault; `exposed` says whether the diff named a confirmed sequence."""
    out: dict[str, dict[str, float | str]] = {}
    for fault in Fault:
        name = EXPOSED_BY.get(fault.value, "core")
        report = run_learning(EmulatorTarget(faults=frozenset({fault})), ALPHABETS[name])
        figures: dict[str, float | str] = dict(_figures(report))
        figures["alphabet"] = name
        figures["exposed"] = float(report.replay is not None and report.replay.confirmed)
        figures["expected"] = "exposed" if fault.value in EXPOSED_BY else "invisible"
        figures["why_invisible"] = INVISIBLE.get(fault.value, "")
        figures["sequence_length"] = float(len(report.diff.divergence.inputs)) if report.diff.divergence else 0.0
        out[fault.value] = figures
    return out


def run(repeat: int = 3, full: bool = False, faults: bool = True) -> dict[str, object]:
    began = time.perf_counter()
    results: dict[str, object] = {
        "core": learn_alphabet("core", repeat),
        "core_black_box": learn_alphabet("core", repeat, LearnSettings(guided=False)),
        "so": learn_alphabet("so", repeat),
        "options": learn_alphabet("options", repeat),
    }
    if full:  # bound + 0: with + 1 the Wp suite alone is 5.5 million steps (docs/learning.md)
        results["full"] = learn_alphabet("full", 1, LearnSettings(extra_states=0))
    if faults:
        results["faults"] = learn_faults()
    # The headline numbers: the default (core) alphabet.
    core = results["core"]
    assert isinstance(core, dict)
    results.update({key: core[key] for key in ("queries", "steps", "seconds", "states")})
    results["bench_seconds"] = time.perf_counter() - began
    return results


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    results = run(full="--full" in argv)
    print(f"{'alphabet':<16}{'inputs':>7}{'states':>8}{'model':>7}{'queries':>10}{'steps':>10}{'APDUs':>10}{'seconds':>9}")
    for name in ("core", "core_black_box", "so", "options", "full"):
        r = results.get(name)
        if isinstance(r, dict):
            print(
                f"{name:<16}{r['inputs']:>7.0f}{r['states']:>8.0f}{r['model_states']:>7.0f}{r['queries']:>10.0f}"
                f"{r['steps']:>10.0f}{r['apdus']:>10.0f}{r['seconds']:>9.2f}   (median of {r['runs']:.0f})"
            )
    faults = results.get("faults")
    if isinstance(faults, dict):
        print(f"\n{'fault':<30}{'alphabet':<10}{'verdict':<11}{'expected':<11}{'seq':>4}{'states':>8}{'queries':>9}{'seconds':>9}")
        for fault, r in faults.items():
            verdict = "exposed" if r["exposed"] else "equivalent"
            print(
                f"{fault:<30}{r['alphabet']:<10}{verdict:<11}{r['expected']:<11}{r['sequence_length']:>4.0f}"
                f"{r['states']:>8.0f}{r['queries']:>9.0f}{r['seconds']:>9.2f}"
            )
    print(f"\nbench took {results['bench_seconds']:.0f} s")


if __name__ == "__main__":
    main()
