"""The long-run harnesses stay runnable: bench/fuzz_apdu.run for a second, and the atheris
target on a few inputs when atheris is installed (the optional `fuzz` extra)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from bench.fuzz_apdu import run
from hsm_lifecycle.conformance.fuzz.grammar import Grammar
from hsm_lifecycle.conformance.fuzz.starts import Campaign


def test_the_long_run_harness_reports_its_figures(campaign: Campaign, contrary_campaign: Campaign, state_dir: Path) -> None:
    figures = run(seconds=1.0, seed=3, state_dir=state_dir, file_every=2, campaigns=(campaign, contrary_campaign),
                  grammar=Grammar(rsa=False, max_actions=20))  # an RSA-3072 key alone can take a second
    assert figures["findings"] == [], figures["findings"]
    assert figures["inputs"] > 100 and figures["sequences"] > 5
    assert figures["state_file_checks"] > 0 and figures["distinct_status_words"] > 10
    assert list(state_dir.iterdir()) == []  # the file-backed tokens are cleaned up


def test_the_atheris_target_runs_inputs(campaign: Campaign) -> None:
    pytest.importorskip("atheris")
    from bench.fuzz_atheris import target

    one_input = target(campaign, Grammar(max_actions=8))
    rng = random.Random(5)
    for _ in range(40):
        one_input(rng.randbytes(rng.randint(0, 200)))
