"""Fixtures for the fleet tests (one token per xdist worker): the suite run as a separate
pytest process with -n, and a skip with the reason when pcscd with vpcd readers is missing.

scripts/test.sh starts pcscd (scripts/pcscd.sh) and exports HSM_PCSCD=1: then the pcscd tests
must run, and a broken pcscd fails them instead of skipping them.
"""

from __future__ import annotations

import functools
import os

import pytest

from hsm_lifecycle.conformance.transport.base import TransportError
from hsm_lifecycle.conformance.transport.pcsc import list_readers
from hsm_lifecycle.emulator.vpcd import vpcd_readers, vpcd_readers_from_names


@functools.cache
def pcscd_missing() -> str | None:
    """Why the pcscd fleet tests cannot run here, or None if they can."""
    if os.environ.get("HSM_PCSCD"):
        return None  # scripts/pcscd.sh vouched for it: a failure from here on is a failure
    try:
        readers = list_readers()
    except TransportError as exc:
        return f"{exc} (scripts/test.sh starts pcscd with vpcd readers)"
    if "HSM_VPCD_READERS" not in os.environ:
        # A pcscd started by hand (bash scripts/pcscd.sh start): use all of its vpcd readers.
        found = vpcd_readers_from_names(readers)
        if found:
            os.environ["HSM_VPCD_READERS"] = ";".join(f"{port}={name}" for port, name in found.items())
    if not set(vpcd_readers().values()) & set(readers):
        return "pcscd runs without vsmartcard's vpcd readers: use scripts/test.sh, or source scripts/pcscd.sh"
    return None


@pytest.fixture(autouse=True)
def _skip_without_pcscd(request: pytest.FixtureRequest) -> None:
    if request.node.get_closest_marker("pcscd") and (reason := pcscd_missing()):
        pytest.skip(reason)

