"""R04 user-retry: the user counter starts at tag 91's value; each wrong VERIFY 81 / CHANGE 81
spends one try; a right PIN restores the full count."""

import pytest

from hsm_lifecycle.model.commands import Command as C


@pytest.mark.rule("R04")
@pytest.mark.cost("wipes")
@pytest.mark.walk(start="uninitialized", leaves="initialized")
def test_r04_counter_starts_at_tag_91(hsm):
    hsm.fresh()
    # 2, not the default 3: the count comes from tag 91. At most 3, because a 6-character PIN
    # allows no more where the card enforces the per-length rule (open: retries-by-pin-length).
    hsm.step(C.initialize("right", retries=2))
    with hsm.checking("R04.starts-at-tag-91"):
        hsm.step(C.query_user())


@pytest.mark.rule("R04")
@pytest.mark.cost("wipes")
def test_r04_reinitialization_sets_the_counter_from_tag_91(hsm):
    # Every INITIALIZE sets the counter from tag 91: on one persistent token, where the first
    # initialization goes to R21 (and R02), a re-initialization decides the check.
    hsm.provision()
    hsm.step(C.initialize("right", retries=2))
    with hsm.checking("R04.starts-at-tag-91"):
        hsm.step(C.query_user())


@pytest.mark.rule("R04")
@pytest.mark.cost("tries")
@pytest.mark.walk(presents="pin")  # a right user PIN restores what it spends
def test_r04_wrong_spends_right_restores(hsm):
    hsm.provision(min_retries=3)
    hsm.step(C.query_user())
    with hsm.checking("R04.verify-wrong-spends-one"):
        hsm.steps(C.verify_user("wrong"), C.query_user())
    with hsm.checking("R04.change-wrong-spends-one"):
        hsm.steps(C.change_user_pin("wrong"), C.query_user())
    with hsm.checking("R04.right-restores"):
        hsm.steps(C.verify_user("right"), C.select(), C.query_user())
        hsm.steps(C.change_user_pin("wrong"), C.change_user_pin("right"), C.select(), C.query_user())
