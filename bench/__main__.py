"""`python -m bench`: every benchmark of bench/, then docs/performance.md written from the figures.

    python -m bench                  all of them, several runs each (about 5 to 7 minutes on 2 cores)
    python -m bench --quick          fewer and shorter runs (about 1 minute), same report layout
    python -m bench --out FILE       write the report elsewhere (default docs/performance.md)
    python -m bench --json FILE      also keep the raw figures
    python -m bench --only NAME ...  run only these benchmarks (the report then lacks the others)

A benchmark is any bench/*.py module with a top-level `run()`. The known ones are called with
the settings below and have their own section in the report; any other is called as `run()` and
listed as it answers. Exit status 1 if a benchmark raised (its section says so; the others are
still reported). Speed is measured here, never asserted in tests.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import json
import statistics
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench.machine import Machine
from bench.performance_md import Measured, render

BENCH_DIR = Path(__file__).resolve().parent
DEFAULT_OUT = BENCH_DIR.parent / "docs" / "performance.md"


@dataclass(frozen=True)
class Bench:
    name: str  # the module in bench/
    call: Callable[[], dict]


def median_figures(runs: list[dict]) -> dict:
    """Per key, the median of the runs' numbers (recursively); the first run's other values;
    "runs" says how many."""
    out = _medians(runs)
    out["runs"] = len(runs)
    return out


def _medians(runs: list[dict]) -> dict:
    first = runs[0]
    out: dict = {}
    for key, value in first.items():
        values = [r[key] for r in runs if key in r]
        if isinstance(value, bool) or not values:
            out[key] = all(values) if isinstance(value, bool) else value
        elif isinstance(value, (int, float)) and all(isinstance(v, (int, float)) for v in values):
            out[key] = statistics.median(values)
        elif isinstance(value, dict) and all(isinstance(v, dict) for v in values):
            out[key] = _medians(values)
        else:
            out[key] = value
    return out


# -- the known benchmarks, with the full and the quick settings ---------------------------------


def _emulator(quick: bool) -> dict:
    from bench import bench_emulator

    return bench_emulator.run(repeat=3 if quick else 5)


def _pcsc(quick: bool) -> dict:
    from bench import bench_pcsc

    return bench_pcsc.run(repeat=3 if quick else 5, apdus=500 if quick else 2000)


def _model(quick: bool) -> dict:
    from bench import bench_model

    return bench_model.run(repeat=1 if quick else 3)


def _campaign(quick: bool) -> dict:
    from bench import bench_campaign

    examples = 50 if quick else 200
    runs = [bench_campaign.run(examples=examples) for _ in range(1 if quick else 3)]
    return median_figures(runs)


def _learn(quick: bool) -> dict:
    from bench import bench_learn

    if quick:
        return {"core": bench_learn.learn_alphabet("core", 1)}
    return bench_learn.run(repeat=3, faults=False)


def _fuzz(quick: bool) -> dict:
    from bench import fuzz_apdu

    seconds, seeds = (5.0, (0,)) if quick else (10.0, (0, 1, 2))
    runs = [fuzz_apdu.run(seconds=seconds, seed=seed) for seed in seeds]
    out = median_figures([{k: v for k, v in r.items() if isinstance(v, (int, float))} for r in runs])
    out["findings"] = sum(len(r["findings"]) for r in runs)  # type: ignore[arg-type]
    out["inputs_total"] = sum(int(r["inputs"]) for r in runs)  # type: ignore[call-overload]
    out["seeds"] = list(seeds)
    return out


def _fleet(quick: bool) -> dict:
    from bench import bench_fleet

    return bench_fleet.run(repeat=1 if quick else 3, selection=bench_fleet.QUICK_SELECTION if quick else None)


KNOWN: dict[str, Callable[[bool], dict]] = {
    "bench_emulator": _emulator,
    "bench_pcsc": _pcsc,
    "bench_model": _model,
    "bench_campaign": _campaign,
    "bench_learn": _learn,
    "fuzz_apdu": _fuzz,
    "bench_fleet": _fleet,
}


def has_run(path: Path) -> bool:
    """Whether a module defines a top-level run() (read, not imported: some need extras)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return any(isinstance(node, ast.FunctionDef) and node.name == "run" for node in tree.body)


def benches(quick: bool, only: list[str] | None) -> list[Bench]:
    found = sorted(p.stem for p in BENCH_DIR.glob("*.py") if not p.stem.startswith("_") and has_run(p))
    unknown = set(only or ()) - set(found)
    if unknown:
        raise SystemExit(f"python -m bench: no benchmark named {', '.join(sorted(unknown))} (there are {', '.join(found)})")
    chosen = [name for name in found if only is None or name in only]
    # The known ones in report order, then any other.
    ordered = [n for n in KNOWN if n in chosen] + [n for n in chosen if n not in KNOWN]
    return [Bench(name, _caller(name, quick)) for name in ordered]


def _caller(name: str, quick: bool) -> Callable[[], dict]:
    if name in KNOWN:
        return lambda: KNOWN[name](quick)
    return lambda: dict(importlib.import_module(f"bench.{name}").run())


def measure(bench: Bench) -> Measured:
    print(f"bench: {bench.name} ...", file=sys.stderr, flush=True)
    began = time.perf_counter()
    try:
        figures, error = bench.call(), None
    except Exception as exc:  # noqa: BLE001 - one broken benchmark must not cost the others
        figures, error = None, f"{type(exc).__name__}: {exc}"
        traceback.print_exc()
    seconds = time.perf_counter() - began
    print(f"bench: {bench.name} took {seconds:.0f} s" + (f" and FAILED ({error})" if error else ""), file=sys.stderr, flush=True)
    return Measured(bench.name, figures, seconds, error)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer and shorter runs (a fast variant)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"the report (default {DEFAULT_OUT.relative_to(BENCH_DIR.parent)})")
    parser.add_argument("--json", type=Path, default=None, help="also write the raw figures to this file")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="run only these benchmarks (module names)")
    args = parser.parse_args(argv)
    command = "python -m bench" + (" --quick" if args.quick else "")
    machine = Machine.describe()
    began = time.perf_counter()
    results = [measure(b) for b in benches(args.quick, args.only)]
    total = time.perf_counter() - began
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(render(results, machine, command=command, quick=args.quick, total_s=total), encoding="utf-8")
    if args.json is not None:
        raw = {"command": command, "machine": machine.__dict__, "total_s": total,
               "benches": {m.name: {"seconds": m.seconds, "error": m.error, "figures": m.figures} for m in results}}
        args.json.write_text(json.dumps(raw, indent=1, default=str) + "\n", encoding="utf-8")
    print(f"bench: wrote {args.out} ({total:.0f} s)", file=sys.stderr)
    return 1 if any(m.error for m in results) else 0


if __name__ == "__main__":
    sys.exit(main())
