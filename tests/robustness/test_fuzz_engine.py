"""Hypothesis drives the APDU grammar (hsm_lifecycle.conformance.fuzz) against the emulator in every start
state: every input gets a status word, no internal error, no invariant breaks (the checker is
`hsm_lifecycle.conformance.fuzz.invariants.Invariants`; test_invariants_bite.py shows it fails when it should)."""

from __future__ import annotations

import itertools
import random
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from hsm_lifecycle.conformance.fuzz.fuzzed import FuzzedToken
from hsm_lifecycle.conformance.fuzz.grammar import Grammar, RandomChooser, actions, one_in
from hsm_lifecycle.conformance.fuzz.starts import Campaign
from robust_support import FAST, FEW, DataChooser

GRAMMAR = Grammar(rsa=False, max_actions=10)


def _report(fuzzed: FuzzedToken) -> str:
    return "\n".join(f"[{f.start}] {f.problem}\n  after: {' '.join(f.actions)}" for f in fuzzed.findings)


def _fuzz(campaign: Campaign, data: st.DataObject, path: Path | None = None, cuts: bool = False) -> FuzzedToken:
    start = data.draw(st.sampled_from(campaign.starts), label="start")
    fuzzed = FuzzedToken(campaign, start, path)
    chooser = DataChooser(data)
    for act in actions(chooser, GRAMMAR):
        cut = chooser.integer(0, 5) if cuts and chooser.integer(0, 2) == 0 else None
        fuzzed.apply(act, cut_at=cut)
    return fuzzed


@FAST
@given(data=st.data())
def test_grammar_sequences_keep_every_invariant(campaign: Campaign, data: st.DataObject) -> None:
    fuzzed = _fuzz(campaign, data)
    assert not fuzzed.findings, _report(fuzzed)


@FEW
@given(data=st.data())
def test_grammar_sequences_with_every_open_behaviour_reversed(contrary_campaign: Campaign, data: st.DataObject) -> None:
    fuzzed = _fuzz(contrary_campaign, data)
    assert not fuzzed.findings, _report(fuzzed)


@FAST
@given(data=st.data(), blobs=st.lists(st.binary(max_size=300), min_size=1, max_size=8))
def test_unstructured_bytes_in_every_state(campaign: Campaign, data: st.DataObject, blobs: list[bytes]) -> None:
    fuzzed = FuzzedToken(campaign, data.draw(st.sampled_from(campaign.starts)))
    for blob in blobs:
        fuzzed.apply(blob)
    assert not fuzzed.findings, _report(fuzzed)


@FAST
@given(data=st.data())
def test_random_power_cuts_refund_nothing(campaign: Campaign, data: st.DataObject) -> None:
    """One APDU in three is cut at a random power event; after power-on nothing was refunded."""
    fuzzed = _fuzz(campaign, data, cuts=True)
    assert not fuzzed.findings, _report(fuzzed)


def test_state_file_always_loads(campaign: Campaign, state_dir: Path) -> None:
    """File-backed tokens: after every write (and every cut) the state file opens and holds
    exactly the live durable state. A plain loop over seeds: the state dir is per test."""
    names = itertools.count()
    checks = 0
    for seed in range(80):
        ch = RandomChooser(random.Random(seed))
        start = campaign.starts[seed % len(campaign.starts)]
        fuzzed = FuzzedToken(campaign, start, state_dir / f"token-{next(names)}.json")
        for act in actions(ch, Grammar(max_actions=25)):
            fuzzed.apply(act, cut_at=ch.integer(0, 4) if one_in(ch, 4) else None)
        assert not fuzzed.findings, _report(fuzzed)
        checks += fuzzed.file_checks
    assert checks >= 10, f"only {checks} state-file checks: the sequences hardly write"
