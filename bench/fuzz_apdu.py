"""The long APDU-fuzzing run of the emulator: random choices against the grammar from every
start state, power cuts, file-backed tokens, and the figures of what it reached.

    python -m bench.fuzz_apdu --seconds 300 [--seed N] [--state-dir DIR] [--json FILE]
    from bench.fuzz_apdu import run; figures = run(seconds=60)

The grammar, the start states, the invariants and the fuzzed token live in
hsm_lifecycle.conformance.fuzz, shared with tests/robustness (hypothesis) and
bench/fuzz_atheris.py (coverage-guided). The invariants are in docs/robustness.md.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from hsm_lifecycle.conformance.fuzz.fuzzed import Finding, FuzzedToken
from hsm_lifecycle.conformance.fuzz.grammar import Grammar, RandomChooser, actions, one_in, pick
from hsm_lifecycle.conformance.fuzz.starts import Campaign
from hsm_lifecycle.protocol import Ins


@dataclass
class Tally:
    sequences: int = 0
    apdus: int = 0
    cuts: int = 0
    file_checks: int = 0
    sws: Counter[str] = field(default_factory=Counter)
    answers: Counter[tuple[int, str]] = field(default_factory=Counter)
    by_start: Counter[str] = field(default_factory=Counter)
    findings: list[Finding] = field(default_factory=list)
    kinds: Counter[str] = field(default_factory=Counter)

    def add(self, fuzzed: FuzzedToken) -> None:
        self.sequences += 1
        self.apdus += fuzzed.apdus
        self.cuts += fuzzed.cuts
        self.file_checks += fuzzed.file_checks
        self.sws.update(fuzzed.sws)
        self.answers.update(fuzzed.answers)
        self.by_start[fuzzed.start.name] += fuzzed.apdus
        for finding in fuzzed.findings:
            kind = finding.problem.split(":")[0][:80]
            self.kinds[kind] += 1
            if self.kinds[kind] <= 3:  # keep a few reproductions of each kind
                self.findings.append(finding)


def _successes(answers: Counter[tuple[int, str]]) -> dict[str, str]:
    """Per instruction of the applet: how often it was accepted (9000, 61xx, 6282) of all tries,
    i.e. how deep the grammar got, not only how much it was refused."""
    out = {}
    for ins in sorted({ins for ins, _ in answers}):
        if ins not in set(Ins):
            continue
        total = sum(n for (i, _), n in answers.items() if i == ins)
        good = sum(n for (i, sw), n in answers.items() if i == ins and (sw in ("9000", "6282") or sw.startswith("61")))
        out[Ins(ins).name] = f"{good}/{total}"
    return out


def run(seconds: float = 60.0, seed: int = 0, state_dir: Path | None = None, file_every: int = 8,
        cut_one_in: int = 5, grammar: Grammar = Grammar(rsa=True, max_actions=40),
        campaigns: Sequence[Campaign] | None = None) -> dict[str, object]:
    """Fuzz for `seconds`; returns the figures (inputs run, findings, SW spread). Every
    `file_every`-th sequence runs on a file-backed token in `state_dir` (a temporary
    directory if None); one APDU in `cut_one_in` gets a power cut at a random event.
    `campaigns` defaults to the emulator's defaults and every open behaviour reversed."""
    rng = random.Random(seed)
    ch = RandomChooser(rng)
    began = time.monotonic()
    campaigns = tuple(campaigns) if campaigns is not None else (Campaign.default(rsa=grammar.rsa), Campaign.contrary(rsa=grammar.rsa))
    planning = time.monotonic() - began
    tally = Tally()
    with tempfile.TemporaryDirectory(prefix="hsm-fuzz-", dir=state_dir) as tmp:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            campaign = pick(ch, campaigns)
            start = pick(ch, campaign.starts)
            path = Path(tmp) / f"token-{tally.sequences}.json" if tally.sequences % file_every == 0 else None
            fuzzed = FuzzedToken(campaign, start, path)
            for act in actions(ch, grammar):
                fuzzed.apply(act, cut_at=ch.integer(0, 4) if one_in(ch, cut_one_in) else None)
            tally.add(fuzzed)
            if path is not None:
                path.unlink()
    elapsed = time.monotonic() - began - planning
    return {
        "seed": seed,
        "seconds": round(elapsed, 1),
        "planning_seconds": round(planning, 1),
        "sequences": tally.sequences,
        "inputs": tally.apdus,
        "inputs_per_second": round(tally.apdus / elapsed) if elapsed else 0,
        "power_cuts": tally.cuts,
        "state_file_checks": tally.file_checks,
        "apdus_by_start": dict(tally.by_start.most_common()),
        "status_words": dict(tally.sws.most_common(25)),
        "distinct_status_words": len(tally.sws),
        "successes_by_instruction": _successes(tally.answers),
        "finding_kinds": dict(tally.kinds),
        "findings": [f.to_json() for f in tally.findings],
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.fuzz_apdu", description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="how long to fuzz (default 60)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (a finding replays from it)")
    parser.add_argument("--state-dir", type=Path, default=None, help="where file-backed tokens live (default: a temp dir)")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures to this file")
    args = parser.parse_args(argv)
    figures = run(seconds=args.seconds, seed=args.seed, state_dir=args.state_dir)
    text = json.dumps(figures, indent=1)
    if args.json is not None:
        args.json.write_text(text + "\n", encoding="utf-8")
    print(text)
    return 1 if figures["findings"] else 0


if __name__ == "__main__":
    sys.exit(main())
