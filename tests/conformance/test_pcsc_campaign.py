"""The suite over the real PC/SC path: the emulator served through pcscd + vpcd, once as the
target `emulator:vpcd`, once posing as a real token (`pcsc:READER`, kind pcsc, interlocks on),
set up by its owner with OpenSC's tools and R17 cut by the power-cut rig.

Runs where pcscd offers vsmartcard's vpcd readers (scripts/test.sh starts them; HSM_PCSCD=1
then it must run); elsewhere it skips, saying why.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from hsm_lifecycle.conformance.transport.base import TransportError
from hsm_lifecycle.conformance.transport.pcsc import list_readers
from hsm_lifecycle.emulator import VirtualToken
from hsm_lifecycle.emulator.vpcd import vpcd_readers


def _no_vpcd() -> str | None:
    if os.environ.get("HSM_PCSCD"):
        return None
    try:
        readers = list_readers()
    except TransportError as exc:
        return str(exc)
    return None if set(vpcd_readers().values()) & set(readers) else "pcscd runs without vsmartcard's vpcd readers"


pytestmark = [pytest.mark.pcscd, pytest.mark.skipif(_no_vpcd() is not None, reason=f"no pcscd with vpcd readers: {_no_vpcd()}")]
OWNER_PINS = ("--hsm-pin", "648219", "--hsm-so-pin", "3537363231383830")


def test_emulator_vpcd_target_renews_the_token_for_shipped_tests(run_suite):
    run = run_suite("--hsm-target", "emulator:vpcd", select="test_r10 or test_r20 or test_r21 or test_r16", isolated=True)
    assert run.rc == 0, run.output
    assert {r.outcome for r in run.records} == {"passed"}
    target = run.summary["target"]
    assert target["kind"] == "emulator" and target["reader"] in vpcd_readers().values()
    assert "test_r21_any_code_becomes_the_so_pin" in {r.nodeid.split("::")[-1] for r in run.records}


def test_owned_token_over_pcsc_keeps_its_keys_and_tries(run_suite, tmp_path: Path):
    from opensc_owner import owned_token

    with owned_token(tmp_path, owned=True) as token:  # set up with sc-hsm-tool and pkcs11-tool only
        run = run_suite("--hsm-target", f"pcsc:{token.reader}", *OWNER_PINS, "--hsm-power-rig", str(token.rig), isolated=True)
        wrong = run_suite("--hsm-target", f"pcsc:{token.reader}", *OWNER_PINS, "--hsm-serial", "DENK0000000", isolated=True)
    state = token.state
    assert run.rc == 0, run.output
    # Power cuts in the two user-PIN checks, every try given back (below); at 15 SO tries without
    # --hsm-serial the SO-PIN tears wait for the consent to learn whether an SO try comes back.
    r17 = {c["id"]: c["verdict"] for r in run.summary["rules"] if r["id"] == "R17" for c in r["checks"]}
    assert r17 == {"R17.verify-user-tear": "pass", "R17.change-user-tear": "pass",
                   "R17.change-so-tear": "not-run", "R17.rrc-tear": "not-run"}, r17  # fmt: skip
    assert run.summary["target"]["serial"] == token.serial
    sent = [line.cmd for line in run.trace_lines() if not line.is_control]
    assert sent and not [c for c in sent if c.startswith("8050")]
    assert wrong.rc == 3 and "does not match" in wrong.output
    after = VirtualToken.open(state)
    after.power_on()
    status = after.status()
    assert (status.so_tries, status.user_tries) == (15, 3) and 0xCC01 in status.keys
