"""The emulator outlives a pcscd restart: it reconnects by itself, with its token intact.

Restarting the machine's pcscd would pull the cards from under every other test, so this test
runs its own pcscd in a private mount namespace (`unshare -m`, needs root): a private
/run/pcscd and a vpcd reader on a free port pair (tests/pcsc/pcscd_restart_check.py).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

CHECK = Path(__file__).with_name("pcscd_restart_check.py")


def _namespace_problem() -> str | None:
    if os.geteuid() != 0:
        return "needs root for a private mount namespace (unshare -m)"
    for tool in ("unshare", "pcscd", "mount"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    if not Path("/usr/lib/pcsc/drivers/serial/libifdvpcd.so").exists():
        return "vsmartcard-vpcd is not installed"
    probe = subprocess.run(["unshare", "-m", "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        return f"this machine refuses private namespaces ({probe.stderr.strip() or probe.returncode})"
    return None


def _free_port_pair() -> int:
    """A port P with P and P+1 free (vpcd listens on both: one driver, two slots)."""
    for _ in range(50):
        with socket.socket() as first:
            first.bind(("0.0.0.0", 0))
            port = first.getsockname()[1]
            with socket.socket() as second:
                try:
                    second.bind(("0.0.0.0", port + 1))
                except OSError:
                    continue
        return port
    raise RuntimeError("no two adjacent free TCP ports")


def test_the_emulator_reconnects_after_pcscd_restarts_and_keeps_its_token() -> None:
    if problem := _namespace_problem():
        pytest.skip(problem)
    script = ("mkdir -p /run/pcscd && mount -t tmpfs hsm-pcscd /run/pcscd && "
              f'exec "{sys.executable}" "{CHECK}" {_free_port_pair()}')
    done = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", script],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    seen = json.loads(done.stdout)
    assert seen["before"] == ["9000", "9000", "63C2"]
    assert seen["alive_without_pcscd"] and seen["same_process"]
    assert seen["after"] == ["9000", "63C2"]  # same token, the spent try still spent
    assert seen["reconnect_s"] < 5
    assert seen["exit"] == 0
    log = seen["log"]
    # The old pcscd's listener may take one more connection while it shuts down: 1 or 2 drops.
    assert 1 <= sum("the connection (pcscd stopped?)" in line for line in log) <= 2, log
    assert len(log) <= 8, log  # a restart costs a few lines, not one per retry
