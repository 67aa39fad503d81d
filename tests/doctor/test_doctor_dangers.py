"""doctor says what would make it worse: a loss one mistake away comes first, in one line; the
exit code tells a script; the token is read, never changed."""

from __future__ import annotations

import pytest

from hsm_lifecycle.conformance import cli
from hsm_lifecycle.conformance.doctor import diagnose, read_token

from doctor_tokens import STATE_RECIPES, SpyTransport, build_token, firmware_reset_token
from test_doctor_reading import _assert_only_free_reads


def _doctor(capsys, path, *extra):
    before = path.read_bytes()
    code = cli.main(["doctor", "--state", str(path), *extra])
    out, err = capsys.readouterr()
    assert path.read_bytes() == before  # byte-identical: doctor changed nothing on the token
    return code, out, err


def test_the_issue_token_first_line_warns_that_three_wrong_user_pins_lose_the_key(tmp_path, capsys, monkeypatch):
    """SO-PIN blocked, one key, 3 user tries: the issue's token, as its owner runs doctor."""
    monkeypatch.setenv("COLUMNS", "100")
    path = tmp_path / "token.state"
    build_token(so_wrong=15, keys=1, state_path=path)
    code, out, err = _doctor(capsys, path)
    assert code == 1, err
    first, second = out.splitlines()[:2]
    assert first.startswith("DANGER: you are 3 wrong user PINs (3 tries left) away from losing the key for good")
    assert "resetting the user PIN with the SO-PIN" in first and "refused (R03 so-block-permanent)" in first
    assert "the only way out, a firmware update, erases the key" in first
    assert "needs another working HSM to log into the portal" in first
    assert first.endswith("Even now, a firmware update erases the key.")  # the update itself erases it
    assert second.startswith("Token in ")
    # ...and the lists follow, the dangers among them (wrapped at 100 columns, the first line not).
    flat = " ".join(out.split())
    assert "What would make it worse" in flat and "Already lost: SO-PIN blocked" in flat
    assert "a firmware update, with 1 deliberate step → losing the key (erased) and changing the device identity" in flat


def test_the_forum_threads_token_is_not_one_mistake_away(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    path = tmp_path / "token.state"
    build_token(so_wrong=8, user_wrong=1, keys=2, state_path=path)
    code, out, _ = _doctor(capsys, path)
    assert code == 0
    assert out.startswith("Token in ") and "DANGER" not in out
    assert "7 wrong SO-PINs (7 tries left), by mistakes alone → blocking the SO-PIN for good" in out
    assert (
        "2 wrong user PINs (2 tries left), then 7 wrong SO-PINs (7 tries left), by mistakes alone → "
        "losing the 2 keys for good and blocking both PINs"
    ) in out
    assert "a re-initialization with the SO-PIN, with 1 deliberate step → losing the 2 keys (erased)" in out


@pytest.mark.parametrize(
    "recipe, first",
    [
        ({"options": 0x0000, "keys": 1}, "DANGER: you are 3 wrong user PINs (3 tries left) away from losing the key for good: "
         "resetting the user PIN with the SO-PIN is then refused (R06 unblock-needs-option); the only way out, "
         "re-initializing with the SO-PIN, erases the key."),
        ({"so_wrong": 14, "keys": 1}, "DANGER: you are 1 wrong SO-PIN (1 try left) away from blocking the SO-PIN for good: "),
        ({"so_wrong": 15, "user_wrong": 2, "keys": 2}, "DANGER: you are 1 wrong user PIN (1 try left) away from losing "
         "the 2 keys for good and blocking both PINs: "),
        ({"so_wrong": 12, "user_wrong": 3, "keys": 1}, "DANGER: you are 3 wrong SO-PINs (3 tries left) away from "),
    ],
)
def test_a_loss_one_mistake_away_comes_first(tmp_path, capsys, recipe, first):
    path = tmp_path / "token.state"
    build_token(state_path=path, **recipe)
    code, out, _ = _doctor(capsys, path)
    if recipe.get("so_wrong") == 12:  # user-blocked, 3 SO tries: near, but more than one mistake
        assert code == 0 and not out.startswith("DANGER")
        return
    assert code == 1
    assert out.splitlines()[0].startswith(first)


@pytest.mark.parametrize("state", [*sorted(STATE_RECIPES), "firmware-reset"])
def test_every_state_gets_its_dangers_without_spending_anything(state, token_in):
    built = firmware_reset_token()[0] if state == "firmware-reset" else token_in(state)
    spy = SpyTransport(built.transport)
    diag = diagnose(read_token(spy))
    _assert_only_free_reads(spy.sent)
    # Hand-worked: only the SO-blocked recipe (a key, 3 user tries) is one mistake from a loss.
    assert diag.one_mistake_away is (state == "so-blocked")
    assert bool(diag.first_lines) is (state == "so-blocked")
    losses = {d.loss.id for d in diag.dangers.dangers}
    expected = {
        "shipped": {"so-pin-blocked", "both-pins-blocked", "last-update-spent", "identity-changed"},
        "firmware-reset": {"so-pin-blocked", "both-pins-blocked", "last-update-spent", "identity-changed"},
        "initialized": {"so-pin-blocked", "keys-unusable", "both-pins-blocked", "keys-erased", "identity-changed", "last-update-spent"},
        "user-blocked": {"so-pin-blocked", "keys-unusable", "both-pins-blocked", "keys-erased", "identity-changed", "last-update-spent"},
        "so-blocked": {"keys-unusable", "both-pins-blocked", "keys-erased", "identity-changed", "last-update-spent"},
        "both-blocked": {"identity-changed", "last-update-spent"},  # the recipe holds no keys
    }[state]
    assert losses == expected


def test_a_place_is_left_for_the_key_backup_line(tmp_path, capsys, monkeypatch):
    from dataclasses import replace

    from hsm_lifecycle.conformance.commands import doctor as command
    from rich.console import Console

    monkeypatch.setenv("COLUMNS", "200")
    diag = diagnose(read_token(build_token(keys=1).transport))
    assert diag.key_backup is None
    console = Console(highlight=False)
    command.print_diagnosis(console, replace(diag, key_backup="the keys can be exported under the DKEK first"), None)
    out = capsys.readouterr().out
    assert "  Key backup: the keys can be exported under the DKEK first" in out
