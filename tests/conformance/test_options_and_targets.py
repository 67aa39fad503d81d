"""The suite's options: exact names, one-sentence errors, the PIN formats and the ASCII-hex trap."""

from __future__ import annotations

import pytest

from hsm_lifecycle.conformance.options import parse_so_pin, parse_target, parse_user_pin


def test_so_pin_is_16_hex_digits_packed_into_8_bytes():
    assert parse_so_pin("3537363231383830") == b"57621880"
    assert parse_so_pin("3132333435363738") == bytes.fromhex("3132333435363738")


def test_so_pin_typed_as_text_is_refused_with_its_hex_form():
    with pytest.raises(ValueError) as err:
        parse_so_pin("57621880")
    message = str(err.value)
    assert "16 hex digits" in message and "3537363231383830" in message and "ASCII" in message
    assert message.count(". ") == 0, "one sentence"


@pytest.mark.parametrize("text", ["", "353736323138383", "35373632313838300", "353736323138383G"])
def test_malformed_so_pins(text):
    with pytest.raises(ValueError, match="16 hex digits"):
        parse_so_pin(text)


@pytest.mark.parametrize(("text", "ok"), [("12345", False), ("123456", True), ("1234567812345678", True), ("12345678123456789", False)])
def test_user_pin_is_6_to_16_characters(text, ok):
    if ok:
        assert parse_user_pin(text) == text.encode()
    else:
        with pytest.raises(ValueError, match="6..16 characters"):
            parse_user_pin(text)


@pytest.mark.parametrize(
    ("text", "reader", "kind", "name"),
    [
        ("emulator", None, "emulator", None),
        ("emulator:vpcd", None, "emulator:vpcd", None),
        ("pcsc:Nitrokey", None, "pcsc", "Nitrokey"),
        ("pcsc", "Nitrokey", "pcsc", "Nitrokey"),
    ],
)
def test_targets(text, reader, kind, name):
    spec = parse_target(text, reader, False)
    assert (spec.kind, spec.reader) == (kind, name)
    assert spec.guarded == (kind == "pcsc")


@pytest.mark.parametrize(("text", "reader"), [("pcsc", None), ("usb", None), ("pcsc:A", "B"), ("emulator", "Nitrokey")])
def test_bad_targets(text, reader):
    with pytest.raises(ValueError):
        parse_target(text, reader, False)


def test_emulator_as_real_is_guarded():
    assert parse_target("emulator", None, True).guarded


@pytest.mark.parametrize(
    "args",
    [
        ("--hsm-target", "pcsc:Nitrokey", "--hsm-emulator-fault", "so-counter-not-spent"),
        ("--hsm-so-floor", "0"),
        ("--hsm-emulator-state", "x.json"),
        ("--hsm-emulator-profile", "no-equals-sign"),
    ],
)
def test_option_mistakes_are_usage_errors(run_suite, args):
    run = run_suite(*args)
    assert run.rc == 4, run.output
    assert "Traceback" not in run.output


def test_unknown_fault_or_profile_field_stops_the_run(run_suite):
    run = run_suite("--hsm-emulator-profile", "no_such_field=1", select="test_r16")
    assert run.rc != 0 and "no field" in run.output
