"""The forum thread (shared/story): "Initialize Nitrokey HSM Device Blocked", step by step.

An owner who no longer knows the SO-PIN tries to re-initialize with the default code: each
attempt is refused and costs an SO try, until sc-hsm-tool shows "SO-PIN tries left : 7, User PIN
tries left : 2". Going on blocks the SO-PIN, then the user PIN: nothing on the card helps any more
(the way out, a firmware update, is the portal's: R12-R15)."""

import pytest

from hsm_lifecycle.model.commands import Command as C

THREAD_SO_TRIES_LEFT = 7
THREAD_USER_TRIES_LEFT = 2


@pytest.mark.rule("R01", "R02", "R03", "R05")
@pytest.mark.cost("irreversible")
@pytest.mark.walk(leaves="both-blocked")
def test_story_owner_without_so_pin_ends_blocked(hsm):
    hsm.provision(retries=3, keys=1)
    while hsm.state.so_tries > THREAD_SO_TRIES_LEFT:
        hsm.step(C.initialize("wrong"))  # "failed with PIN code or key incorrect"
    hsm.step(C.verify_user("wrong"))
    hsm.steps(C.select(), C.query_so(), C.query_user())  # what sc-hsm-tool printed
    assert (hsm.state.so_tries, hsm.state.user_tries) == (THREAD_SO_TRIES_LEFT, THREAD_USER_TRIES_LEFT)
    hsm.check_keys()  # no factory reset happened (R01)
    while hsm.state.so_tries:
        hsm.step(C.initialize("wrong"))
    hsm.steps(C.initialize("right"), C.reset_retry_counter("right", False))  # R03: even the right code
    while hsm.state.user_tries:
        hsm.step(C.verify_user("wrong"))
    assert hsm.state.abstract == "both-blocked"
    hsm.steps(C.query_so(), C.query_user(), C.verify_user("right"), C.sign(), C.change_so_pin("right"))
    hsm.check_keys()
