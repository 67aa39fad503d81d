"""The open behaviours of rules.md, as this device shows them: reported, never judged."""

import pytest


@pytest.mark.cost("free")
@pytest.mark.walk(start="any")
def test_open_behaviours_observed(hsm):
    seen = hsm.target.observations
    for behaviour, value in sorted(seen.items()):
        hsm.observe(behaviour, value)
    hsm.observed("; ".join(f"{k}: {v}" for k, v in sorted(seen.items())) or "nothing could be observed on this target")
