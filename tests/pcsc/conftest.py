"""Fixtures for the PC/SC tests: emulators on leased vpcd ports, and skips with a reason when
pcscd with vpcd readers (or OpenSC) is not there.

scripts/test.sh starts pcscd (scripts/pcscd.sh) and exports HSM_PCSCD=1: then these tests
must run, and a broken pcscd fails them instead of skipping them.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from hsm_lifecycle.conformance.transport.base import TransportError
from hsm_lifecycle.conformance.transport.pcsc import PcscTransport, list_readers
from hsm_lifecycle.emulator.vpcd import vpcd_readers, vpcd_readers_from_names
from pcsc_support import Emulators, Served

OPENSC_TOOLS = ("opensc-tool", "sc-hsm-tool", "pkcs11-tool", "pkcs15-tool")


@functools.cache
def pcscd_missing() -> str | None:
    """Why the PC/SC tests cannot run here, or None if they can."""
    if os.environ.get("HSM_PCSCD"):
        return None  # scripts/pcscd.sh vouched for it: a failure from here on is a failure
    try:
        readers = list_readers()
    except TransportError as exc:
        return f"{exc} (scripts/test.sh starts pcscd with vpcd readers)"
    if not set(vpcd_readers().values()) & set(readers):
        return "pcscd runs without vsmartcard's vpcd readers: use scripts/test.sh, or source scripts/pcscd.sh"
    if "HSM_VPCD_READERS" not in os.environ:
        # A pcscd started by hand (bash scripts/pcscd.sh start): use all of its vpcd readers.
        found = vpcd_readers_from_names(readers)
        os.environ["HSM_VPCD_READERS"] = ";".join(f"{port}={name}" for port, name in found.items())
    return None


@pytest.fixture(autouse=True)
def _skip_without_the_stack(request: pytest.FixtureRequest) -> None:
    if request.node.get_closest_marker("pcscd") and (reason := pcscd_missing()):
        pytest.skip(reason)
    if request.node.get_closest_marker("opensc"):
        missing = [tool for tool in OPENSC_TOOLS if shutil.which(tool) is None]
        if missing:
            pytest.skip(f"OpenSC tools missing ({', '.join(missing)}): apt-get install opensc")


@pytest.fixture
def emulators(tmp_path: Path) -> Iterator[Emulators]:
    with contextlib.ExitStack() as stack:
        yield Emulators(stack, tmp_path)


@pytest.fixture
def served(emulators: Emulators) -> Served:
    return emulators.start()


@pytest.fixture
def connected(served: Served) -> Iterator[tuple[Served, PcscTransport]]:
    transport = served.transport()
    transport.connect()
    yield served, transport
    transport.close()

