"""R15 portal-needs-working-hsm: logging into the portal needs device authentication plus the
user PIN on a token that is initialized, not user-blocked and past its transport PIN. A blocked
SO-PIN does not matter (that token's owner can still log in, and update it)."""

import pytest

from hsm_lifecycle.protocol import OPTION_RESET_RETRY_COUNTER, OPTION_TRANSPORT_PIN
from hsm_lifecycle.model.commands import Command as C


@pytest.mark.rule("R15")
@pytest.mark.cost("operator")
def test_r15_blocked_token_cannot_log_in(hsm):
    hsm.require_portal()
    if not hsm.state.is_initialized:
        hsm.step(C.portal_login())  # shipped: no user PIN to authenticate with
    hsm.provision(options=OPTION_RESET_RETRY_COUNTER)
    hsm.steps(C.portal_login(), C.generate_key())  # logged in: the login's VERIFY opened the session
    while hsm.state.user_tries:
        hsm.step(C.verify_user("wrong"))
    hsm.steps(C.portal_login(), C.reset_retry_counter("right", False), C.portal_login())
    hsm.provision(options=OPTION_TRANSPORT_PIN | OPTION_RESET_RETRY_COUNTER)
    hsm.step(C.portal_login())


@pytest.mark.rule("R15")
@pytest.mark.cost("operator")
@pytest.mark.walk(leaves="so-blocked")
def test_r15_so_blocked_token_still_logs_in(hsm):
    hsm.require_portal()
    hsm.provision()
    while hsm.state.so_tries:
        hsm.step(C.change_so_pin("wrong"))  # irreversible: needs --hsm-allow-irreversible on a token
    hsm.steps(C.portal_login(), C.query_user())
