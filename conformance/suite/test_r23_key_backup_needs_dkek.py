"""R23 key-backup-needs-dkek: a key leaves only wrapped under a complete DKEK, comes back only
where the same DKEK is held, and INITIALIZE erases the DKEK with the keys.

The DKEK sub-model (model.dkek) says what each DKEK command must answer; the lifecycle model
judges the INITIALIZE, VERIFY and GENERATE steps around them as usual. The token ends
re-initialized without a DKEK, as the suite's other checks expect.
"""

from __future__ import annotations

import hashlib

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec, utils
from cryptography.hazmat.primitives import hashes

from hsm_lifecycle import cvc
from hsm_lifecycle.protocol import describe_sw
from hsm_lifecycle.conformance import dkek as device
from hsm_lifecycle.model import dkek as model
from hsm_lifecycle.model.commands import Command as C

DIGEST = hashlib.sha256(b"signed by a key restored from its DKEK blob").digest()


class Backup:
    """One token's DKEK, driven and judged step by step against the DKEK sub-model."""

    def __init__(self, hsm) -> None:
        self.hsm = hsm
        self.state = model.DkekState()

    def judge(self, what: str, expected: model.Expected, sw: str, check: str) -> None:
        answer = "accepted (9000)" if sw == "9000" else f"refused ({describe_sw(sw)})"
        want = "accept" if expected.ok else "refuse"
        self.hsm.check((sw == "9000") == expected.ok, f"{what}: the token {answer}, R23 says it must {want} ({expected.transition})", check)
        self.state = expected.next

    def initialize(self, shares: int | None, check: str) -> None:
        self.hsm.mapper.dkek_shares = shares
        try:
            self.hsm.step(C.initialize("right"))
        finally:
            self.hsm.mapper.dkek_shares = None
        self.state = model.initialize(self.state, shares).next
        self.check_status(f"after INITIALIZE with {shares or 'no'} DKEK share(s)", check)

    def check_status(self, when: str, check: str) -> None:
        expected = model.dkek_status(self.state)
        rsp, status = device.status(self.hsm.mapper)
        if not expected.ok:
            self.hsm.check(status is None, f"DKEK status {when}: the token reports a DKEK ({rsp.data.hex()}), there should be none", check)
            return
        got = None if status is None else (status.shares, status.outstanding)
        self.hsm.check(got == expected.status, f"DKEK status {when}: (shares, outstanding) = {got or rsp.sw_hex}, expected {expected.status}", check)

    def import_share(self, name: str, check: str) -> None:
        # Importing is the way in, not what R23 forbids: a refusal fails the check that builds on it.
        sw = device.import_share(self.hsm.mapper, device.SHARES[name]).sw_hex
        expected = model.import_share(self.state, name)
        self.hsm.precondition((sw == "9000") == expected.ok, f"IMPORT DKEK SHARE {name} answered {describe_sw(sw)} ({expected.transition})", check)
        self.state = expected.next

    def wrap(self, key_id: int, key_present: bool, check: str) -> bytes:
        rsp = device.wrap(self.hsm.mapper, key_id)
        self.judge(f"WRAP KEY {key_id:02X}", model.wrap(self.state, key_present), rsp.sw_hex, check)
        return rsp.data

    def unwrap(self, key_id: int, blob: bytes, blob_dkek: tuple[str, ...] | None, what: str, check: str) -> bool:
        sw = device.unwrap(self.hsm.mapper, key_id, blob).sw_hex
        self.judge(f"UNWRAP KEY {key_id:02X} ({what})", model.unwrap(self.state, blob_dkek), sw, check)
        return sw == "9000"


SAME = "R23.unwrap-needs-same-dkek"


def _public_key(hsm, key_id: int) -> ec.EllipticCurvePublicKey:
    rsp = device.read_request(hsm.mapper, key_id)
    hsm.precondition(rsp.sw_hex in ("9000", "6282"), f"reading the key's CV request (CE{key_id:02X}) answered {describe_sw(rsp.sw_hex)}", SAME)
    key = cvc.request_public_key(rsp.data)
    hsm.precondition(isinstance(key, ec.EllipticCurvePublicKey), "the suite's key is not an EC key", SAME)
    return key  # type: ignore[return-value]


@pytest.mark.rule("R23")
@pytest.mark.cost("wipes")
def test_r23_a_key_leaves_only_under_a_complete_dkek_and_returns_only_to_the_same_one(hsm):
    hsm.provision()
    backup = Backup(hsm)
    # A key made under DKEK "A" (one share), wrapped.
    backup.initialize(1, "R23.status-follows-init")
    backup.import_share("A", SAME)
    hsm.steps(C.verify_user("right"), C.generate_key())
    key_id = hsm.mapper.newest_key
    public = _public_key(hsm, key_id)
    blob = backup.wrap(key_id, key_present=True, check=SAME)
    made_under = backup.state.identity

    # Re-initialized with two shares: INITIALIZE took the old DKEK away with the key, and half
    # a DKEK opens nothing.
    backup.initialize(2, "R23.init-erases-dkek")
    backup.import_share("A", "R23.needs-complete-dkek")
    hsm.step(C.verify_user("right"))
    backup.wrap(key_id, key_present=False, check="R23.init-erases-dkek")
    backup.unwrap(key_id, blob, made_under, "shares outstanding", "R23.needs-complete-dkek")
    # Complete, but "A"+"B" is another DKEK than "A".
    backup.import_share("B", SAME)
    backup.unwrap(key_id, blob, made_under, "another DKEK", SAME)

    # Back under "A" alone: the key returns, and it is the same key.
    backup.initialize(1, "R23.status-follows-init")
    backup.import_share("A", SAME)
    hsm.step(C.verify_user("right"))
    if backup.unwrap(key_id, blob, made_under, "the same DKEK", SAME):
        rsp = device.sign_hash(hsm.mapper, key_id, DIGEST)
        hsm.precondition(rsp.sw_hex == "9000", f"SIGN with the unwrapped key answered {describe_sw(rsp.sw_hex)}", SAME)
        try:
            public.verify(rsp.data, DIGEST, ec.ECDSA(utils.Prehashed(hashes.SHA256())))
        except InvalidSignature:
            hsm.fail("the unwrapped key is not the key that was wrapped: its signature does not verify", (SAME,))
        hsm.decided(SAME)
        # The unwrapped key is the suite's, not the model's: remove it before the model looks.
        device.delete_key(hsm.mapper, key_id)
    # Leave no DKEK behind.
    hsm.step(C.initialize("right"))
    backup.state = model.initialize(backup.state, None).next
    backup.check_status("after INITIALIZE without DKEK shares", "R23.init-erases-dkek")
    hsm.check_keys()
