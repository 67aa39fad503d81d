"""Shared explorations of the model: each bounded dimension of the brief explored exhaustively
once per session, every step checked against the lifecycle invariants (tests/model/model_invariants.py).

The bounds are split so the whole run stays fast (a few seconds): updates up to 5 (the R13 limit)
with one key and option 0x0001; keys up to 3 with every option of the default alphabet; user
max 1 and 10; the other resolution of every open behaviour (one key, one update); and a
device that enforces the retries-per-PIN-length cap. The
keys and user-max runs do not expand firmware updates (max_updates=0): the others cover them.
The DKEK commands (key backup) multiply the states by about five: they are in one run of their
own (one key, one update), the others leave them out.
bench/bench_model.py measures the full product (keys 3 x updates 5, every option).
"""

from __future__ import annotations

import pytest

from hsm_lifecycle.model import EMULATOR_DEFAULTS, Bounds, Command, Profile, explore
from model_invariants import ALTERNATIVE, Checker, Explored


def _run(label: str, profile: Profile, bounds: Bounds, alphabet: tuple[Command, ...] | None = None) -> Explored:
    checker = Checker(profile)
    found = explore(profile, alphabet=alphabet, bounds=bounds, on_step=checker.check)
    return Explored(label, found, tuple(checker.violations))


@pytest.fixture(scope="session")
def explorations() -> tuple[Explored, ...]:
    return (
        _run("updates up to 5", EMULATOR_DEFAULTS, Bounds(max_keys=1, max_updates=5), Command.alphabet(options=(0x0001,), dkek=False)),
        _run("keys up to 3", EMULATOR_DEFAULTS, Bounds(max_keys=3, max_updates=0), Command.alphabet(dkek=False)),
        _run(
            "user max 1 and 10",
            EMULATOR_DEFAULTS,
            Bounds(max_keys=1, max_updates=0),
            Command.alphabet(options=(0x0001,), retries=(1, 10), dkek=False),
        ),
        _run("alternative profile", ALTERNATIVE, Bounds(max_keys=1, max_updates=1), Command.alphabet(dkek=False)),
        # A device that enforces the 3/5/10 cap: 10 retries for the 6-byte PIN are refused.
        _run(
            "retries capped by PIN length",
            EMULATOR_DEFAULTS.resolve({"retries-by-pin-length": True}, name="capped"),
            Bounds(max_keys=1, max_updates=1),
            Command.alphabet(options=(0x0001,), retries=(3, 10), dkek=False),
        ),
        _run("key backup", EMULATOR_DEFAULTS, Bounds(max_keys=1, max_updates=1), Command.alphabet(options=(0x0001,))),
    )
