"""Device models: the ATR, applet version and RSA sizes a token poses with (emulator.models)."""

from __future__ import annotations

import argparse

import pytest

from emu_helpers import Card, initialize, select_applet, verify_user, PIN
from emu_objects import gakp, rsa_body

from hsm_lifecycle.emulator import Profile, VirtualToken, vpcd
from hsm_lifecycle.emulator.models import MODELS
from hsm_lifecycle.emulator.state import from_json, to_json

NK_HSM2_ATR = bytes.fromhex("3BDE18FF8191FE1FC38031815448534D31738021408107 1C".replace(" ", ""))


def test_a_nitrokey_hsm2_answers_its_atr_and_version() -> None:
    token = VirtualToken.manufacture(profile=Profile.for_model("nitrokey-hsm2"))
    assert token.power_on() == NK_HSM2_ATR and token.reset() == NK_HSM2_ATR
    card = Card(token)
    assert card.sw(select_applet()) == "9000"
    assert card.data.endswith(bytes.fromhex("850500 00 FF 03 04".replace(" ", "")))
    default = VirtualToken.manufacture()
    assert default.power_on() == MODELS["smartcard-hsm"].atr != NK_HSM2_ATR


def test_the_model_survives_the_state_file_and_old_files_stay_smartcard_hsm() -> None:
    token = VirtualToken.manufacture(profile=Profile.for_model("nitrokey-hsm2"))
    data = to_json(token._applet.state)  # noqa: SLF001 (the persisted form is what matters here)
    assert from_json(data).profile.model == "nitrokey-hsm2"
    del data["profile"]["model"]  # a state file written before models existed
    assert from_json(data).profile.model == "smartcard-hsm"


def test_unknown_models_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown device model 'hsm-9000'"):
        Profile.for_model("hsm-9000")


def test_emulate_model_option_sets_model_and_version_unless_profile_sets_the_version() -> None:
    parser = argparse.ArgumentParser()
    vpcd.add_arguments(parser)
    args = parser.parse_args(["--state", "x.json", "--model", "nitrokey-hsm2"])
    assert (vpcd.profile_from_args(args).model, vpcd.profile_from_args(args).version) == ("nitrokey-hsm2", (3, 4))
    args = parser.parse_args(["--state", "x.json", "--model", "nitrokey-hsm2", "--profile", "version=4.1"])
    assert vpcd.profile_from_args(args).version == (4, 1)
    assert vpcd.profile_from_args(parser.parse_args(["--state", "x.json"])) is None
    with pytest.raises(SystemExit):
        parser.parse_args(["--state", "x.json", "--model", "hsm-9000"])


def test_rsa_sizes_follow_the_model(monkeypatch: pytest.MonkeyPatch) -> None:
    from hsm_lifecycle.emulator import models

    small = models.DeviceModel("test-2k", MODELS["smartcard-hsm"].atr, (2, 5), (1024, 2048), ("test",))
    monkeypatch.setitem(models.MODELS, "test-2k", small)
    card = Card(VirtualToken.manufacture(profile=Profile.for_model("test-2k")))
    card.token.power_on()
    assert card.sw(select_applet()) == "9000" and card.sw(initialize()) == "9000"
    assert card.sw(verify_user(PIN)) == "9000"
    assert card.sw(gakp(1, rsa_body(3072))) == "6A81"
    assert card.sw(gakp(1, rsa_body(1024))) == "9000"
