"""Portal login (R15): device authentication (2F02 chain + a fresh challenge signed with CC00)
plus the user PIN on an HSM that is initialized, not user-blocked and past its transport PIN."""

from __future__ import annotations

import pytest

from hsm_lifecycle.emulator.portal import (
    LoginRefusal,
    LoginVerdict,
    PluggedDevice,
    Portal,
    PortalFault,
    TokenLoader,
)
from hsm_lifecycle import cvc
from hsm_lifecycle.protocol import ALGO_ECDSA_SHA256, PIN_USER, Ins
from hsm_lifecycle.model.commands import Command
from portal_helpers import ACCOUNT, PIN, recording


def test_working_hsm_signs_up_then_logs_in_by_itself(portal, hsm):
    token = hsm().initialized()
    first = portal.login(token.device, PIN, email=ACCOUNT)
    assert first.verdict is LoginVerdict.OK and first.session is not None
    assert first.session.account.email == ACCOUNT
    again = portal.login(token.device, PIN)  # the HSM is the credential: no e-mail needed
    assert again.verdict is LoginVerdict.OK and again.session.account is first.session.account
    status = token.token.status()
    assert status.authenticated and status.user_tries == status.user_max


def test_login_apdus_are_chain_read_verify_then_device_signature(portal, hsm):
    token = hsm().initialized()
    link, sent = recording(token.token.transmit)
    result = portal.login(PluggedDevice(link, TokenLoader(token.token)), PIN, email=ACCOUNT)
    assert result.verdict is LoginVerdict.OK
    steps = [(capdu[1], capdu[3]) for capdu in sent]
    assert all(ins != Ins.GET_CHALLENGE for ins, _ in steps)  # the portal sends its own challenge
    read_2f02, verify_81, sign_00 = (Ins.READ_BINARY_ODD, 0x02), (Ins.VERIFY, PIN_USER), (Ins.SIGN, ALGO_ECDSA_SHA256)
    assert steps.index(read_2f02) < steps.index(verify_81) < steps.index(sign_00)
    sign = next(c for c in sent if c[1] == Ins.SIGN)
    assert sign[2] == 0x00 and len(sign) == 5 + 32 + 1  # key CC00 (the device key), 32-byte challenge


@pytest.mark.parametrize(
    "setup, refusal",
    [
        (lambda h: h, LoginRefusal.NOT_INITIALIZED),
        (lambda h: h.initialized().block_user(), LoginRefusal.PIN_BLOCKED),
        (lambda h: h.initialized().block_user().block_so(), LoginRefusal.PIN_BLOCKED),
        (lambda h: h.transport_pin(), LoginRefusal.TRANSPORT_PIN),
    ],
    ids=["shipped", "user-blocked", "both-blocked", "transport-pin"],
)
def test_an_hsm_that_does_not_work_cannot_log_in_and_nothing_changes(portal, hsm, setup, refusal):
    token = setup(hsm())
    before = token.token.status()
    result = portal.login(token.device, PIN, email=ACCOUNT)
    assert (result.verdict, result.refusal, result.session) == (LoginVerdict.REFUSED, refusal, None)
    assert token.token.status() == before
    assert ACCOUNT not in portal.accounts


def test_a_blocked_so_pin_does_not_stop_a_login(portal, hsm):
    token = hsm().initialized(keys=1).block_so()
    assert portal.login(token.device, PIN, email=ACCOUNT).verdict is LoginVerdict.OK


def test_wrong_pin_is_refused_and_costs_the_try_the_card_takes(portal, hsm):
    token = hsm().initialized()
    result = portal.login(token.device, b"999999", email=ACCOUNT)
    assert result.refusal is LoginRefusal.WRONG_PIN
    assert token.token.status().user_tries == token.token.status().user_max - 1


def test_unknown_hsm_without_email_and_foreign_hsm_are_refused_before_any_pin(portal, hsm):
    token = hsm().initialized()
    assert portal.login(token.device, PIN).refusal is LoginRefusal.UNKNOWN_DEVICE
    assert portal.login(token.device, PIN, email=ACCOUNT).verdict is LoginVerdict.OK
    token.do(Command.select())
    writes = token.token.writes
    assert portal.login(token.device, PIN, email="someone-else@example.org").refusal is LoginRefusal.OTHER_ACCOUNT
    assert token.token.writes == writes and not token.token.status().authenticated


def test_hsm_not_issued_under_the_portals_root_is_refused(hsm):
    token = hsm().initialized()
    genuine_only = Portal(root=cvc.load_cardcontact_root())
    writes = token.token.writes
    assert genuine_only.login(token.device, PIN, email=ACCOUNT).refusal is LoginRefusal.NOT_GENUINE
    assert token.token.writes == writes  # no PIN was presented


def test_a_signature_that_does_not_verify_is_refused(portal, hsm):
    """A device whose answer to the challenge is not its certified key's signature (a clone
    with a copied 2F02, say): the portal checks the signature, not just the SW."""
    token = hsm().initialized()

    def tamper(capdu: bytes) -> bytes:
        rapdu = token.token.transmit(capdu)
        if capdu[1] == Ins.SIGN and rapdu[-2:] == b"\x90\x00":
            return rapdu[:10] + bytes([rapdu[10] ^ 1]) + rapdu[11:]
        return rapdu

    result = portal.login(PluggedDevice(tamper, TokenLoader(token.token)), PIN, email=ACCOUNT)
    assert result.refusal is LoginRefusal.DEVICE_AUTH_FAILED


def test_fault_blocked_hsm_logs_in(hsm):
    faulty = Portal(faults=frozenset({PortalFault.BLOCKED_HSM_LOGS_IN}))
    blocked = hsm().initialized().block_user()
    assert faulty.login(blocked.device, PIN, email=ACCOUNT).verdict is LoginVerdict.OK
    transport = hsm().transport_pin()  # the fault is about blocked PINs only
    assert faulty.login(transport.device, PIN, email=ACCOUNT).refusal is LoginRefusal.TRANSPORT_PIN
