"""What doctor's "what would make it worse" costs: `model.dangers.find_dangers` for one token
state (two breadth-first explorations through the oracle, plus the keys-usable checks), for
the six abstract states and the slowest states doctor meets. `python -m bench.bench_dangers`
prints the figures.
"""

from __future__ import annotations

import statistics
import time

from hsm_lifecycle.model.dangers import _keys_usable, find_dangers
from hsm_lifecycle.model.profiles import SMARTCARD_HSM
from hsm_lifecycle.model.states import ExtState

STATES: dict[str, ExtState] = {
    "shipped": ExtState.shipped(),
    "firmware-reset": ExtState(identity=1),
    "initialized (forum thread: SO 7, user 2, 2 keys)": ExtState.initialized(so_tries=7, user_tries=2, keys=2),
    "initialized (fresh, 1 key)": ExtState.initialized(keys=1),
    "user-blocked (1 key)": ExtState.initialized(user_tries=0, keys=1),
    "so-blocked (1 key, 3 user tries)": ExtState.initialized(so_tries=0, keys=1),
    "both-blocked (1 key)": ExtState.initialized(so_tries=0, user_tries=0, keys=1),
}


def _once(state: ExtState) -> float:
    _keys_usable.cache_clear()  # cold, as in a fresh doctor process
    began = time.perf_counter()
    find_dangers(state, SMARTCARD_HSM)
    return time.perf_counter() - began


def run(repeat: int = 3) -> dict[str, float]:
    """Median seconds per state over `repeat` cold runs, and the slowest of them."""
    out = {name: statistics.median(_once(s) for _ in range(repeat)) for name, s in STATES.items()}
    out["slowest_s"] = max(out.values())
    out["repeat"] = float(repeat)
    return out


def main() -> None:
    r = run()
    for name in STATES:
        print(f"{name:<52}: {r[name] * 1000:>8.0f} ms")
    print(f"(median of {int(r['repeat'])} cold runs each)")


if __name__ == "__main__":
    main()
