"""What a firmware update must leave behind (R14), judged wherever a test made one: the token as
shipped, no objects but the device identity, a new identity that chains to the same root.
Shared so that a campaign short of updates decides R14 within the update R13 makes anyway."""

from __future__ import annotations

from typing import TYPE_CHECKING

from collections.abc import Iterable

from hsm_lifecycle.conformance import offalphabet as raw
from hsm_lifecycle.cvc import CvcError, load_roots, verify_c_devaut
from hsm_lifecycle.model.commands import Command
from hsm_lifecycle.protocol import FID_C_DEVAUT, FID_DEVICE_KEY

if TYPE_CHECKING:
    from hsm_lifecycle.conformance.device import Device

OBJECT_PREFIXES = range(0xC4, 0xD0)  # keys, certificates, data objects (§4)


def check_renewed(hsm: Device, before: bytes, readable: Iterable[int] = ()) -> None:
    """R14's checks right after an admitted update; `before` is EF.C_DevAut read before it,
    `readable` the objects the test wrote before it that anyone could read (seen gone, not assumed)."""
    with hsm.checking("R14.as-shipped"):
        hsm.steps(Command.query_so(), Command.query_user(), Command.verify_user("right"))
    after = hsm.identity()
    hsm.check(after != before, "EF.C_DevAut is unchanged after a firmware update", "R14.new-identity")
    # The root each DICA names, compared by name first: a chain to an unpublished root is no crash.
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
    if readable:
        raw.check_erased(hsm, readable, "R14.no-keys")
