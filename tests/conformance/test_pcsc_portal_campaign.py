"""The operator segment end to end: a persistent token served through pcscd by `emulate
--portal SOCKET`, set up by its owner with OpenSC's tools only, driven as `pcsc:READER`, its
portal steps done by the scripted operator."""

from __future__ import annotations

from pathlib import Path

import pytest

from hsm_lifecycle.emulator import VirtualToken

from opensc_owner import owned_token
from test_pcsc_campaign import _no_vpcd

pytestmark = [pytest.mark.pcscd, pytest.mark.skipif(_no_vpcd() is not None, reason=f"no pcscd with vpcd readers: {_no_vpcd()}")]
OWNER_PINS = ("--hsm-pin", "648219", "--hsm-so-pin", "3537363231383830")


def test_firmware_update_through_the_scripted_portal_on_a_pcsc_token(run_suite, tmp_path: Path):
    with owned_token(tmp_path, owned=True) as token:
        serial = token.serial
        run = run_suite("--hsm-target", f"pcsc:{token.reader}", *OWNER_PINS, "--hsm-serial", serial, "--hsm-allow-operator",
                        "--hsm-portal", str(token.portal), select="test_r14", isolated=True)  # fmt: skip
    assert run.rc == 0, run.output
    (record,) = [r for r in run.records if r.nodeid.endswith("test_r14_update_gives_new_identity")]
    assert record.outcome == "passed", record.why
    after = VirtualToken.open(token.state)
    assert after.serial != serial  # the portal in the emulate process really updated the token
