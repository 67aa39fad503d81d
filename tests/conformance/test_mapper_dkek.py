"""The key-backup commands: the mapper sends the APDUs OpenSC's sc-hsm driver sends for
sc-hsm-tool (80 52 status / import, 80 72 wrap, 80 74 unwrap), and what it answers the oracle
accepts from the conforming emulator.

The wrap, unwrap and status APDUs were seen leaving sc-hsm-tool (OpenSC 0.23.0) over pcscd with
OPENSC_DEBUG=9: `80 72 01 92 00 00 00`, `80 74 01 93 00 01 6B <363-byte blob>`, `80 52 00 00 00`.
IMPORT DKEK SHARE is OpenSC's sc_hsm_import_dkek_share: case 4 short, Le 00."""

from __future__ import annotations

import pytest

from hsm_lifecycle.conformance.mapper import DKEK_SHARES, NO_BLOB, Mapper, tampered
from hsm_lifecycle.conformance.trace import TraceRecorder, TracingTransport
from hsm_lifecycle.conformance.transport.inprocess import InProcessTransport
from hsm_lifecycle.emulator import VirtualToken
from hsm_lifecycle.model import EMULATOR_DEFAULTS
from hsm_lifecycle.model.commands import Command as C
from hsm_lifecycle.model.oracle import expect
from hsm_lifecycle.model.states import ExtState


@pytest.fixture
def wired():
    recorder = TraceRecorder()
    mapper = Mapper(TracingTransport(InProcessTransport(VirtualToken.manufacture()), recorder))
    mapper.select()
    return mapper, recorder


def _sent(recorder: TraceRecorder, n: int = 1) -> list[str]:
    return [line.cmd for line in recorder.lines[-n:]]


def test_the_dkek_apdus_are_sc_hsm_tools(wired) -> None:
    mapper, rec = wired
    assert mapper.run(C.initialize("right", 0x0001, 3, dkek_shares=2), uninitialized=True) == "9000"
    assert _sent(rec)[0].startswith("805000001C") and _sent(rec)[0].endswith("910103920102")  # tag 92 last, as the tool sends it
    assert mapper.run(C.dkek_status(), uninitialized=False) == "dkek 2/2" and _sent(rec) == ["8052000000"]
    assert mapper.run(C.import_dkek_share("right"), uninitialized=False) == "9000"
    assert _sent(rec) == ["8052000020" + DKEK_SHARES["right"].hex().upper() + "00"]  # case 4, Le 00
    assert mapper.run(C.import_dkek_share("wrong"), uninitialized=False) == "9000"
    assert _sent(rec) == ["8052000020" + DKEK_SHARES["wrong"].hex().upper() + "00"]
    assert mapper.run(C.dkek_status(), uninitialized=False) == "dkek 2/0"
    assert mapper.run(C.verify_user("right"), uninitialized=False) == "9000"
    assert mapper.run(C.generate_key(), uninitialized=False) == "9000"
    assert mapper.run(C.wrap_key(), uninitialized=False) == "9000"
    assert _sent(rec) == ["80720192000000"]  # case 2 extended, Le 0000
    blob = mapper.blob
    assert blob is not None and len(blob) == 0x16B  # a P-256 blob, as long as the one sc-hsm-tool unwrapped
    assert mapper.run(C.unwrap_key("held"), uninitialized=False) == "9000"
    assert _sent(rec) == ["8074029300016B" + blob.hex().upper()]  # case 3 extended, the blob as data
    assert mapper.keys == [1, 2] and mapper.key_ids() == {1, 2}


def test_a_tampered_blob_differs_in_one_bit_and_no_blob_is_one_no_dkek_names() -> None:
    blob = bytes(range(200))
    changed = [i for i, (a, b) in enumerate(zip(blob, tampered(blob))) if a != b]
    assert len(changed) == 1 and changed[0] >= 8 and bin(blob[changed[0]] ^ tampered(blob)[changed[0]]).count("1") == 1
    assert NO_BLOB[:8] == bytes(8)


def test_the_oracle_accepts_what_the_emulator_answers_along_the_backup(wired) -> None:
    mapper, _ = wired
    state = ExtState.shipped()
    steps = [
        C.dkek_status(), C.wrap_key(), C.initialize("right", 1, 3, dkek_shares=1), C.dkek_status(), C.verify_user("right"),
        C.generate_key(), C.wrap_key(), C.unwrap_key("held"), C.import_dkek_share("wrong"), C.import_dkek_share("right"),
        C.generate_key(), C.wrap_key(), C.initialize("right", 1, 3, dkek_shares=1), C.import_dkek_share("right"),
        C.verify_user("right"), C.unwrap_key("held"), C.unwrap_key("tampered"), C.select(), C.unwrap_key("held"),
        C.initialize("right", 1, 3), C.dkek_status(), C.import_dkek_share("right"), C.verify_user("right"), C.wrap_key(),
    ]  # fmt: skip
    transitions = []
    for cmd in steps:
        outcome = expect(state, cmd, EMULATOR_DEFAULTS)
        answer = mapper.run(cmd, uninitialized=not state.is_initialized)
        assert outcome.accepts(answer), f"{outcome.describe()}, emulator answered {answer}"
        transitions.append(outcome.transition)
        state = outcome.next
    assert transitions == [
        "SK02", "SK03", "S06", "IK02", "I07", "IK16", "IK08", "IK13", "IK04", "IK05", "I30", "IK10", "I12", "IK04",
        "I07", "IK15", "IK15", "I01", "IK11", "I12", "IK01", "IK03", "I07", "IK07",
    ]  # fmt: skip
