"""R14 fw-update-new-identity: after an update the token is as shipped (no SO-PIN, no user PIN,
no keys, certificates or data objects) and has a new identity: a new EF.C_DevAut whose chain
verifies to the same root. The suite writes a certificate and data objects before the update
(a keyless token is admitted with them, R12), so "nothing left" is seen, not assumed."""

import pytest

from hsm_lifecycle.conformance import offalphabet as raw
from hsm_lifecycle.cvc import CvcError, load_roots, verify_c_devaut
from hsm_lifecycle.protocol import FID_C_DEVAUT, FID_DEVICE_KEY
from hsm_lifecycle.model.commands import Command as C

OBJECT_PREFIXES = range(0xC4, 0xD0)  # keys, certificates, data objects (§4)
# A certificate, a readable and a PIN-protected data object, as in test_r07.
OBJECTS = {0xCE01: b"\x30\x03\x02\x01\x07", 0xCF01: b"suite data object", 0xCD01: b"suite protected data object"}
READABLE = (0xCE01, 0xCF01)  # readable without a PIN, so also on an uninitialized token


@pytest.mark.rule("R14")
@pytest.mark.cost("operator")
@pytest.mark.walk(updates=1, leaves="firmware-reset")
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
    with hsm.checking("R14.as-shipped"):
        hsm.steps(C.query_so(), C.query_user(), C.verify_user("right"))
    after = hsm.identity()
    hsm.check(after != before, "EF.C_DevAut is unchanged after a firmware update", "R14.new-identity")
    old_root, new_root = (hsm.issuer_root(x, ("R14.same-root",)) for x in (before, after))
    hsm.check(new_root == old_root, f"the new identity's DICA names the root {new_root}, the old one {old_root}", "R14.same-root")
    try:
        old, new = (verify_c_devaut(x, load_roots()[old_root]) for x in (before, after))
    except (KeyError, CvcError) as exc:
        hsm.fail(f"EF.C_DevAut does not verify to the root {old_root}: {exc}", ("R14.same-root",))
    hsm.check(new.device_chr != old.device_chr, f"the new device certificate keeps the CHR {old.device_chr}", "R14.new-identity")
    fids = hsm.read("enumerate objects", hsm.mapper.enumerate_objects)
    left = [f"{fid:04X}" for fid in fids or () if fid >> 8 in OBJECT_PREFIXES and fid not in (FID_DEVICE_KEY, FID_C_DEVAUT)]
    hsm.check(not left, f"objects left after the firmware update: {', '.join(left)}", "R14.no-keys")
    raw.check_erased(hsm, READABLE, "R14.no-keys")
