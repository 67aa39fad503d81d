"""conformance.judging: which checks a test decided, and which a failure counts against."""

from __future__ import annotations

import pytest

from hsm_lifecycle.conformance.judging import CheckLog, UnknownCheck, checks_to_fail
from hsm_lifecycle.model.divergence import Blame


def test_a_scope_passes_its_checks_only_when_every_step_in_it_was_accepted():
    log = CheckLog()
    with log.scope(("R02.starts-at-15",)):
        pass
    assert log.results["R02.starts-at-15"].verdict == "pass"
    with pytest.raises(RuntimeError), log.scope(("R02.right-spends-none",)):
        raise RuntimeError("a skip or a failure inside")
    assert "R02.right-spends-none" not in log.results  # not decided: not-run


def test_a_failure_stays_a_failure():
    log = CheckLog()
    log.failed("R04.right-restores", "63C2")
    log.passed("R04.right-restores")
    assert log.results["R04.right-restores"].verdict == "fail" and log.failed_rules == ("R04",)


def test_an_unknown_check_is_the_suites_error():
    with pytest.raises(UnknownCheck, match="R07.keys-erased"):
        CheckLog().scope(("R07.keys-gone",)).__enter__()


def test_what_a_failure_counts_against():
    scoped = ("R01.wrong-init-refused", "R02.init-wrong-spends-one")
    so = Blame("SO tries", "model 14, device 13", ("R02.init-wrong-spends-one",))
    assert checks_to_fail(("R07.keys-erased",), so, scoped) == ("R07.keys-erased",)  # explicit wins
    assert checks_to_fail((), so, scoped) == ("R02.init-wrong-spends-one",)  # the scope's check of the blamed rule
    assert checks_to_fail((), so, ("R01.wrong-init-refused",)) == ("R02.init-wrong-spends-one",)  # another rule's
    sw = Blame("status word", "model 63CE, device 9000", ("R01.wrong-init-refused",))
    assert checks_to_fail((), sw, ("R21.any-code-accepted",)) == ("R21.any-code-accepted",)  # the scope expected otherwise
    assert checks_to_fail((), sw, ()) == ("R01.wrong-init-refused",)
    off = Blame("user tries", "after a command outside the alphabet", ())
    assert checks_to_fail((), off, ("R16.verify-long-user-pin-free",)) == ("R16.verify-long-user-pin-free",)
