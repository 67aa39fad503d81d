"""The state file (versioned, checksummed, atomic) and power loss at every persistence point."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
from emu_helpers import (
    PIN,
    PIN2,
    SO,
    WRONG_PIN,
    WRONG_SO,
    Card,
    initialize,
    initialized_card,
    query_user,
    select_applet,
    verify_so,
    verify_user,
)

from emu_objects import ec_body, gakp, update_binary

from hsm_lifecycle.emulator import (
    PersistencePoint,
    PowerCut,
    PowerLoss,
    Profile,
    Stage,
    StateFileError,
    VirtualToken,
)
from hsm_lifecycle.emulator.store import SCHEMA, FileStore, encode

P = PersistencePoint


def file_card(path: Path, **kwargs: object) -> Card:
    card = Card(VirtualToken.manufacture(state_path=path, **kwargs))  # type: ignore[arg-type]
    card.token.power_on()
    assert card.sw(select_applet()) == "9000"
    return card


def reopen(path: Path) -> Card:
    card = Card(VirtualToken.open(path))
    card.token.power_on()
    assert card.sw(select_applet()) == "9000"
    return card


def test_state_survives_reopen(tmp_path: Path) -> None:
    path = tmp_path / "token.json"
    profile = Profile(last_wrong_try_sw="6983", version=(4, 1))
    card = file_card(path, profile=profile)
    serial = card.token.serial
    assert card.sw(initialize(retries=5, options=3)) == "9000"
    assert card.sw(verify_so(WRONG_SO)) == "63CE"
    again = reopen(path)
    assert again.token.serial == serial
    assert again.token.profile == profile
    status = again.status
    assert (status.so_tries, status.user_tries, status.user_max, status.options) == (14, 5, 5, 3)
    assert status.transport_pin and not status.authenticated


def test_manufacture_refuses_an_existing_file(tmp_path: Path) -> None:
    path = tmp_path / "token.json"
    VirtualToken.manufacture(state_path=path)
    with pytest.raises(FileExistsError):
        VirtualToken.manufacture(state_path=path)


def test_file_layout_is_versioned_and_checksummed(tmp_path: Path) -> None:
    path = tmp_path / "token.json"
    VirtualToken.manufacture(state_path=path)
    document = json.loads(path.read_bytes())
    assert document["schema"] == SCHEMA and document["version"] == 1
    assert len(document["sha256"]) == 64


@pytest.mark.parametrize(
    "damage",
    [
        lambda raw: raw[: len(raw) // 2],  # torn file
        lambda raw: raw.replace(b'"so_tries":0', b'"so_tries":9'),  # edited without checksum
        lambda raw: raw.replace(b'"version":1', b'"version":2'),  # unknown schema version
        lambda raw: raw.replace(SCHEMA.encode(), b"something-else"),
        lambda raw: b"\xff\xfe not json",
        lambda raw: b"[]",
        lambda raw: b"",
    ],
)
def test_corrupt_files_raise_state_file_error(tmp_path: Path, damage) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "token.json"
    VirtualToken.manufacture(state_path=path)
    raw = path.read_bytes()
    damaged = damage(raw)
    assert damaged != raw
    path.write_bytes(damaged)
    with pytest.raises(StateFileError):
        VirtualToken.open(path)


def test_missing_file_raises_state_file_error(tmp_path: Path) -> None:
    with pytest.raises(StateFileError, match="cannot read"):
        VirtualToken.open(tmp_path / "nothing.json")


def test_checksummed_but_impossible_values_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "token.json"
    VirtualToken.manufacture(state_path=path)
    document = json.loads(path.read_bytes())
    document["state"]["so_tries"] = 99
    body = json.dumps(document["state"], sort_keys=True, separators=(",", ":")).encode()
    document["sha256"] = hashlib.sha256(body).hexdigest()
    path.write_text(json.dumps(document))
    with pytest.raises(StateFileError, match="out of range"):
        VirtualToken.open(path)


def test_missing_field_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "token.json"
    token = VirtualToken.manufacture(state_path=path)
    document = json.loads(encode(token._applet.state))  # noqa: SLF001
    del document["state"]["user_max"]
    body = json.dumps(document["state"], sort_keys=True, separators=(",", ":")).encode()
    document["sha256"] = hashlib.sha256(body).hexdigest()
    path.write_text(json.dumps(document))
    with pytest.raises(StateFileError, match="malformed"):
        VirtualToken.open(path)


def test_save_replaces_atomically_and_leaves_no_temp_file(tmp_path: Path) -> None:
    path = tmp_path / "token.json"
    card = file_card(path)
    inode = path.stat().st_ino
    assert card.sw(initialize()) == "9000"
    assert path.stat().st_ino != inode  # a new file was renamed over the old one
    assert sorted(p.name for p in tmp_path.iterdir()) == ["token.json"]


def test_failed_rename_keeps_the_old_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "token.json"
    card = file_card(path)
    assert card.sw(initialize()) == "9000"
    before = path.read_bytes()

    def no_rename(src: object, dst: object) -> None:
        raise OSError("simulated crash before rename")

    monkeypatch.setattr(os, "replace", no_rename)
    # The card failed (6F00); nothing is half-written.
    assert card.token.transmit(verify_user(WRONG_PIN)) == bytes.fromhex("6F00")
    assert isinstance(card.token.last_internal_error, OSError)
    card.token.last_internal_error = None
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert FileStore(path).load().user_tries == 3
    assert card.status.user_tries == 3  # the applet continued from the durable state


# --- R17: the order of writes, and power loss at every point --------------------------------


def events(card: Card, capdu: bytes) -> list[tuple[PersistencePoint, Stage]]:
    probe = PowerCut()
    card.token.set_power_loss_hook(probe)
    card.sw(capdu)
    card.token.set_power_loss_hook(None)
    return [(e.point, e.stage) for e in probe.events]


def test_wrong_pin_writes_the_decrement_before_comparing() -> None:
    card = initialized_card()
    assert events(card, verify_user(WRONG_PIN)) == [
        (P.USER_TRY_SPENT, Stage.BEFORE),
        (P.USER_TRY_SPENT, Stage.AFTER),
        (P.PIN_COMPARED, Stage.INSTANT),
    ]


def test_right_pin_writes_decrement_then_restore() -> None:
    card = initialized_card()
    assert events(card, verify_user(PIN)) == [
        (P.USER_TRY_SPENT, Stage.BEFORE),
        (P.USER_TRY_SPENT, Stage.AFTER),
        (P.PIN_COMPARED, Stage.INSTANT),
        (P.USER_TRY_RESTORED, Stage.BEFORE),
        (P.USER_TRY_RESTORED, Stage.AFTER),
    ]


def test_so_presentations_write_before_comparing() -> None:
    card = initialized_card()
    for capdu in (verify_so(WRONG_SO), initialize(so=WRONG_SO)):
        assert events(card, capdu)[:3] == [
            (P.SO_TRY_SPENT, Stage.BEFORE),
            (P.SO_TRY_SPENT, Stage.AFTER),
            (P.PIN_COMPARED, Stage.INSTANT),
        ]
    assert events(card, initialize())[-2:] == [
        (P.DEVICE_INITIALIZED, Stage.BEFORE),
        (P.DEVICE_INITIALIZED, Stage.AFTER),
    ]


def test_queries_and_refusals_write_nothing() -> None:
    card = initialized_card()
    writes = card.token.writes
    for capdu in (query_user(), verify_user(b"12345"), select_applet(), bytes.fromhex("00B00000")):
        assert events(card, capdu) == []
    assert card.token.writes == writes


CUTS = [
    # (command, pin right?, tries after a cut at each event in order)
    ("wrong", verify_user(WRONG_PIN), [3, 2, 2]),
    ("right", verify_user(PIN), [3, 2, 2, 2, 3]),
]


@pytest.mark.parametrize("durable", ["memory", "file"])
@pytest.mark.parametrize(("name", "capdu", "expected"), CUTS, ids=[c[0] for c in CUTS])
def test_power_loss_at_every_point_of_a_verify(
    tmp_path: Path, durable: str, name: str, capdu: bytes, expected: list[int]
) -> None:
    for at, tries in enumerate(expected):
        path = tmp_path / f"{name}-{at}.json" if durable == "file" else None
        card = Card(VirtualToken.manufacture(state_path=path))
        card.sw(select_applet())
        card.sw(initialize())
        cut = PowerCut(at=at)
        card.token.set_power_loss_hook(cut)
        with pytest.raises(PowerLoss):
            card.token.transmit(capdu)
        assert cut.fired and not card.token.powered
        card.token.set_power_loss_hook(None)
        survivor = Card(VirtualToken.open(path)) if path else card
        survivor.token.power_on()
        assert survivor.status.user_tries == tries, (at, cut.events[-1])
        assert not survivor.status.authenticated  # the session died with the power
        # R17: once the comparison was made, the try is never refunded by a cut.
        compared = any(e.point is P.PIN_COMPARED for e in cut.events)
        if compared and name == "wrong":
            assert tries == 2


def test_power_loss_before_initialize_write_leaves_token_uninitialized() -> None:
    card = Card(VirtualToken.manufacture())
    card.sw(select_applet())
    card.token.set_power_loss_hook(PowerCut(at=0))
    with pytest.raises(PowerLoss):
        card.token.transmit(initialize())
    card.token.set_power_loss_hook(None)
    card.token.power_on()
    assert not card.status.initialized


def test_power_loss_mid_reinit_keeps_old_user_pin_and_spent_try() -> None:
    card = initialized_card()
    card.token.set_power_loss_hook(PowerCut(at=2))  # at the comparison of the SO-PIN
    with pytest.raises(PowerLoss):
        card.token.transmit(initialize(pin=PIN2))
    card.token.set_power_loss_hook(None)
    card.token.power_on()
    card.sw(select_applet())
    assert card.status.so_tries == 14
    assert card.sw(verify_user(PIN)) == "9000"


def test_token_works_normally_after_power_loss() -> None:
    card = initialized_card()
    card.token.set_power_loss_hook(PowerCut(at=1))
    with pytest.raises(PowerLoss):
        card.token.transmit(verify_user(PIN))
    card.token.set_power_loss_hook(None)
    # transmit powers the token on again; the applet must be selected anew.
    assert card.sw(query_user()) == "6D00"
    assert card.sw(select_applet()) == "9000"
    assert card.sw(query_user()) == "63C2"
    assert card.sw(verify_user(PIN)) == "9000"
    assert card.status.user_tries == 3


def test_so_and_user_writes_counted() -> None:
    card = initialized_card()
    writes = card.token.writes
    card.sw(verify_user(WRONG_PIN))
    assert card.token.writes == writes + 1
    card.sw(verify_user(PIN))
    assert card.token.writes == writes + 3
    card.sw(verify_so(SO))
    assert card.token.writes == writes + 5


def _rewrite(path: Path, change) -> None:  # type: ignore[no-untyped-def]
    document = json.loads(path.read_bytes())
    change(document["state"])
    body = json.dumps(document["state"], sort_keys=True, separators=(",", ":")).encode()
    document["sha256"] = hashlib.sha256(body).hexdigest()
    path.write_text(json.dumps(document))


@pytest.mark.parametrize(
    "change",
    [
        lambda state: state["keys"].update({"CC00": "3000"}),  # not a PKCS#8 key
        lambda state: state["keys"].pop("CC00"),  # identity incomplete
        lambda state: state["files"].pop("2F02"),
        lambda state: state.update({"device_chr": "UTEM1"}),  # CHR too short for a serial
    ],
)
def test_checksummed_but_unusable_identity_is_refused(tmp_path: Path, change) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "token.json"
    VirtualToken.manufacture(state_path=path)
    _rewrite(path, change)
    with pytest.raises(StateFileError):
        VirtualToken.open(path)


def test_power_loss_around_key_generation_is_all_or_nothing() -> None:
    outcomes = []
    for at, expect_key in ((0, False), (1, True)):
        card = initialized_card()
        card.sw(verify_user(PIN))
        card.token.set_power_loss_hook(PowerCut(at=at))
        with pytest.raises(PowerLoss):
            card.token.transmit(gakp(1, ec_body()))
        card.token.set_power_loss_hook(None)
        card.token.power_on()
        status = card.status
        outcomes.append((0xCC01 in status.keys, 0xCE01 in status.files))
        assert outcomes[-1] == (expect_key, expect_key)
        assert not status.authenticated


def test_file_write_events() -> None:
    card = initialized_card()
    card.sw(verify_user(PIN))
    assert events(card, update_binary(0xC401, 0, b"abc")) == [
        (P.FILE_WRITTEN, Stage.BEFORE),
        (P.FILE_WRITTEN, Stage.AFTER),
    ]
    assert events(card, bytes.fromhex("00E4020002C401")) == [
        (P.OBJECT_DELETED, Stage.BEFORE),
        (P.OBJECT_DELETED, Stage.AFTER),
    ]
