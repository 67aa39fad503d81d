"""The operator segment end to end: a persistent token served through pcscd by `emulate
--portal SOCKET`, driven as `pcsc:READER`, its portal steps done by the scripted operator."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from hsm_lifecycle.conformance.targets import AsRealTarget
from hsm_lifecycle.emulator import VirtualToken
from hsm_lifecycle.emulator.vpcd import lease_port, serve_emulator, vpcd_readers

from test_pcsc_campaign import _no_vpcd

pytestmark = [pytest.mark.pcscd, pytest.mark.skipif(_no_vpcd() is not None, reason=f"no pcscd with vpcd readers: {_no_vpcd()}")]
OWNER_PINS = ("--hsm-pin", "648219", "--hsm-so-pin", "3537363231383830")


def test_firmware_update_through_the_scripted_portal_on_a_pcsc_token(run_suite, tmp_path: Path):
    state, sock = tmp_path / "owned.json", tmp_path / "portal.sock"
    token = VirtualToken.manufacture(state_path=state)
    AsRealTarget.set_up_as_owner(token)
    token.power_off()
    serial = token.serial
    with lease_port(wait=60.0) as port, serve_emulator(port, state, portal=sock):
        reader = vpcd_readers()[port]
        time.sleep(0.5)  # pcscd polls for the card about every 0.4 s
        run = run_suite("--hsm-target", f"pcsc:{reader}", *OWNER_PINS, "--hsm-serial", serial, "--hsm-allow-operator",
                        "--hsm-portal", str(sock), select="test_r14", isolated=True)  # fmt: skip
    assert run.rc == 0, run.output
    (record,) = [r for r in run.records if r.nodeid.endswith("test_r14_update_gives_new_identity")]
    assert record.outcome == "passed", record.why
    after = VirtualToken.open(state)
    assert after.serial != serial  # the portal in the emulate process really updated the token
