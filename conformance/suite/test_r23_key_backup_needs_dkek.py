"""R23 key-backup-needs-dkek: a key leaves only wrapped under a complete DKEK, comes back only
where the same DKEK is held, and INITIALIZE erases the DKEK with the keys.

Every DKEK command is a judged step (the model's key-backup transitions); the one thing a status
word cannot show, that the restored key is the wrapped one, is read beside them: it signs, and
the wrapped key's public key verifies. The token ends re-initialized without a DKEK.
"""

from __future__ import annotations

import hashlib

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, utils

from hsm_lifecycle import cvc
from hsm_lifecycle.conformance import dkek as device
from hsm_lifecycle.model.commands import Command as C
from hsm_lifecycle.protocol import describe_sw

DIGEST = hashlib.sha256(b"signed by a key restored from its DKEK blob").digest()
SAME = "R23.unwrap-needs-same-dkek"


def _public_key(hsm, key_id: int) -> ec.EllipticCurvePublicKey:
    rsp = device.read_request(hsm.mapper, key_id)
    hsm.precondition(rsp.sw_hex in ("9000", "6282"), f"reading the key's CV request (CE{key_id:02X}) answered {describe_sw(rsp.sw_hex)}", SAME)
    key = cvc.request_public_key(rsp.data)
    hsm.precondition(isinstance(key, ec.EllipticCurvePublicKey), "the suite's key is not an EC key", SAME)
    return key  # type: ignore[return-value]


def _signs_as(hsm, public: ec.EllipticCurvePublicKey) -> None:
    """The key UNWRAP restored signs, and the wrapped key's public key verifies it."""
    key_id = hsm.mapper.newest_key
    rsp = device.sign_hash(hsm.mapper, key_id, DIGEST)
    hsm.precondition(rsp.sw_hex == "9000", f"SIGN with the unwrapped key {key_id:02X} answered {describe_sw(rsp.sw_hex)}", SAME)
    try:
        public.verify(rsp.data, DIGEST, ec.ECDSA(utils.Prehashed(hashes.SHA256())))
    except InvalidSignature:
        hsm.fail("the unwrapped key is not the key that was wrapped: its signature does not verify", (SAME,))


@pytest.mark.rule("R23")
@pytest.mark.cost("wipes")
def test_r23_a_key_leaves_only_under_a_complete_dkek_and_returns_only_to_the_same_one(hsm):
    hsm.provision()
    # DKEK "A" (one share): announced, then complete; a second share is one too many.
    with hsm.checking("R23.status-follows-init"):
        hsm.steps(C.initialize("right", dkek_shares=1), C.dkek_status(), C.import_dkek_share("right"), C.dkek_status(),
                  C.import_dkek_share("wrong"), C.dkek_status())
    hsm.steps(C.verify_user("right"), C.generate_key())
    public = _public_key(hsm, hsm.mapper.newest_key)
    with hsm.checking(SAME):
        hsm.step(C.wrap_key())  # the mapper holds the blob, the model the DKEK it was made under

    # Re-initialized with two shares: the old DKEK went with the key, and half a DKEK opens nothing.
    with hsm.checking("R23.init-erases-dkek"):
        hsm.steps(C.initialize("right", dkek_shares=2), C.dkek_status())
    with hsm.checking("R23.needs-complete-dkek"):
        hsm.steps(C.verify_user("right"), C.generate_key(), C.wrap_key(), C.import_dkek_share("right"), C.dkek_status(),
                  C.wrap_key(), C.unwrap_key("held"))
    # Complete, but A+B is another DKEK than A; a tampered blob opens under none.
    with hsm.checking(SAME):
        hsm.steps(C.import_dkek_share("wrong"), C.dkek_status(), C.unwrap_key("held"), C.unwrap_key("tampered"))
        # Back under A alone: the key returns, and it is the same key.
        hsm.steps(C.initialize("right", dkek_shares=1), C.import_dkek_share("right"), C.verify_user("right"),
                  C.unwrap_key("tampered"), C.unwrap_key("held"))
        _signs_as(hsm, public)
        hsm.check_keys()

    # Leave no DKEK behind: without tag 92 there is none, and nothing can be wrapped.
    with hsm.checking("R23.init-erases-dkek"):
        hsm.steps(C.initialize("right"), C.dkek_status(), C.import_dkek_share("right"), C.verify_user("right"),
                  C.wrap_key(), C.unwrap_key("held"))
    hsm.check_keys()
