"""`hsm-lifecycle doctor` as the token owner meets it: output, and one-sentence errors."""

from __future__ import annotations

import pytest

from hsm_lifecycle.conformance import cli
from hsm_lifecycle.conformance.doctor import check_so_pin_text, choose_hsm_reader
from hsm_lifecycle.conformance.transport.base import TransportError
from doctor_tokens import build_token
from hsm_lifecycle.protocol import ATR

OTHER_ATR = bytes.fromhex("3B8F8001804F0CA000000306030001000000006A")  # a contactless storage card


@pytest.fixture
def thread_state(tmp_path):
    """The forum thread's token (SO 7, user 2, option 0x0001, two keys) in a state file."""
    path = tmp_path / "token.state"
    build_token(so_wrong=8, user_wrong=1, keys=2, state_path=path)
    return path


def _run(capsys, *argv):
    code = cli.main(["doctor", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_state_file_of_the_threads_token(capsys, thread_state, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    before = thread_state.read_bytes()
    code, out, err = _run(capsys, "--state", str(thread_state))
    assert code == 0, err
    assert "Lifecycle state: initialized" in out
    assert "SO-PIN        7 tries left" in out and "User PIN      2 tries left" in out
    assert "User PIN reset with SO-PIN enabled" in out
    assert "--init-pin --new-pin <NEW PIN>" in out
    assert "pkcs15-tool --unblock-pin" in out and "3352" in out
    assert "device identity kept" in out
    assert "Factory reset: there is none" in out
    assert "Each wrong SO-PIN costs one of the 7 tries left" in out
    assert "The only way back: Firmware update" in out
    assert "update-refused-limit" in out
    assert "no PIN was presented" in out
    assert thread_state.read_bytes() == before  # reading changed nothing on the token


def test_a_well_formed_so_pin_is_explained_not_sent(capsys, thread_state, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    code, out, _ = _run(capsys, "--state", str(thread_state), "--so-pin", "3537363231383830")
    assert code == 0
    assert "3537363231383830 is the hex of the ASCII text 57621880" in out
    assert "not sent to the token" in out


@pytest.mark.parametrize(
    "text, says",
    [
        ("57621880", "the tools want its hex form 3537363231383830"),
        ("JcobBr{y#)bE)W#b", "are not hex digits"),
        ("35373632313838", "exactly 16 hex digits (8 bytes)"),
    ],
)
def test_a_malformed_so_pin_is_one_sentence_and_exit_2(capsys, thread_state, text, says):
    before = thread_state.read_bytes()
    code, out, err = _run(capsys, "--state", str(thread_state), "--so-pin", text)
    assert code == 2 and out == ""
    assert says in err
    assert err.count("\n") == 1 and err.startswith("hsm-lifecycle doctor: ")
    assert thread_state.read_bytes() == before


def test_so_pin_with_letters_warns_about_middleware_differences():
    advice = check_so_pin_text("0011223344AABBCC")
    assert advice.ok and advice.raw == bytes.fromhex("0011223344AABBCC")
    assert "letters A-F" in advice.message


@pytest.mark.parametrize(
    "argv, says",
    [
        (["--state", "/nonexistent/token.state"], "no emulator state file"),
        (["--target", "bogus"], "unknown --target 'bogus'"),
        (["--target", "emulator", "--reader", "Nitrokey"], "--reader applies to a PC/SC token"),
    ],
)
def test_usage_mistakes(capsys, argv, says):
    code, _, err = _run(capsys, *argv)
    assert code == 2 and says in err


def test_no_pcscd_is_one_sentence(capsys, monkeypatch):
    import hsm_lifecycle.conformance.transport.pcsc as pcsc

    def no_service() -> list[str]:
        raise TransportError("pcscd is not running: start it and retry")

    monkeypatch.setattr(pcsc, "list_readers", no_service)
    code, _, err = _run(capsys)
    assert code == 2 and err == "hsm-lifecycle doctor: pcscd is not running: start it and retry\n"


def test_fresh_emulator_target_is_a_shipped_token(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    code, out, _ = _run(capsys, "--target", "emulator")
    assert code == 0 and "Lifecycle state: shipped or firmware-reset" in out


def test_the_first_reader_holding_a_smartcard_hsm_is_chosen():
    readers = ["Generic Reader 00 00", "Other 01 00", "Nitrokey Nitrokey HSM 02 00"]
    atrs = {readers[0]: None, readers[1]: OTHER_ATR, readers[2]: ATR}
    assert choose_hsm_reader(readers, atrs, None) == readers[2]
    assert choose_hsm_reader(readers, atrs, "other") == readers[1]
    with pytest.raises(TransportError, match="no reader holds a SmartCard-HSM"):
        choose_hsm_reader(readers[:2], atrs, None)
    with pytest.raises(TransportError, match="no smart-card reader is connected"):
        choose_hsm_reader([], {}, None)
    with pytest.raises(TransportError, match="no reader matches 'yubikey'"):
        choose_hsm_reader(readers, atrs, "yubikey")
