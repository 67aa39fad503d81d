"""Firmware update through the portal (R12–R14): the gate, the SO-blocked limit, the new
identity, remote devices, and the portal's fault switches."""

from __future__ import annotations

import pytest

from hsm_lifecycle.emulator import Fault, VirtualToken
from hsm_lifecycle.emulator.portal import (
    MSG_CONTAINS_KEYS,
    UPDATE_LIMIT,
    PluggedDevice,
    Portal,
    PortalFault,
    UpdateVerdict,
    split_faults,
)
from hsm_lifecycle import cvc
from hsm_lifecycle.protocol import FID_C_DEVAUT, FID_DEVICE_KEY, PIN_SO, PIN_USER, SW
from hsm_lifecycle.model.commands import Command
from portal_helpers import ACCOUNT, PIN, Hsm, logged_in

QUERY_USER = bytes([0x00, 0x20, 0x00, PIN_USER])
QUERY_SO = bytes([0x00, 0x20, 0x00, PIN_SO])


def test_refused_while_keys_and_nothing_changes_not_even_the_session(session, hsm):
    token = hsm().initialized(keys=1)
    token.do(Command.verify_user("right"))
    before, writes = token.token.status(), token.token.writes
    result = session.update(token.device)
    assert (result.verdict, result.message) == (UpdateVerdict.REFUSED_KEYS, MSG_CONTAINS_KEYS)
    assert token.token.status() == before and token.token.writes == writes
    assert token.do(Command.sign()) == ["9000"]  # the user session survived the portal's reads


def test_admitted_without_keys_back_to_shipped_with_a_new_identity(session, hsm):
    token = hsm().initialized(keys=2)
    token.do(Command.verify_user("right"), Command.delete_key(), Command.delete_key(), Command.select())
    old = token.chain()
    result = session.update(token.device)
    assert (result.verdict, result.counted, result.old_chr) == (UpdateVerdict.OK, False, old.device_chr)
    status = token.token.status()
    assert not status.initialized and status.keys == (FID_DEVICE_KEY,) and status.files == (FID_C_DEVAUT,)
    assert (status.identity_generation, status.so_blocked_updates) == (1, 0)
    assert token.sw(QUERY_USER) == token.sw(QUERY_SO) == SW.REFERENCED_DATA_NOT_FOUND
    new = token.chain()
    assert new.device_chr == result.new_chr != old.device_chr
    assert new.root_chr == old.root_chr and new.dica_chr == old.dica_chr
    assert new.device_public_key.public_numbers() != old.device_public_key.public_numbers()


@pytest.mark.parametrize("keys, verdict", [(0, UpdateVerdict.OK), (1, UpdateVerdict.REFUSED_KEYS)])
def test_a_blocked_user_pin_neither_stops_nor_opens_an_update(session, hsm, keys, verdict):
    token = hsm().initialized(keys=keys).block_user()
    assert session.update(token.device).verdict is verdict


def test_a_shipped_token_is_updated_uncounted(session, hsm):
    token = hsm()
    result = session.update(token.device)
    assert (result.verdict, result.counted) == (UpdateVerdict.OK, False)
    assert token.token.status().identity_generation == 1


def test_so_blocked_updates_count_to_five_then_only_an_empty_token_is_updated(session, hsm, tmp_path):
    path = tmp_path / "token.json"
    token = hsm(path)
    for n in range(UPDATE_LIMIT):
        token.initialized(keys=1).block_so()
        result = session.update(token.device)
        assert (result.verdict, result.counted) == (UpdateVerdict.OK, True), n
        assert token.token.status().so_blocked_updates == n + 1
    token.initialized(keys=1).block_so()
    token.token.power_off()
    reopened = Hsm.wrap(VirtualToken.open(path))  # the count is the device's, persistent
    refused = session.update(reopened.device)
    assert refused.verdict is UpdateVerdict.REFUSED_LIMIT
    reopened.do(Command.verify_user("right"), Command.delete_key(), Command.select())
    admitted = session.update(reopened.device)  # condition 1 (no keys) still holds
    assert (admitted.verdict, admitted.counted) == (UpdateVerdict.OK, False)
    assert reopened.token.status().so_blocked_updates == UPDATE_LIMIT


def test_so_blocked_update_counts_even_without_keys(session, hsm):
    """The blocked-SO path re-installs the current version whatever the keys: it is the waiver
    the limit applies to (docs/design.md, firmware_update)."""
    token = hsm().initialized().block_so()
    assert session.update(token.device).counted
    assert token.token.status().so_blocked_updates == 1


def test_a_registered_remote_device_is_updated_and_must_register_again(portal, session, hsm):
    remote = hsm().initialized(keys=1).block_user().block_so()  # bricked but for the portal
    chr_ = session.register(remote.device)
    assert chr_ in session.account.registered
    result = session.update_registered(chr_)
    assert (result.verdict, result.counted) == (UpdateVerdict.OK, True)
    assert chr_ not in session.account.registered  # the old identity is gone
    with pytest.raises(KeyError):
        session.update_registered(chr_)


def test_updating_the_login_hsm_drops_its_account_binding(portal, hsm):
    token = hsm().initialized()
    own = portal.login(token.device, PIN, email=ACCOUNT).session
    assert own is not None
    assert own.update(token.device).verdict is UpdateVerdict.OK
    token.initialized()
    assert portal.login(token.device, PIN).refusal is not None  # a new identity: sign up again
    assert portal.login(token.device, PIN, email=ACCOUNT).session is not None


def test_a_device_not_issued_under_the_root_is_not_updated(hsm):
    session = logged_in(Portal())
    token = hsm()
    session.portal = Portal(root=cvc.load_cardcontact_root())  # a portal that trusts genuine tokens only
    result = session.update(token.device)
    assert result.verdict is UpdateVerdict.REFUSED_DEVICE
    assert token.token.status().identity_generation == 0


# -- fault switches ---------------------------------------------------------------------------


def faulty(fault: PortalFault):
    return logged_in(Portal(faults=frozenset({fault})))


def test_fault_update_with_keys(hsm):
    token = hsm().initialized(keys=1)
    assert faulty(PortalFault.UPDATE_WITH_KEYS).update(token.device).verdict is UpdateVerdict.OK


def test_fault_unlimited_updates(hsm):
    session, token = faulty(PortalFault.UNLIMITED_UPDATES), hsm()
    for _ in range(UPDATE_LIMIT + 1):
        token.initialized(keys=1).block_so()
        assert session.update(token.device).verdict is UpdateVerdict.OK
    assert token.token.status().so_blocked_updates == UPDATE_LIMIT + 1


def test_fault_identity_kept_on_update(hsm):
    token = hsm().initialized()
    before = token.chain()
    result = faulty(PortalFault.IDENTITY_KEPT_ON_UPDATE).update(token.device)
    assert result.verdict is UpdateVerdict.OK and result.new_chr == before.device_chr
    assert not token.token.status().initialized
    assert token.chain().device_chr == before.device_chr


def test_split_faults_routes_each_switch():
    token, portal = split_faults(["reinit-keeps-keys", "unlimited-updates", Fault.SO_UNBLOCKABLE])
    assert token == {Fault.REINIT_KEEPS_KEYS, Fault.SO_UNBLOCKABLE}
    assert portal == {PortalFault.UNLIMITED_UPDATES}
    with pytest.raises(ValueError, match="unknown emulator fault 'no-such-fault'"):
        split_faults(["no-such-fault"])


def test_plugged_device_of_a_token_reaches_its_loader():
    token = VirtualToken.manufacture()
    device = PluggedDevice.of(token)
    assert device.loader.so_blocked_updates() == 0
    device.loader.install(counted=True, keep_identity=False)
    assert token.status().so_blocked_updates == 1 and token.status().identity_generation == 1


def test_the_portal_is_independent_of_model_and_conformance():
    import subprocess
    import sys

    code = "import sys, emulator.portal; print(sorted({m.split('.')[0] for m in sys.modules} & {'model', 'conformance'}))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
