"""R21 first-init-sets-so: on an uninitialized token INITIALIZE takes any well-formed 8-byte code
and makes it the SO-PIN, with 15 tries."""

import pytest

from hsm_lifecycle.model.commands import Command as C


@pytest.mark.rule("R21")
@pytest.mark.cost("wipes")
@pytest.mark.walk(start="uninitialized", leaves="initialized")
def test_r21_any_code_becomes_the_so_pin(hsm):
    hsm.fresh()
    # "wrong" on a shipped token: the mapper sends a code other than its primary SO-PIN.
    with hsm.checking("R21.any-code-accepted"):
        hsm.step(C.initialize("wrong"))
    # The same observation decides R02's first count: 15 tries right after the first INITIALIZE.
    with hsm.checking("R21.so-tries-15", "R02.starts-at-15"):
        hsm.step(C.query_so())
    with hsm.checking("R21.code-becomes-so-pin"):
        hsm.steps(C.change_so_pin("right"), C.query_so())
