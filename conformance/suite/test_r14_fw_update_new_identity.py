"""R14 fw-update-new-identity: after an update the token is as shipped (no SO-PIN, no user PIN,
no keys, certificates or data objects) and has a new identity: a new EF.C_DevAut whose chain
verifies to the same root. The suite writes a certificate and data objects before the update
(a keyless token is admitted with them, R12), so "nothing left" is seen, not assumed."""

import pytest

from hsm_lifecycle.conformance import offalphabet as raw
from hsm_lifecycle.conformance.renewal import check_renewed
from hsm_lifecycle.model.commands import Command as C

# A certificate, a readable and a PIN-protected data object, as in test_r07.
OBJECTS = {0xCE01: b"\x30\x03\x02\x01\x07", 0xCF01: b"suite data object", 0xCD01: b"suite protected data object"}
READABLE = (0xCE01, 0xCF01)  # readable without a PIN, so also on an uninitialized token


@pytest.mark.rule("R14")
@pytest.mark.cost("operator")
@pytest.mark.walk(updates=1, leaves="firmware-reset", decides=("R14.as-shipped", "R14.no-keys", "R14.new-identity", "R14.same-root"))
def test_r14_update_gives_new_identity(hsm):
    hsm.require_portal()
    hsm.provision()
    hsm.step(C.verify_user("right"))
    while hsm.state.keys:  # a used token: the update needs it empty (R12)
        hsm.step(C.delete_key())
    raw.write_objects(hsm, OBJECTS, "R14.no-keys")
    before = hsm.identity()
    try:
        hsm.step(C.firmware_update())
    except pytest.skip.Exception:  # no update after all: take the suite's objects off again
        for fid in OBJECTS:
            raw.send(hsm, f"DELETE FILE {fid:04X} (clean up)", raw.delete_file(fid))
        raise
    check_renewed(hsm, before, READABLE)
