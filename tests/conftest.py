"""For every project test: custody journals (conformance.journal) go to the test's own folder,
never to the user's state folder, where a journal left by a failing test would be taken up by
a later run on a token with the same serial."""

from __future__ import annotations

from pathlib import Path

import pytest

from hsm_lifecycle.conformance.journal import STATE_DIR_ENV


@pytest.fixture(autouse=True)
def _private_custody_journals(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(STATE_DIR_ENV, str(tmp_path / "custody-journals"))
