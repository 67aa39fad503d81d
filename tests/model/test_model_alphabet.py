"""The extended state and the abstract alphabet: validation, projection, string forms."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hsm_lifecycle.model import STATES, Command, ExtState, abstract_state
from hsm_lifecycle.model.commands import COMMAND_NAMES


def test_shipped_is_the_empty_token() -> None:
    s = ExtState.shipped()
    assert s.abstract == "shipped" and not s.is_initialized and s.keys == 0 and s.identity == 0


@pytest.mark.parametrize(
    ("state", "abstract"),
    [
        (ExtState.shipped(), "shipped"),
        (ExtState(identity=2, so_blocked_updates=1), "firmware-reset"),
        (ExtState.initialized(), "initialized"),
        (ExtState.initialized(user_tries=0), "user-blocked"),
        (ExtState.initialized(so_tries=0), "so-blocked"),
        (ExtState.initialized(so_tries=0, user_tries=0), "both-blocked"),
        (ExtState.initialized(so_tries=1, user_tries=1), "initialized"),
    ],
)
def test_abstract_state_is_a_projection(state: ExtState, abstract: str) -> None:
    assert state.abstract == abstract_state(state) == abstract
    assert abstract in STATES


@pytest.mark.parametrize(
    "bad",
    [
        dict(so_tries=None, keys=1),
        dict(so_tries=None, user_tries=1, user_max=1),
        dict(so_tries=None, authenticated=True),
        dict(so_tries=16, user_tries=1, user_max=3),
        dict(so_tries=15, user_tries=4, user_max=3),
        dict(so_tries=15, user_tries=0, user_max=0),
        dict(so_tries=15, user_tries=1, user_max=11),
        dict(so_tries=15, user_tries=1, user_max=3, options=0x10000),
        dict(so_tries=15, user_tries=1, user_max=3, keys=-1),
        dict(identity=1, so_blocked_updates=2),
    ],
)
def test_impossible_states_are_rejected(bad: dict) -> None:
    with pytest.raises(ValueError):
        ExtState(**bad)


def test_initialized_defaults_follow_the_options() -> None:
    assert ExtState.initialized(options=0x0002).transport
    assert not ExtState.initialized(options=0x0001).transport
    assert ExtState.initialized(user_max=10).user_tries == 10


def test_state_dict_round_trip() -> None:
    s = ExtState.initialized(so_tries=7, user_tries=2, keys=3, authenticated=True, identity=2, so_blocked_updates=1)
    assert ExtState.from_dict(s.to_dict()) == s
    assert "so=7" in str(s) and "user=2/3" in str(s)


def test_alphabet_covers_every_command_and_variant() -> None:
    alphabet = Command.alphabet()
    assert {c.name for c in alphabet} == set(COMMAND_NAMES)
    # the widened inputs: verify over_long, change 81/88 and initialize x 2 lengths, RRC x 2 x 2, 5 commands
    # ... plus the key backup: INITIALIZE with one DKEK share, two shares, status, wrap, two unwraps.
    assert len(alphabet) == len(set(alphabet)) == 4 + 3 + 2 * 3 + 4 + 2 + 2 + 5 + (1 + 2 + 2 + 4 + 2 + 5) + 7
    assert {c.options for c in alphabet if c.name == "initialize"} == {0x0001, 0x0000, 0x0002}
    bigger = Command.alphabet(options=(1, 3), retries=(3, 5, 10), dkek=False)
    assert sum(c.name == "initialize" and c.so in ("right", "wrong") for c in bigger) == 2 * 2 * 3


@pytest.mark.parametrize(
    ("text", "command"),
    [
        ("select", Command.select()),
        ("verify_user(wrong)", Command.verify_user("wrong")),
        ("verify_user(wrong_length)", Command.verify_user("wrong_length")),
        ("change_so_pin(right)", Command.change_so_pin("right")),
        ("initialize(so=wrong,options=0x0002,retries=10)", Command.initialize("wrong", 0x0002, 10)),
        ("initialize(wrong)", Command.initialize("wrong", 0x0001, 3)),
        ("initialize( so = right , retries = 5 )", Command.initialize("right", 0x0001, 5)),
        ("reset_retry_counter(so=right,new_pin=true)", Command.reset_retry_counter("right", True)),
        ("reset_retry_counter(wrong)", Command.reset_retry_counter("wrong", False)),
        ("portal_login()", Command.portal_login()),
    ],
)
def test_parse(text: str, command: Command) -> None:
    assert Command.parse(text) == command


@pytest.mark.parametrize(
    "text",
    ["", "reboot", "verify_user", "verify_user(maybe)", "change_user_pin(too_short)", "decipher(right)", "select(right)",
     "initialize(so=right,options=zz)", "initialize(retries=0)", "reset_retry_counter(new_pin=perhaps)",
     "initialize(right,extra)", "sign(so=right)"],
)  # fmt: skip
def test_parse_rejects_nonsense(text: str) -> None:
    with pytest.raises(ValueError):
        Command.parse(text)


@given(st.sampled_from(Command.alphabet(options=(0, 1, 2, 3, 0xFFFF), retries=tuple(range(1, 11)))))
def test_string_form_round_trips(command: Command) -> None:
    assert Command.parse(str(command)) == command
    assert eval(repr(command), {"Command": Command}) == command  # noqa: S307 - our own repr


@pytest.mark.parametrize(
    "build",
    [
        lambda: Command("verify_user"),
        lambda: Command("select", pin="right"),
        lambda: Command("initialize", so="right", options=1),
        lambda: Command("initialize", so="right", options=1, retries=11),
        lambda: Command("reset_retry_counter", so="right"),
        lambda: Command("sign", new_pin=True),
    ],
)
def test_malformed_commands_are_rejected(build) -> None:  # noqa: ANN001
    with pytest.raises(ValueError):
        build()
