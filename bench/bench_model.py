"""Model cost: the size of the explored extended state space, how long exploring it takes, and
how many oracle calls per second the `transitions` machine sustains.

The exploration is the full product of the brief's bounds (keys up to 3, firmware updates up
to 5, the default alphabet: options 0x0001/0x0000/0x0002, retries 3), plus every user max
1..10 at smaller bounds (one key, one update, option 0x0001). `python -m bench.bench_model` prints the figures.
"""

from __future__ import annotations

import statistics
import time

from hsm_lifecycle.model import EMULATOR_DEFAULTS, TRANSITIONS, Bounds, Command, ExtState, expect, explore
from hsm_lifecycle.model.machine import lifecycle_machine

FULL = Bounds(max_keys=3, max_updates=5)
RETRIES_BOUNDS = Bounds(max_keys=1, max_updates=1)


def machine_build_seconds() -> float:
    """Building the machine from the table (done once per process; `lifecycle_machine` caches)."""
    lifecycle_machine.cache_clear()
    began = time.perf_counter()
    lifecycle_machine()
    return time.perf_counter() - began


def oracle_calls_per_second(calls: int = 20_000) -> float:
    """Oracle calls on a mix of states and the whole default alphabet."""
    states = [
        ExtState.shipped(),
        ExtState.initialized(),
        ExtState.initialized(so_tries=1, user_tries=1, authenticated=True, keys=2),
        ExtState.initialized(so_tries=0, user_tries=0, keys=1, identity=3, so_blocked_updates=3),
        ExtState.initialized(options=0x0002),
    ]
    pairs = [(s, c) for s in states for c in Command.alphabet()]
    began = time.perf_counter()
    for i in range(calls):
        s, c = pairs[i % len(pairs)]
        expect(s, c, EMULATOR_DEFAULTS)
    return calls / (time.perf_counter() - began)


def run(repeat: int = 3) -> dict[str, float]:
    """Median over `repeat` runs of each timing; sizes are exact."""
    build = statistics.median(machine_build_seconds() for _ in range(repeat))
    rates = [oracle_calls_per_second() for _ in range(repeat)]
    full = explore(EMULATOR_DEFAULTS, bounds=FULL)
    every_max = Command.alphabet(options=(0x0001,), retries=tuple(range(1, 11)))
    retries = explore(EMULATOR_DEFAULTS, alphabet=every_max, bounds=RETRIES_BOUNDS)
    return {
        "transitions": float(len(TRANSITIONS)),
        "machine_build_s": build,
        "oracle_calls_per_s": statistics.median(rates),
        "explored_states": float(len(full.states)),
        "explored_steps": float(full.steps),
        "explored_transitions": float(len(full.transitions)),
        "pruned_successors": float(full.pruned),
        "exploration_s": full.seconds,
        "explored_states_retries_1_to_10": float(len(retries.states)),
        "exploration_retries_1_to_10_s": retries.seconds,
        "repeat": float(repeat),
    }


def main() -> None:
    r = run()
    print(f"model transitions                 : {r['transitions']:>10.0f}")
    print(f"machine build                     : {r['machine_build_s'] * 1000:>10.1f} ms")
    print(f"oracle calls                      : {r['oracle_calls_per_s']:>10.0f} /s")
    print(f"explored states (keys<=3, upd<=5) : {r['explored_states']:>10.0f}")
    print(f"  steps evaluated                 : {r['explored_steps']:>10.0f}")
    print(f"  transitions taken               : {r['explored_transitions']:>10.0f}")
    print(f"  exploration time                : {r['exploration_s']:>10.2f} s")
    print(f"explored states (user max 1..10)  : {r['explored_states_retries_1_to_10']:>10.0f}")
    print(f"  exploration time                : {r['exploration_retries_1_to_10_s']:>10.2f} s")
    print(f"(timings: median of {int(r['repeat'])} runs; explorations once)")


if __name__ == "__main__":
    main()
