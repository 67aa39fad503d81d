"""OperatorPortalLink on its own: a scripted prompter plays the person, on a file-backed token
(the suite's handle and the "portal's" handle are two VirtualToken objects on one state file,
as the suite and the portal's client are two programs on one token)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pytest

from hsm_lifecycle.conformance.operator import OperatorPortalLink
from hsm_lifecycle.emulator import VirtualToken
from hsm_lifecycle.emulator.portal import PluggedDevice, Portal
from hsm_lifecycle.model.commands import Command
from portal_helpers import PIN, Hsm, logged_in

Action = Callable[[VirtualToken], str]


@dataclass
class Person:
    """Answers each prompt by acting on the released token (opened from its file)."""

    path: Path
    actions: list[Action]
    prompts: list[str] = field(default_factory=list)

    def ask(self, text: str) -> str:
        self.prompts.append(text)
        token = VirtualToken.open(self.path)
        try:
            return self.actions.pop(0)(token)
        finally:
            token.power_off()


def update(token: VirtualToken) -> str:
    logged_in(Portal()).update(PluggedDevice.of(token))
    return ""


def log_in(token: VirtualToken) -> str:
    return "y" if Portal().login(PluggedDevice.of(token), PIN, email="p@example.org").session else "n"


def answer(text: str) -> Action:
    return lambda token: text


def link_for(tmp_path: Path, *actions: Action, session: bool = False) -> tuple[OperatorPortalLink, Hsm, Person]:
    path = tmp_path / "token.json"
    hsm = Hsm.make(path)
    person = Person(path, list(actions))
    return OperatorPortalLink(lambda: session, owner_pin_given=True, prompter=person), hsm, person


def test_update_is_verified_on_the_token(tmp_path):
    link, hsm, person = link_for(tmp_path, update)
    hsm.initialized()
    old_serial = hsm.token.serial
    assert link.firmware_update(hsm.mapper) == "update-ok"
    assert f"serial {old_serial}" in person.prompts[0] and "NOTE" not in person.prompts[0]
    assert hsm.token.serial != old_serial and not hsm.token.status().initialized  # reloaded from the file


def test_refused_update_is_read_from_the_token_and_the_session_restored(tmp_path):
    link, hsm, _ = link_for(tmp_path, update, session=True)
    hsm.initialized(keys=1)
    hsm.do(Command.verify_user("right"))
    assert link.firmware_update(hsm.mapper) == "update-refused-keys"
    assert hsm.token.status().authenticated  # as the model keeps it: a refusal changes nothing


def test_so_blocked_token_gets_the_lifetime_warning_and_a_limit_refusal_is_told_apart(tmp_path):
    link, hsm, person = link_for(tmp_path, answer(""))
    hsm.initialized(keys=1).block_so()
    assert link.firmware_update(hsm.mapper) == "update-refused-limit"
    assert "5 updates" in person.prompts[0]


def test_an_update_that_kept_the_identity_is_not_an_update(tmp_path):
    def faulty_loader(token: VirtualToken) -> str:
        token.firmware_update(counted=False, keep_identity=True)
        return ""

    link, hsm, _ = link_for(tmp_path, faulty_loader)
    hsm.initialized()
    assert link.firmware_update(hsm.mapper).startswith("update-incomplete(uninitialized, but EF.C_DevAut unchanged")


def test_login_yes_and_no(tmp_path):
    link, hsm, person = link_for(tmp_path, log_in, log_in)
    hsm.initialized()
    assert link.login(hsm.mapper) == "login-ok"
    assert hsm.token.status().authenticated  # the suite repeated the login's VERIFY
    assert "the one you gave the suite with --hsm-pin" in person.prompts[0]
    hsm.do(Command.select())
    hsm.block_user()
    assert link.login(hsm.mapper) == "login-refused"


def test_skip_and_unusable_answers_skip_after_the_token_is_taken_back(tmp_path):
    link, hsm, _ = link_for(tmp_path, answer("s"), answer("maybe"), answer("?"), answer("later"))
    hsm.initialized()
    with pytest.raises(pytest.skip.Exception, match="skipped the portal step"):
        link.firmware_update(hsm.mapper)
    assert hsm.mapper.select().sw == 0x9000
    with pytest.raises(pytest.skip.Exception, match="no usable answer"):
        link.login(hsm.mapper)
    assert hsm.mapper.select().sw == 0x9000
