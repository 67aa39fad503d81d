"""Coverage-guided fuzzing of the emulator with atheris (libFuzzer), on the grammar and
invariants of hsm_lifecycle.conformance.fuzz.

    pip install -e '.[fuzz]'
    python -m bench.fuzz_atheris -atheris_runs=100000 -max_len=4096 [CORPUS_DIR]

libFuzzer's flags pass through. The input is read through atheris' FuzzedDataProvider as the
grammar's `Chooser`, so coverage feedback steers the structure (which start state, which INS,
which TLV, which framing) and not only the bytes. A broken invariant raises AssertionError:
libFuzzer stops and writes the input as crash-<sha1>; replay it by passing the file instead of
a corpus directory. Each input builds its start token afresh (~3 ms), so expect a few hundred
executions a second; bench/fuzz_apdu.py is the faster long run.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

import atheris

with atheris.instrument_imports(include=["emulator", "hsm_lifecycle"]):
    from hsm_lifecycle.conformance.fuzz.fuzzed import FuzzedToken
    from hsm_lifecycle.conformance.fuzz.grammar import Grammar, actions
    from hsm_lifecycle.conformance.fuzz.starts import Campaign


class ProviderChooser:
    """The grammar's chooser on libFuzzer's input; an exhausted input reads as zeros."""

    def __init__(self, provider: atheris.FuzzedDataProvider) -> None:
        self.provider = provider

    def integer(self, low: int, high: int) -> int:
        return int(self.provider.ConsumeIntInRange(low, high))

    def raw(self, size: int) -> bytes:
        data = bytes(self.provider.ConsumeBytes(size))
        return data + bytes(size - len(data))


def target(campaign: Campaign, grammar: Grammar) -> Callable[[bytes], None]:
    def one_input(data: bytes) -> None:
        chooser = ProviderChooser(atheris.FuzzedDataProvider(data))
        start = campaign.starts[chooser.integer(0, len(campaign.starts) - 1)]
        fuzzed = FuzzedToken(campaign, start)
        for act in actions(chooser, grammar):
            fuzzed.apply(act, cut_at=chooser.integer(0, 4) if chooser.integer(0, 9) == 0 else None)
        if fuzzed.findings:
            first = fuzzed.findings[0]
            raise AssertionError(f"[{first.start}] {first.problem}\n  after: {' '.join(first.actions)}")

    return one_input


def main(argv: list[str]) -> None:
    atheris.Setup(argv, target(Campaign.default(), Grammar(rsa=False, max_actions=16)))
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)
