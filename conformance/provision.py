"""Setting the token up for a test and putting it back for its owner.

`provision` brings it to the configuration a test needs (re-initializing only with consent),
`fresh` to an uninitialized token (renewed by the target), `restore` back to the owner's PINs,
tries and configuration after the test, deleting the keys the suite generated. Every step is a
judged step, traced as "setup:" and checked against consent rather than the test's marker.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from hsm_lifecycle.conformance.admission import may_initialize
from hsm_lifecycle.conformance.interlocks import InterlockRefused
from hsm_lifecycle.conformance.trace import EVENT_NEW_TOKEN, TracingTransport
from hsm_lifecycle.model.commands import Command
from hsm_lifecycle.model.states import ExtState
from hsm_lifecycle.protocol import OPTION_RESET_RETRY_COUNTER, OPTION_TRANSPORT_PIN, SO_PIN_TRIES, USER_PIN_TRIES_DEFAULT

if TYPE_CHECKING:
    from hsm_lifecycle.conformance.device import Device


def fresh(hsm: Device) -> None:
    """The test needs an uninitialized token."""
    if not hsm.state.is_initialized:
        return
    if not hsm.target.can_renew:
        pytest.skip(
            "this test needs an uninitialized token (shipped or after a firmware update); this one is initialized: "
            "run it on the emulator (--target emulator), or on a token renewed in the portal (--allow-operator)"
        )
    hsm.target.renew()
    rewire(hsm)
    hsm.state = hsm.target.twin or ExtState.shipped()


def provision(
    hsm: Device,
    options: int | None = None,
    retries: int | None = None,
    keys: int = 0,
    min_retries: int = 1,
    own_key: bool = False,
) -> None:
    """An initialized token with full user tries, no session and at least `keys` keys.

    `options` / `retries` given: exactly those (a token configured otherwise is
    re-initialized, which needs consent on a real token). Left out: whatever the token has,
    as long as its user PIN is usable and it allows `min_retries` tries (a fresh emulated
    token gets option 0x0001 and 3 tries). `own_key`: the newest key is one the suite
    generated, so a test may aim DELETE at it without risking an owner's key."""
    hsm.setup = True
    try:
        if not fits(hsm, options, retries, min_retries):
            if not may_initialize(hsm):
                raise InterlockRefused(
                    f"this test needs a token initialized with options={options if options is not None else 'any'}, "
                    f"retries={retries if retries is not None else 'any'}; this one ({hsm.state}) would have to be "
                    "re-initialized: pass --hsm-serial SERIAL naming this token to allow it"
                )
            if hsm.state.so_tries == 0:
                if not hsm.target.can_renew:
                    pytest.skip(
                        "this test needs a working SO-PIN; this token's SO-PIN is blocked: only a firmware update "
                        "in the portal renews it (--allow-operator), or run it on the emulator (--target emulator)"
                    )
                fresh(hsm)
            want_options = OPTION_RESET_RETRY_COUNTER if options is None else options
            want_retries = max(min_retries, USER_PIN_TRIES_DEFAULT) if retries is None else retries
            hsm.step(Command.initialize("right", want_options, want_retries))
        if hsm.state.user_tries == 0:
            hsm.step(Command.reset_retry_counter("right", False))
        if hsm.state.user_tries < hsm.state.user_max and not hsm.state.transport:
            hsm.step(Command.verify_user("right"))
        while hsm.state.keys < keys or (own_key and not (hsm.mapper.keys and hsm.guard.owns(hsm.mapper.newest_key))):
            if not hsm.state.authenticated:
                hsm.step(Command.verify_user("right"))
            hsm.step(Command.generate_key())
        hsm.step(Command.select())
    finally:
        hsm.setup = False


def fits(hsm: Device, options: int | None, retries: int | None, min_retries: int) -> bool:
    s = hsm.state
    if not s.is_initialized or not s.so_tries or s.user_max < min_retries:
        return False
    if retries is not None and s.user_max != retries:
        return False
    if options is None:
        usable = s.user_tries > 0 or (s.rrc_enabled and s.so_tries > 0)
        return usable and not s.transport
    if s.options != options:
        return False
    if options & OPTION_TRANSPORT_PIN:
        return s.transport  # a used transport PIN cannot come back without INITIALIZE
    return s.user_tries > 0 or s.rrc_enabled


def restore(hsm: Device) -> None:
    """Put a persistent token back for its owner: full user tries, the owner's PINs, the
    suite's own keys deleted, and the SO counter back up where the device restores it."""
    hsm.setup = True
    try:
        reconfigure(hsm)
        s = hsm.state
        if not s.is_initialized or s.transport or not s.so_tries:
            return
        if s.user_tries == 0:
            if not s.rrc_enabled:
                return  # only INITIALIZE would help: left for the owner, the report shows it
            hsm.step(Command.reset_retry_counter("right", False))
        while hsm.mapper.keys and hsm.guard.owns(hsm.mapper.newest_key):
            if not hsm.state.authenticated:
                hsm.step(Command.verify_user("right"))
            hsm.step(Command.delete_key())
        if hsm.mapper.pins.user_idx != 0:
            hsm.step(Command.change_user_pin("right"))
        if hsm.mapper.pins.so_idx != 0:
            hsm.step(Command.change_so_pin("right"))
        restores = hsm.profile.so_success_restores
        if restores and hsm.state.so_tries is not None and 2 <= hsm.state.so_tries < SO_PIN_TRIES:
            hsm.steps(Command.change_so_pin("right"), Command.change_so_pin("right"))
        if hsm.state.user_tries < hsm.state.user_max:
            hsm.step(Command.verify_user("right"))
        hsm.step(Command.select())
    finally:
        hsm.setup = False


def reconfigure(hsm: Device) -> None:
    """With consent to wipe, a test may have left the token configured otherwise than its
    owner had it (options, tries, a blocked PIN): initialize it back to that configuration
    (its keys are gone anyway: that is what the consent was for)."""
    found, s = hsm.target.found, hsm.state
    if found is None or not found.is_initialized or not s.is_initialized or not s.so_tries or not may_initialize(hsm):
        return
    blocked = s.user_tries == 0 and not s.rrc_enabled
    if (s.options, s.user_max) == (found.options, found.user_max) and not blocked and s.transport == found.transport:
        return
    hsm.step(Command.initialize("right", found.options, found.user_max))
    if hsm.state.transport and not found.transport:  # the owner had already left transport mode
        hsm.steps(Command.change_user_pin("right"), Command.change_user_pin("right"))


def rewire(hsm: Device) -> None:
    """After the target renewed its device: the same recorder on the new transport."""
    hsm.recorder.context("connect", ExtState.shipped().abstract)
    hsm.recorder.event(EVENT_NEW_TOKEN)  # the target put a fresh token in the reader
    tracing = TracingTransport(hsm.target.raw_transport(), hsm.recorder)
    hsm.guard.inner = tracing
    hsm.mapper.pins = hsm.target.pins
    hsm.mapper.keys = hsm.target.keys
    hsm.guard.own_key_fids = hsm.target.own_key_fids
    tracing.connect()
    hsm.mapper.select()
