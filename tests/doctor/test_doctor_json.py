"""`doctor --json`: one object, schema hsm-lifecycle/doctor/1, validated against the JSON Schema
the package ships; exit codes 0 healthy, 1 one mistake from a loss, 2 usage, 3 no token; several
readers at once."""

from __future__ import annotations

import copy
import json

import jsonschema
import pytest

from hsm_lifecycle.conformance import cli
from hsm_lifecycle.conformance.commands import doctor as command
from hsm_lifecycle.conformance.doctor_report import SCHEMA, load_schema
from hsm_lifecycle.conformance.transport.inprocess import InProcessTransport
from hsm_lifecycle.protocol import ATR

from doctor_tokens import STATE_RECIPES, build_token

VALIDATOR = jsonschema.Draft202012Validator(load_schema())


def _json(capsys, *argv):
    code = cli.main(["doctor", "--json", *argv])
    out, err = capsys.readouterr()
    doc = json.loads(out) if out else None
    return code, doc, err


def test_the_shipped_schema_is_a_valid_json_schema():
    jsonschema.Draft202012Validator.check_schema(load_schema())
    assert load_schema()["properties"]["schema"]["const"] == SCHEMA == "hsm-lifecycle/doctor/1"


@pytest.mark.parametrize("state", sorted(STATE_RECIPES))
def test_every_state_validates_and_matches_the_text(state, tmp_path, capsys):
    path = tmp_path / "token.state"
    build_token(state_path=path, **STATE_RECIPES[state])  # type: ignore[arg-type]
    before = path.read_bytes()
    code, doc, err = _json(capsys, "--state", str(path))
    assert path.read_bytes() == before
    VALIDATOR.validate(doc)
    token = doc["tokens"][0]
    assert doc["exit_code"] == code == token["exit_code"] == (1 if state == "so-blocked" else 0), err
    assert token["found"] and state in token["state"]["abstract"]
    assert token["one_mistake_away"] is (state == "so-blocked")
    assert bool(token["first_warnings"]) is (state == "so-blocked")
    assert {a["action"] for a in token["can"]}.isdisjoint(a["action"] for a in token["cannot"])
    assert token["apdus_sent"] >= 4 and token["key_backup"] is None


def test_the_issue_token_as_json(tmp_path, capsys):
    path = tmp_path / "token.state"
    build_token(so_wrong=15, keys=1, state_path=path)
    code, doc, _ = _json(capsys, "--state", str(path))
    assert code == 1
    token = doc["tokens"][0]
    assert token["counters"]["so_tries"] == 0 and token["counters"]["user_tries"] == 3 and token["counters"]["keys"] == 1
    assert token["state"]["extended"]["so_tries"] == 0
    first = token["dangers"][0]
    assert (first["loss"], first["imminent"], first["mistakes"], first["actions"]) == ("keys-unusable", True, 3, 0)
    assert first["route"] == ["verify_user(wrong)"] * 3
    assert first["runs"] == [{"label": "wrong user PIN", "kind": "mistake", "count": 3, "tries_left": 3}]
    update = next(w for w in first["ways_out"] if w["action"] == "firmware-update")
    assert update["admitted"] and set(update["losses"]) == {"keys-erased", "identity-changed"}
    assert token["first_warnings"][0].startswith("DANGER: you are 3 wrong user PINs (3 tries left) away from losing the key")
    assert token["losses_already"] == ["so-pin-blocked"]
    assert any("5 updates" in c for c in token["danger_caveats"])
    assert {a["action"] for a in token["cannot"]} >= {"initialize", "reset-user-pin", "change-so-pin"}


def test_the_schema_rejects_what_it_should(tmp_path, capsys):
    path = tmp_path / "token.state"
    build_token(keys=1, state_path=path)
    _, doc, _ = _json(capsys, "--state", str(path))
    VALIDATOR.validate(doc)
    broken = []
    for mutate in (
        lambda d: d.pop("schema"),
        lambda d: d["tokens"][0].pop("dangers"),
        lambda d: d["tokens"][0]["dangers"][0].update(loss="keys-misplaced"),
        lambda d: d["tokens"][0]["state"]["abstract"].append("bricked"),
        lambda d: d["tokens"][0]["counters"].update(so_tries=16),
        lambda d: d.update(exit_code=2),
        lambda d: d["tokens"][0].update(extra=1),
    ):
        bad = copy.deepcopy(doc)
        mutate(bad)
        broken.append(not VALIDATOR.is_valid(bad))
    assert all(broken)


def test_a_bad_so_pin_is_usage_and_prints_no_json(tmp_path, capsys):
    path = tmp_path / "token.state"
    build_token(state_path=path)
    code, doc, err = _json(capsys, "--state", str(path), "--so-pin", "57621880")
    assert code == 2 and doc is None and err.startswith("hsm-lifecycle doctor: ")


# -- several readers, and no token -----------------------------------------------------------------


@pytest.fixture
def readers(monkeypatch):
    """Three PC/SC readers served in-process: the issue's token, the forum thread's, an empty one."""
    import hsm_lifecycle.conformance.transport.pcsc as pcsc

    tokens = {
        "Nitrokey HSM A 00 00": build_token(so_wrong=15, keys=1).token,
        "Nitrokey HSM B 01 00": build_token(so_wrong=8, user_wrong=1, keys=2).token,
        "Empty Reader 02 00": None,
    }
    monkeypatch.setattr(pcsc, "list_readers", lambda: list(tokens))
    monkeypatch.setattr(command, "reader_atrs", lambda names: {r: (ATR if tokens[r] else None) for r in names})
    monkeypatch.setattr(pcsc, "PcscTransport", lambda reader: InProcessTransport(tokens[reader], reader=reader))
    return tokens


def test_all_checks_every_reader_holding_a_smartcard_hsm(readers, capsys):
    before = {r: t.status() for r, t in readers.items() if t}
    code, doc, _ = _json(capsys, "--all")
    VALIDATOR.validate(doc)
    assert [t["reader"] for t in doc["tokens"]] == ["Nitrokey HSM A 00 00", "Nitrokey HSM B 01 00"]
    assert [t["exit_code"] for t in doc["tokens"]] == [1, 0]
    assert code == doc["exit_code"] == 1  # one token is one mistake from a loss
    assert {r: t.status() for r, t in readers.items() if t} == before


def test_repeated_readers_and_a_missing_token(readers, capsys):
    code, doc, err = _json(capsys, "--reader", "HSM B", "--reader", "Empty", "--reader", "Yubikey")
    VALIDATOR.validate(doc)
    found = [t["found"] for t in doc["tokens"]]
    assert found == [True, False, False]
    assert doc["tokens"][1]["error"] == "the reader 'Empty Reader 02 00' holds no card: insert the token and retry"
    assert "no reader matches 'Yubikey'" in doc["tokens"][2]["error"]
    assert code == doc["exit_code"] == 3  # no danger, but a token asked for is missing
    assert err.count("\n") == 2


def test_text_over_several_readers_says_each_tokens_danger_first(readers, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    code = cli.main(["doctor", "--reader", "HSM B", "--reader", "HSM A"])
    out = capsys.readouterr().out
    assert code == 1
    first_b, rest = out.split("─" * 20, 1)
    assert first_b.startswith("Token in Nitrokey HSM B") and "DANGER" not in first_b
    assert rest.lstrip("─\n").startswith("DANGER: you are 3 wrong user PINs")


@pytest.mark.parametrize(
    "argv, says",
    [
        (["--all", "--reader", "HSM A"], "leave out --reader with it"),
        (["--all", "--target", "emulator"], "--all applies to a PC/SC token"),
        (["--target", "pcsc:HSM A", "--reader", "HSM B"], "give one"),
    ],
)
def test_usage_mistakes_with_several_readers(readers, capsys, argv, says):
    code, doc, err = _json(capsys, *argv)
    assert code == 2 and doc is None and says in err


def test_no_reader_holds_a_token_is_exit_3(monkeypatch, capsys):
    import hsm_lifecycle.conformance.transport.pcsc as pcsc

    monkeypatch.setattr(pcsc, "list_readers", lambda: ["Generic Reader 00 00"])
    monkeypatch.setattr(command, "reader_atrs", lambda names: {r: None for r in names})
    for argv in ([], ["--all"]):
        code, doc, err = _json(capsys, *argv)
        VALIDATOR.validate(doc)
        assert code == doc["exit_code"] == 3 and doc["tokens"][0]["found"] is False
        assert "no reader holds a SmartCard-HSM" in err
    code = cli.main(["doctor"])
    _, err = capsys.readouterr()
    assert code == 3 and err.startswith("hsm-lifecycle doctor: no reader holds a SmartCard-HSM") and err.count("\n") == 1


def test_a_card_without_the_applet_is_no_token(monkeypatch, capsys):
    import hsm_lifecycle.conformance.transport.pcsc as pcsc
    from hsm_lifecycle.conformance.transport.base import Response, Transport

    class Storage(Transport):
        def connect(self) -> bytes:
            return bytes.fromhex("3B8F8001804F0CA000000306030001000000006A")

        def transmit(self, capdu: bytes) -> Response:
            return Response(b"", 0x6A82)

        def reset(self) -> bytes:
            return self.connect()

        def power_cycle(self) -> bytes:
            return self.connect()

        def close(self) -> None:
            pass

        def describe(self) -> dict[str, str]:
            return {"reader": "Other 00 00"}

    monkeypatch.setattr(pcsc, "list_readers", lambda: ["Other 00 00"])
    monkeypatch.setattr(command, "reader_atrs", lambda names: {r: b"\x3b" for r in names})
    monkeypatch.setattr(pcsc, "PcscTransport", lambda reader: Storage())
    code, doc, err = _json(capsys, "--reader", "Other")
    VALIDATOR.validate(doc)
    assert code == 3 and "has no SmartCard-HSM applet" in doc["tokens"][0]["error"]
