"""Fixtures of the robustness tests: model explorations shared by the session, and a directory
for file-backed tokens that does not cost an fsync'd disk write per APDU."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from hsm_lifecycle.conformance.fuzz.starts import Campaign, START_BOUNDS
from hsm_lifecycle.model import EMULATOR_DEFAULTS, Exploration, explore

SHM = Path("/dev/shm")


@pytest.fixture(scope="session")
def default_exploration() -> Exploration:
    """One breadth-first walk of the model (default profile): start states and tear paths."""
    return explore(EMULATOR_DEFAULTS, bounds=START_BOUNDS)


@pytest.fixture(scope="session")
def campaign(default_exploration: Exploration) -> Campaign:
    return Campaign.default(default_exploration)


@pytest.fixture(scope="session")
def contrary_campaign() -> Campaign:
    return Campaign.contrary()


@pytest.fixture
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Where file-backed tokens live. tmpfs when the host has it; otherwise tmp_path with
    fsync off. Either way the atomic tmp-file + rename path runs for real: a simulated cut
    happens inside this process, so a reopen reads the page cache whatever fsync did (fsync
    only guards against host crashes, and costs ~15 ms a write on a disk)."""
    if SHM.is_dir() and os.access(SHM, os.W_OK):
        with tempfile.TemporaryDirectory(prefix="hsm-robust-", dir=SHM) as tmp:
            yield Path(tmp)
        return
    monkeypatch.setattr(os, "fsync", lambda fd: None)
    yield tmp_path
