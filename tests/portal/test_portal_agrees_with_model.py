"""The portal (written from the story, never importing model/) against the model's
firmware_update and portal_login transitions: the same verdicts, the same counting."""

from __future__ import annotations

import itertools

import pytest

from hsm_lifecycle.emulator.portal import DeviceView, PortalFault, decide
from hsm_lifecycle.protocol import OPTION_RESET_RETRY_COUNTER, OPTION_TRANSPORT_PIN, SO_PIN_TRIES
from hsm_lifecycle.model.commands import Command
from hsm_lifecycle.model.oracle import expect
from hsm_lifecycle.model.states import ExtState
from portal_helpers import PIN, Hsm

SO_TRIES = (None, 0, 1, SO_PIN_TRIES)
KEYS = (0, 1, 3)
HISTORY = range(0, 8)  # SO-blocked updates done before: below, at and past the limit of 5
USER_TRIES = (3, 0)


def model_state(so_tries: int | None, keys: int, history: int, user_tries: int) -> ExtState:
    if so_tries is None:
        return ExtState(identity=history, so_blocked_updates=history)
    return ExtState.initialized(so_tries=so_tries, user_tries=user_tries, keys=keys, identity=history, so_blocked_updates=history)


GRID = [
    (so, keys, history, user)
    for so, keys, history, user in itertools.product(SO_TRIES, KEYS, HISTORY, USER_TRIES)
    if so is not None or (keys == 0 and user == USER_TRIES[0])
]


@pytest.mark.parametrize("so, keys, history, user", GRID)
def test_update_gate_matches_the_model(so, keys, history, user):
    outcome = expect(model_state(so, keys, history, user), Command.firmware_update())
    admission = decide(DeviceView("UTEM000000000001", so, keys, history))
    assert outcome.accepts(admission.verdict.value), f"{outcome.describe()}; portal: {admission}"
    if admission.verdict.value == "update-ok":
        assert outcome.next.so_blocked_updates == history + admission.counted


@pytest.mark.parametrize(
    "fault, disagrees",
    [
        (PortalFault.UPDATE_WITH_KEYS, lambda so, keys, history: so != 0 and so is not None and keys > 0),
        (PortalFault.UNLIMITED_UPDATES, lambda so, keys, history: so == 0 and history >= 5 and keys > 0),
    ],
    ids=lambda v: getattr(v, "value", ""),
)
def test_each_gate_fault_disagrees_exactly_where_its_rule_speaks(fault, disagrees):
    for so, keys, history, user in GRID:
        outcome = expect(model_state(so, keys, history, user), Command.firmware_update())
        verdict = decide(DeviceView("UTEM000000000001", so, keys, history), frozenset({fault})).verdict.value
        assert outcome.accepts(verdict) != disagrees(so, keys, history), (so, keys, history, verdict)


LOGIN_STATES = {
    "shipped": lambda h: h,
    "initialized": lambda h: h.initialized(),
    "transport": lambda h: h.initialized(OPTION_TRANSPORT_PIN | OPTION_RESET_RETRY_COUNTER),
    "user-blocked": lambda h: h.initialized().block_user(),
    "so-blocked": lambda h: h.initialized(keys=1).block_so(),
    "both-blocked": lambda h: h.initialized().block_so().block_user(),
}


def twin(token: Hsm) -> ExtState:
    """The model state of a token built by LOGIN_STATES (read from the token's test view)."""
    s = token.token.status()
    if not s.initialized:
        return ExtState.shipped()
    return ExtState.initialized(
        so_tries=s.so_tries,
        user_tries=s.user_tries,
        user_max=s.user_max,
        options=s.options,
        transport=s.transport_pin,
        keys=s.user_keys,
        authenticated=s.authenticated,
    )


@pytest.mark.parametrize("name", sorted(LOGIN_STATES))
def test_login_matches_the_model_in_every_abstract_state(portal, name):
    token = LOGIN_STATES[name](Hsm.make())
    before = twin(token)
    assert before.abstract == name if name != "transport" else before.transport
    outcome = expect(before, Command.portal_login())
    result = portal.login(token.device, PIN, email="agreement@example.org")
    assert outcome.accepts(result.verdict.value), f"{outcome.describe()}; portal: {result.refusal}"
    assert twin(token) == outcome.next
