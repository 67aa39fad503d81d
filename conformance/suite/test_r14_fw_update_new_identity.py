"""R14 fw-update-new-identity: after an update the token is as shipped (no SO-PIN, no user PIN,
no keys) and has a new identity: a new EF.C_DevAut whose chain verifies to the same root."""

import pytest

from hsm_lifecycle.cvc import load_roots, verify_c_devaut
from hsm_lifecycle.protocol import FID_C_DEVAUT, FID_DEVICE_KEY
from hsm_lifecycle.model.commands import Command as C

OBJECT_PREFIXES = range(0xC4, 0xD0)  # keys, certificates, data objects (§4)


@pytest.mark.rule("R14")
@pytest.mark.cost("operator")
@pytest.mark.walk(updates=1, leaves="firmware-reset")
def test_r14_update_gives_new_identity(hsm):
    hsm.require_portal()
    hsm.provision()
    if hsm.state.keys:  # a used token: the update needs it empty (R12)
        hsm.step(C.verify_user("right"))
        while hsm.state.keys:
            hsm.step(C.delete_key())
    before = hsm.identity()
    hsm.step(C.firmware_update())
    with hsm.checking("R14.as-shipped"):
        hsm.steps(C.query_so(), C.query_user(), C.verify_user("right"))
    after = hsm.identity()
    hsm.check(after != before, "EF.C_DevAut is unchanged after a firmware update", "R14.new-identity")
    roots = load_roots()
    old, new = (verify_c_devaut(x, roots[hsm.issuer_root(x, ("R14.same-root",))]) for x in (before, after))
    hsm.check(old.root_chr == new.root_chr, f"the new identity chains to {new.root_chr}, not {old.root_chr}", "R14.same-root")
    hsm.check(new.device_chr != old.device_chr, f"the new device certificate keeps the CHR {old.device_chr}", "R14.new-identity")
    fids = hsm.read("enumerate objects", hsm.mapper.enumerate_objects)
    left = [f"{fid:04X}" for fid in fids or () if fid >> 8 in OBJECT_PREFIXES and fid not in (FID_DEVICE_KEY, FID_C_DEVAUT)]
    hsm.check(not left, f"objects left after the firmware update: {', '.join(left)}", "R14.no-keys")
