"""A token set up as its owner would: the emulator served through pcscd (`hsm-lifecycle emulate`
with its portal and its power-cut rig), initialized and given a key ONLY with OpenSC's tools
(sc-hsm-tool --initialize, pkcs11-tool --keypairgen). Nothing here writes the state file; the
serial is the one `emulate` prints (as the label on a real token would say)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from hsm_lifecycle.emulator.vpcd import EmulatorProcess, lease_port, serve_emulator, vpcd_readers
from hsm_lifecycle.protocol import VPCD_PORT

SO_PIN = "3537363231383830"
PIN = "648219"
PKCS11_READERS = 4  # OpenSC's PKCS#11 module shows only the first 4 readers
MODULES = ("/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so", "/usr/lib/aarch64-linux-gnu/opensc-pkcs11.so",
           "/usr/lib/opensc-pkcs11.so", "/usr/lib64/opensc-pkcs11.so")


@dataclass(frozen=True)
class Served:
    emulator: EmulatorProcess
    reader: str
    state: Path
    portal: Path
    rig: Path

    @property
    def serial(self) -> str:
        return self.emulator.serial


def _tool(home: Path, *args: str) -> str:
    env = {**os.environ, "HOME": str(home)}  # no OpenSC file cache shared with other tests
    done = subprocess.run(list(args), capture_output=True, text=True, timeout=120, env=env)
    if done.returncode != 0:
        raise AssertionError(f"{' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
    return done.stdout + done.stderr


def set_up_with_opensc(reader: str, home: Path, *, so_pin: str = SO_PIN, pin: str = PIN) -> None:
    """sc-hsm-tool --initialize (option 0x0001, 3 tries), then one EC key with pkcs11-tool."""
    home.mkdir(parents=True, exist_ok=True)
    out = _tool(home, "sc-hsm-tool", "-r", reader, "--initialize", "--so-pin", so_pin, "--pin", pin)
    assert "failed" not in out.lower(), out
    module = next(p for p in MODULES if os.path.exists(p))
    _tool(home, "pkcs11-tool", "--module", module, "--slot-description", reader, "--login", "--pin", pin,
          "--keypairgen", "--key-type", "EC:prime256v1", "--id", "01", "--label", "owner")


@contextlib.contextmanager
def owned_token(tmp: Path, *, owned: bool, faults: tuple[str, ...] = (), used: int | None = None) -> Iterator[Served]:
    """A served token (shipped, or set up by its owner with OpenSC) with its portal and rig;
    `used`: the firmware updates it already had for a blocked SO-PIN (`emulate --updates-used`)."""
    state, portal, rig = tmp / "token.json", tmp / "portal.sock", tmp / "rig.sock"
    ports = [p for p in sorted(vpcd_readers()) if p < VPCD_PORT + PKCS11_READERS]
    with lease_port(ports, wait=60.0) as port, _gone(vpcd_readers()[port]), serve_emulator(port, state, portal=portal, power_rig=rig,
                                                               faults=faults, updates_used=used) as emulator:  # fmt: skip
        reader = vpcd_readers()[port]
        _wait_present(reader)
        if owned:
            set_up_with_opensc(reader, tmp / "home")
        yield Served(emulator, reader, state, portal, rig)


@contextlib.contextmanager
def _gone(reader: str, timeout: float = 10.0) -> Iterator[None]:
    """The previous token on this port has left pcscd's view (it polls about every 0.4 s):
    else the first APDU of the next test may go to the card that was just stopped."""
    from hsm_lifecycle.conformance.transport.pcsc import reader_has_card

    deadline = time.monotonic() + timeout
    while reader_has_card(reader):
        if time.monotonic() > deadline:
            raise AssertionError(f"'{reader}' still shows a card although no emulator serves it")
        time.sleep(0.1)
    yield


def _wait_present(reader: str, timeout: float = 10.0) -> None:
    from hsm_lifecycle.conformance.transport.pcsc import reader_has_card

    deadline = time.monotonic() + timeout
    while not reader_has_card(reader):
        if time.monotonic() > deadline:
            raise AssertionError(f"the emulator never appeared in '{reader}'")
        time.sleep(0.1)
