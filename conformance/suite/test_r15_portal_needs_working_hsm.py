"""R15 portal-needs-working-hsm: logging into the portal needs device authentication plus the
user PIN on a token that is initialized, not user-blocked and past its transport PIN. A blocked
SO-PIN does not matter (that token's owner can still log in, and update it)."""

import pytest

from hsm_lifecycle.protocol import OPTION_RESET_RETRY_COUNTER, OPTION_TRANSPORT_PIN
from hsm_lifecycle.model.commands import Command as C


@pytest.mark.rule("R15")
@pytest.mark.cost("operator")
@pytest.mark.walk(decides=("R15.working-logs-in", "R15.user-blocked-refused", "R15.transport-refused"))
def test_r15_blocked_token_cannot_log_in(hsm):
    hsm.require_portal()
    if not hsm.state.is_initialized:
        with hsm.checking("R15.uninitialized-refused"):
            hsm.step(C.portal_login())  # shipped: no user PIN to authenticate with
    hsm.provision(options=OPTION_RESET_RETRY_COUNTER)
    with hsm.checking("R15.working-logs-in"):
        hsm.steps(C.portal_login(), C.generate_key())  # logged in: the login's VERIFY opened the session
    while hsm.state.user_tries:
        hsm.step(C.verify_user("wrong"))
    with hsm.checking("R15.user-blocked-refused"):
        hsm.step(C.portal_login())
    hsm.steps(C.reset_retry_counter("right", False), C.portal_login())
    hsm.provision(options=OPTION_TRANSPORT_PIN | OPTION_RESET_RETRY_COUNTER)
    with hsm.checking("R15.transport-refused"):
        hsm.step(C.portal_login())


@pytest.mark.rule("R15")
@pytest.mark.cost("operator")
@pytest.mark.walk(start="user-working", leaves="so-blocked", decides=("R15.so-blocked-logs-in",))
def test_r15_so_blocked_token_still_logs_in(hsm):
    hsm.require_portal()
    if hsm.state.so_tries:  # a token whose SO-PIN works: block it (a campaign's last step does that anyway)
        hsm.provision()
        while hsm.state.so_tries:
            hsm.step(C.change_so_pin("wrong"))  # irreversible: needs --hsm-allow-irreversible on a token
    with hsm.checking("R15.so-blocked-logs-in"):
        hsm.steps(C.portal_login(), C.query_user())
