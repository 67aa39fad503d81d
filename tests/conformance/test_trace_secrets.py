"""A real token's PINs stay out of its traces (masked, and put back only by a replay that is
given them); the emulator's test PINs stay in clear; --hsm-trace-secrets keeps them."""

from __future__ import annotations

from pathlib import Path

from hsm_lifecycle.conformance.cli import main as cli
from hsm_lifecycle.conformance.mapper import Mapper, PinBook
from hsm_lifecycle.conformance.trace import MASK_BYTE, TraceRecorder, TracingTransport, mask_secrets, read_trace, unmask
from hsm_lifecycle.conformance.transport.inprocess import InProcessTransport
from hsm_lifecycle.emulator import VirtualToken
from hsm_lifecycle.model.commands import Command as C
from test_interlocks import as_real, own_token

USER_HEX = b"648219".hex().upper()
SO_HEX = "3537363231383830"
SECRETS = (("pin", b"648219"), ("so-pin", bytes.fromhex(SO_HEX)))


def apdus(run) -> list[str]:
    return [line.cmd for line in run.trace_lines() if not line.is_control]


def test_mask_covers_each_place_a_pin_travels():
    change = bytes.fromhex("0024008110") + b"648219" + b"12345678"  # CHANGE 81 old || new
    masked, spans = mask_secrets(change, SECRETS)
    assert b"648219" not in masked and masked[5:11] == bytes([MASK_BYTE]) * 6 and masked[11:] == b"12345678"
    assert spans == ((5, 6, "pin"),)
    init = bytes.fromhex("8050000019800200018106") + b"648219" + bytes.fromhex("8208" + SO_HEX + "910103")
    masked, spans = mask_secrets(init, SECRETS)
    assert USER_HEX not in masked.hex().upper() and SO_HEX not in masked.hex().upper()
    assert [name for _, _, name in spans] == ["pin", "so-pin"]
    header = bytes.fromhex("00200081")  # the header is never searched
    assert mask_secrets(header, (("pin", header),)) == (header, ())


def test_real_token_traces_mask_the_owners_pins_by_default(run_suite, tmp_path: Path):
    path, _ = own_token(tmp_path / "token.json")
    run = run_suite(*as_real(path), select="r04_wrong or r06_works")
    assert run.rc == 0, run.output
    sent = apdus(run)
    assert sent and not any(USER_HEX in c or SO_HEX in c for c in sent)
    masked = [line for line in run.trace_lines() if line.masked]
    assert {name for line in masked for _, _, name in line.masked} == {"pin", "so-pin"}
    # The wrong PIN (zeros) is no secret: what the test presented stays readable.
    assert any(c.startswith("0020008106" + "30" * 6) for c in sent)
    raw = "".join(p.read_text() for p in (run.evidence / "traces").glob("*.jsonl"))
    assert USER_HEX not in raw and SO_HEX not in raw and '"masked"' in raw


def test_trace_secrets_keeps_them_for_a_lab(run_suite, tmp_path: Path):
    path, _ = own_token(tmp_path / "token.json")
    run = run_suite(*as_real(path, "--hsm-trace-secrets"), select="r04_wrong")
    assert run.rc == 0, run.output
    assert any(USER_HEX in c for c in apdus(run))
    assert not any(line.masked for line in run.trace_lines())


def test_emulator_traces_keep_the_test_pins(run_suite):
    run = run_suite(select="r04_wrong")
    assert run.rc == 0, run.output
    assert any(USER_HEX in c for c in apdus(run)) and not any(line.masked for line in run.trace_lines())


def _masked_trace(path: Path) -> Path:
    """A trace from a fresh emulated token, recorded as a real token's would be."""
    recorder = TraceRecorder(path, secrets=SECRETS)
    tracing = TracingTransport(InProcessTransport(VirtualToken.manufacture()), recorder)
    mapper = Mapper(tracing, pins=PinBook.create())
    recorder.context("connect", "shipped")
    tracing.connect()
    mapper.select()
    for cmd, uninit in ((C.initialize("right", 1, 3), True), (C.verify_user("wrong"), False), (C.verify_user("right"), False), (C.change_so_pin("right"), False)):
        recorder.context(str(cmd), "")
        mapper.run(cmd, uninitialized=uninit)
    recorder.flush()
    return path


def test_replay_of_a_masked_trace_needs_the_pins(tmp_path: Path, capsys):
    path = _masked_trace(tmp_path / "masked.jsonl")
    lines = list(read_trace(path))
    assert USER_HEX not in path.read_text() and any(line.masked for line in lines)
    assert cli(["replay", str(path)]) == 2
    err = capsys.readouterr().err
    assert "masked" in err and "--pin" in err and len(err.strip().splitlines()) == 1
    assert cli(["replay", str(path), "--pin", "648219"]) == 2  # the SO-PIN is masked too
    assert "--so-pin" in capsys.readouterr().err
    assert cli(["replay", str(path), "--pin", "6482190", "--so-pin", SO_HEX]) == 2
    assert "has 7 bytes" in capsys.readouterr().err
    assert cli(["replay", str(path), "--pin", "648219", "--so-pin", SO_HEX]) == 0
    assert "all SWs match" in capsys.readouterr().out
    first = next(line for line in lines if line.masked)
    assert b"648219" in unmask(first, {"pin": b"648219", "so-pin": bytes.fromhex(SO_HEX)})
