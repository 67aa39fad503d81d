"""The DKEK variables of the model (model.dkek) and the backup advice doctor gives before a re-initialization."""

from __future__ import annotations

from hsm_lifecycle.conformance import dkek as device
from hsm_lifecycle.conformance.mapper import Mapper
from hsm_lifecycle.conformance.transport.inprocess import InProcessTransport
from hsm_lifecycle.emulator import VirtualToken
from hsm_lifecycle.model import dkek as model
from hsm_lifecycle.model.commands import Command
from hsm_lifecycle.model.states import ExtState


def _mapper(shares: int | None, imported: tuple[str, ...] = (), keys: int = 0) -> Mapper:
    mapper = Mapper(InProcessTransport(VirtualToken.manufacture()))
    mapper.select()
    assert mapper.run(Command.initialize("right", dkek_shares=shares), uninitialized=True) == "9000"
    for share in imported:
        assert mapper.run(Command.import_dkek_share(share), uninitialized=False) == "9000"
    for _ in range(keys):
        assert mapper.run(Command.verify_user("right"), uninitialized=False) == "9000"
        assert mapper.run(Command.generate_key(), uninitialized=False) == "9000"
    return mapper


def test_the_dkek_variables_follow_r23() -> None:
    s = ExtState.initialized(options=1).but(dkek_shares=2)
    assert (model.outstanding(s), model.complete(s), model.pending(s)) == (2, False, True)
    assert not model.backup_possible(s) and model.identity(s) is None
    s = model.after_import(s, Command.import_dkek_share("right"))
    assert model.identity(s) is None  # half a DKEK is no DKEK yet
    s = model.after_import(s, Command.import_dkek_share("wrong"))
    assert model.complete(s) and model.identity(s) == "AB" and model.backup_possible(s)
    twice = model.after_import(model.after_import(s.but(dkek_imported=0, dkek=""), Command.import_dkek_share("right")),
                               Command.import_dkek_share("right"))
    assert model.identity(twice) == ""  # XOR: a share imported twice cancels out
    assert model.blob_opens(s.but(blob="AB"), Command.unwrap_key("held"))
    assert not model.blob_opens(s.but(blob="AB"), Command.unwrap_key("tampered"))
    assert not model.blob_opens(s.but(blob="A"), Command.unwrap_key("held"))  # another DKEK
    assert not model.blob_opens(s, Command.unwrap_key("held"))  # no blob held
    random = s.but(dkek_shares=0, dkek_imported=0, dkek="")
    assert model.identity(random) == model.RANDOM
    after = model.after_initialize(random.but(blob=model.RANDOM), Command.initialize("right", dkek_shares=0))
    assert after["blob"] == model.LOST  # two random DKEKs never match


def test_advice_without_a_dkek_says_the_keys_are_lost() -> None:
    advice = device.backup_advice(_mapper(None, keys=1))
    assert not advice.possible and "can never leave" in advice.reason and advice.commands == ()


def test_advice_with_shares_outstanding_asks_for_them_first() -> None:
    advice = device.backup_advice(_mapper(2, ("right",)))
    assert not advice.possible and "1 of 2 share(s)" in advice.reason
    assert advice.commands == ("sc-hsm-tool --import-dkek-share <share file>",)


def test_advice_with_a_complete_dkek_names_the_commands_for_each_key() -> None:
    mapper = _mapper(1, ("right",), keys=2)
    advice = device.backup_advice(mapper)
    assert advice.possible
    assert advice.commands[0] == "sc-hsm-tool --wrap-key key-01.bin --key-reference 1 --pin <user PIN>"
    assert advice.commands[1].startswith("sc-hsm-tool --wrap-key key-02.bin")
    assert any("--dkek-shares" in c for c in advice.commands) and advice.commands[-1].startswith("sc-hsm-tool --unwrap-key key-02.bin")


def test_doctor_reads_the_advice_and_warns_before_a_reinitialization() -> None:
    from hsm_lifecycle.conformance.doctor import diagnose, read_token

    mapper = _mapper(1, ("right",), keys=1)
    reading = read_token(mapper.transport)
    assert reading.backup is not None and reading.backup.possible
    assert any(w.startswith("Before a re-initialization: the keys can be backed up") and "--wrap-key key-01.bin" in w
               for w in diagnose(reading).warnings)
    bare = read_token(_mapper(None, keys=1).transport)
    assert bare.backup is not None and not bare.backup.possible
    assert any("cannot be backed up now" in w for w in diagnose(bare).warnings)
