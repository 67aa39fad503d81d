"""Learning tests marked `slow` (complete learns of every fault, the larger alphabets) run only
when asked for: `pytest -m slow tests/learn`, or HSM_LIFECYCLE_SLOW=1. CI runs the fast ones."""

from __future__ import annotations

import os

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if "slow" in (config.getoption("markexpr") or "") or os.environ.get("HSM_LIFECYCLE_SLOW") == "1":
        return
    skip = pytest.mark.skip(reason="slow learning test: run with -m slow or HSM_LIFECYCLE_SLOW=1")
    for item in items:
        if item.get_closest_marker("slow") is not None and "tests/learn" in str(item.fspath).replace(os.sep, "/"):
            item.add_marker(skip)
