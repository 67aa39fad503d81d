"""Random command sequences from the model's alphabet, every answer judged by the oracle.

Cost on a real token: re-initializes between examples (wipes), never blocks the SO-PIN on a
token that cannot be renewed, never crosses the SO floor. The rules a run checked (or the rules
of the step that failed) go into its evidence record.
"""

import pytest

from hsm_lifecycle.conformance.stateful import run_stateful


@pytest.mark.cost("wipes")
@pytest.mark.walk(examples=True)
def test_random_sequences_match_the_model(hsm_run, hsm_suite):
    run_stateful(hsm_run, examples=hsm_suite.options.examples, steps=hsm_suite.options.steps)
