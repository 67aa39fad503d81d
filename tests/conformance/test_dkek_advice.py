"""The DKEK sub-model (model.dkek) and the backup advice doctor gives before a re-initialization."""

from __future__ import annotations

from hsm_lifecycle.conformance import dkek as device
from hsm_lifecycle.conformance.mapper import Mapper
from hsm_lifecycle.conformance.transport.inprocess import InProcessTransport
from hsm_lifecycle.emulator import VirtualToken
from hsm_lifecycle.model import dkek as model
from hsm_lifecycle.model.commands import Command


def _mapper(shares: int | None, imported: tuple[str, ...] = (), keys: int = 0) -> Mapper:
    mapper = Mapper(InProcessTransport(VirtualToken.manufacture()))
    mapper.select()
    mapper.dkek_shares = shares
    assert mapper.run(Command.initialize("right"), uninitialized=True) == "9000"
    for name in imported:
        assert device.import_share(mapper, device.SHARES[name]).sw_hex == "9000"
    for _ in range(keys):
        assert mapper.run(Command.verify_user("right"), uninitialized=False) == "9000"
        assert mapper.run(Command.generate_key(), uninitialized=False) == "9000"
    return mapper


def test_the_sub_model_follows_r23() -> None:
    s = model.initialize(model.DkekState(), 2).next
    assert (s.announced, s.outstanding, s.complete) == (2, 2, False)
    assert not model.wrap(s, True).ok and not model.backup_possible(s)
    s = model.import_share(s, "A").next
    assert not model.unwrap(s, ("A",)).ok  # half a DKEK opens nothing
    s = model.import_share(s, "B").next
    assert s.complete and s.identity == ("A", "B") and model.wrap(s, True).ok
    assert not model.import_share(s, "C").ok  # none outstanding
    assert model.unwrap(s, ("B", "A")).ok is False and model.unwrap(s, ("A", "B")).ok
    assert not model.unwrap(s, ("A",)).ok  # another DKEK
    wiped = model.initialize(s, None)
    assert wiped.next.announced is None and not model.dkek_status(wiped.next).ok
    one, two = model.initialize(s, 0).next, model.initialize(s, 0).next
    assert one.complete and one.identity != two.identity  # two random DKEKs never match


def test_advice_without_a_dkek_says_the_keys_are_lost() -> None:
    advice = device.backup_advice(_mapper(None, keys=1))
    assert not advice.possible and "can never leave" in advice.reason and advice.commands == ()


def test_advice_with_shares_outstanding_asks_for_them_first() -> None:
    advice = device.backup_advice(_mapper(2, ("A",)))
    assert not advice.possible and "1 of 2 share(s)" in advice.reason
    assert advice.commands == ("sc-hsm-tool --import-dkek-share <share file>",)


def test_advice_with_a_complete_dkek_names_the_commands_for_each_key() -> None:
    mapper = _mapper(1, ("A",), keys=2)
    advice = device.backup_advice(mapper)
    assert advice.possible
    assert advice.commands[0] == "sc-hsm-tool --wrap-key key-01.bin --key-reference 1 --pin <user PIN>"
    assert advice.commands[1].startswith("sc-hsm-tool --wrap-key key-02.bin")
    assert any("--dkek-shares" in c for c in advice.commands) and advice.commands[-1].startswith("sc-hsm-tool --unwrap-key key-02.bin")


def test_doctor_reads_the_advice_and_warns_before_a_reinitialization() -> None:
    from hsm_lifecycle.conformance.doctor import diagnose, read_token

    mapper = _mapper(1, ("A",), keys=1)
    reading = read_token(mapper.transport)
    assert reading.backup is not None and reading.backup.possible
    assert any(w.startswith("Before a re-initialization: the keys can be backed up") and "--wrap-key key-01.bin" in w
               for w in diagnose(reading).warnings)
    bare = read_token(_mapper(None, keys=1).transport)
    assert bare.backup is not None and not bare.backup.possible
    assert any("cannot be backed up now" in w for w in diagnose(bare).warnings)
