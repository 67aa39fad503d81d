"""The worker-to-token mapping, the per-token consent, the xdist option checks and the combined
summary, without starting any worker."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from hsm_lifecycle.conformance.evidence.bundle import write_bundle
from hsm_lifecycle.conformance.evidence.combined import (
    COMBINED_NAME,
    TokenEntry,
    bundle_name,
    clear_fleet_output,
    overall_verdict,
    read_combined,
    write_combined,
)
from hsm_lifecycle.conformance.evidence.manifest import verify_manifest
from hsm_lifecycle.conformance.evidence.modelview import ModelView
from hsm_lifecycle.conformance.evidence.records import TestRecord
from hsm_lifecycle.conformance.fleet import Fleet, TokenConsent, worker_index
from hsm_lifecycle.conformance.interlocks import WHY_IRREVERSIBLE, WHY_WIPES
from hsm_lifecycle.model.cost import CostClass
from hsm_lifecycle.conformance.options import HsmOptions, TargetSpec, check_workers, parse_targets
from hsm_lifecycle.conformance.targets import vpcd_ports
from hsm_lifecycle.conformance.transport.base import TransportError


def options(kind: str = "pcsc", readers: tuple[str, ...] = (), workers: int = 0, serials: tuple[str, ...] = (), **extra) -> HsmOptions:
    return HsmOptions(
        target=TargetSpec(kind, readers[0] if len(readers) == 1 else None, extra.pop("as_real", False)),
        serial=None,
        allow_irreversible=extra.pop("allow_irreversible", False),
        allow_operator=False,
        so_pin=None,
        pin=None,
        so_floor=5,
        evidence=None,
        faults=(),
        examples=10,
        steps=30,
        readers=readers,
        serials=serials,
        workers=workers,
        **extra,
    )


# -- mapping -----------------------------------------------------------------------------------


def test_worker_k_drives_the_kth_reader():
    fleet = Fleet.of(options(readers=("Reader A", "Reader B", "Reader C"), workers=3))
    assert [(s.worker, s.target.reader, s.target.slot) for s in fleet.slots] == [
        ("gw0", "Reader A", 0),
        ("gw1", "Reader B", 1),
        ("gw2", "Reader C", 2),
    ]
    assert fleet.slot("gw1").target.reader == "Reader B"
    mine = fleet.options_for(options(readers=("Reader A", "Reader B", "Reader C"), workers=3), fleet.slot("gw2"))
    assert (str(mine.target), mine.readers, mine.target.guarded) == ("pcsc:Reader C", ("Reader C",), True)
    header = "\n".join(fleet.header())
    assert "gw0 -> pcsc:Reader A" in header and "gw2 -> pcsc:Reader C" in header and "--hsm-serial): none" in header


def test_vpcd_fleet_has_one_emulator_per_worker():
    fleet = Fleet.of(options("emulator:vpcd", workers=4))
    assert [s.target.slot for s in fleet.slots] == [0, 1, 2, 3] and all(s.target.reader is None for s in fleet.slots)
    assert not fleet.slots[0].target.guarded and "consent" not in "\n".join(fleet.header())


def test_a_worker_without_a_token_is_refused():
    fleet = Fleet.of(options(readers=("A", "B"), workers=2))
    with pytest.raises(ValueError, match="gw2 has no token"):
        fleet.slot("gw2")
    with pytest.raises(ValueError, match="not a pytest-xdist worker"):
        worker_index("main")
    assert worker_index("gw12") == 12


def test_the_in_process_emulator_is_no_fleet():
    assert not options("emulator", workers=2).fleet
    with pytest.raises(ValueError):
        Fleet.of(options("emulator", workers=2))


def test_vpcd_workers_prefer_their_own_port():
    readers = {35963: "Virtual PCD 00 00", 35964: "Virtual PCD 00 01", 35965: "Virtual PCD 35965 00 00"}
    assert vpcd_ports(TargetSpec("emulator:vpcd"), readers) == [35963, 35964, 35965]
    assert vpcd_ports(TargetSpec("emulator:vpcd", slot=1), readers) == [35964, 35965, 35963]
    assert vpcd_ports(TargetSpec("emulator:vpcd", slot=4), readers) == [35964, 35965, 35963]
    assert vpcd_ports(TargetSpec("emulator:vpcd", "35965 00 00", slot=0), readers) == [35965]
    with pytest.raises(TransportError, match="no reader matches"):
        vpcd_ports(TargetSpec("emulator:vpcd", "Nitrokey"), readers)


def test_two_substrings_picking_one_reader_are_refused():
    fleet = Fleet.of(options(readers=("Nitrokey", "HSM 2 (DENK01"), workers=2))
    available = ["Nitrokey Nitrokey HSM 2 (DENK0100000) 00 00", "Other Reader 00 00"]
    with pytest.raises(ValueError, match="both pick reader"):
        fleet.check_readers(available)
    Fleet.of(options(readers=("Nitrokey", "Other"), workers=2)).check_readers(available)
    Fleet.of(options(readers=("Nitrokey", "Absent"), workers=2)).check_readers(available)  # its worker says so


# -- options under xdist -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("opts", "message"),
    [
        (options(readers=("A",), workers=2), "one device, which 2 xdist workers cannot share"),
        (options(readers=("A", "B")), "run them with -n 2"),
        (options(readers=("A", "B"), workers=3), "use -n 2"),
        (options("emulator:vpcd", readers=("A", "B"), workers=4), "use -n 2"),
        (options(readers=("A",), serials=("S1", "S2")), "drives one token"),
        (options("emulator", workers=2, as_real=True), "cannot share"),
        (options("emulator", serials=("S1", "S2")), "no fleet"),
    ],
)
def test_xdist_mistakes_are_one_sentence(opts, message):
    with pytest.raises(ValueError, match=message):
        check_workers(opts)


def test_allowed_xdist_shapes():
    for opts in (
        options(readers=("A",), workers=1),  # one worker, one token: nothing shared
        options(readers=("A", "B"), workers=2, serials=("S1", "S2")),
        options("emulator:vpcd", workers=4),
        options("emulator", workers=2),  # fresh token per test: the tests are shared out
    ):
        check_workers(opts)


def test_several_readers_name_one_kind_of_target():
    assert parse_targets("pcsc", ("A", "B"), False) == (TargetSpec("pcsc"), ("A", "B"))
    assert parse_targets("emulator:vpcd", ("A", "B"), False)[1] == ("A", "B")
    assert parse_targets("pcsc:A", (), False) == (TargetSpec("pcsc", "A"), ("A",))
    for text, readers in (("emulator", ("A", "B")), ("pcsc:A", ("B", "C")), ("pcsc", ("A", "A"))):
        with pytest.raises(ValueError):
            parse_targets(text, readers, False)


# -- consent per token -------------------------------------------------------------------------


def consent(listed: tuple[str, ...], guarded: bool = True, irreversible: bool = False) -> TokenConsent:
    return TokenConsent(guarded=guarded, serial=None, allow_irreversible=irreversible, allow_operator=False, so_floor=5, listed=listed)


def test_a_listed_token_may_be_wiped_once_its_serial_matched():
    c = consent(("DENK01", "DENK02"))
    assert c.skip_reason(CostClass.WIPES) is None, "not refused up front: it may be this token"
    assert c.skip_reason(CostClass.IRREVERSIBLE) == WHY_IRREVERSIBLE
    assert c.ceiling() == CostClass.TRIES, "no wiping APDU before the serial is read"
    c.confirm_serial("denk02 ")
    assert c.serial_confirmed and c.serial == "denk02" and c.ceiling() == CostClass.WIPES
    assert c.skip_reason(CostClass.WIPES) is None and "wipes allowed" in c.state


def test_an_unlisted_token_runs_only_what_needs_no_consent():
    c = consent(("DENK01",))
    c.confirm_serial("DENK09")  # never raises: the other tokens of the fleet go on
    assert not c.serial_confirmed and c.ceiling() == CostClass.TRIES
    reason = c.skip_reason(CostClass.WIPES)
    assert reason is not None and "DENK09" in reason and "DENK01" in reason
    assert c.skip_reason(CostClass.TRIES) is None and c.skip_reason(CostClass.FREE) is None
    assert "not listed" in c.state


def test_an_unreadable_serial_matches_nothing():
    c = consent(("DENK01",))
    c.confirm_serial("")
    assert not c.serial_confirmed and "unreadable" in (c.skip_reason(CostClass.WIPES) or "")


def test_no_serial_listed_is_the_single_token_rule():
    c = consent(())
    assert c.skip_reason(CostClass.WIPES) == WHY_WIPES
    c.confirm_serial("DENK01")
    assert c.skip_reason(CostClass.WIPES) == WHY_WIPES and c.ceiling() == CostClass.TRIES


def test_emulators_need_no_serial():
    c = consent((), guarded=False)
    c.confirm_serial("UTEM0000001")
    assert c.skip_reason(CostClass.IRREVERSIBLE) is None and c.ceiling() == CostClass.IRREVERSIBLE


def test_serials_no_token_had_are_reported():
    fleet = Fleet.of(options(readers=("A", "B"), workers=2, serials=("DENK01", "denk02", "DENK03")))
    assert fleet.serials_not_found(["DENK02", "DENK01", ""]) == ["DENK03"]


# -- combined summary --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_view() -> ModelView:
    """The real model's rules and transitions; no diagram (graphviz is not what is tested here)."""
    return replace(ModelView.load(), render_diagram=None)


def _bundle(root: Path, name: str, worker: str, serial: str, outcome: str, small_view) -> Path:
    path = root / name
    from hsm_lifecycle.model.checks import CHECKS, checks_of

    # A passing token decides every check of the catalog; a failing one fails R01's first.
    checks = {c.id: {"verdict": "pass", "why": ""} for c in CHECKS}
    if outcome == "failed":
        checks[checks_of("R01")[0].id] = {"verdict": "fail", "why": "broken"}
    record = TestRecord(nodeid="t::a", rules=("R01",), cost="free", outcome=outcome, transitions=("S01",), states=("shipped",), checks=checks)
    target = {"kind": "pcsc", "reader": f"Reader {worker}", "serial": serial, "worker": worker}
    write_bundle(path, [record], target=target, started="2026-01-01T00:00:00+00:00", duration_s=1.0, open_behaviours={}, view=small_view)
    return path


def test_combined_summary_reads_each_bundle(tmp_path: Path, small_view):
    a = _bundle(tmp_path, "DENK01", "gw0", "DENK01", "passed", small_view)
    b = _bundle(tmp_path, "gw1", "gw1", "", "failed", small_view)
    entries = [TokenEntry.from_bundle(tmp_path, a, "gw0", "serial listed"), TokenEntry.from_bundle(tmp_path, b, "gw1", "")]
    doc = write_combined(tmp_path, entries, expected=2, started="s", duration_s=2.0, serials_not_found=["DENK07"])
    assert doc == read_combined(tmp_path)
    first, second = doc["tokens"]
    assert (first["serial"], first["bundle"], first["verdict"], first["rules_failed"]) == ("DENK01", "DENK01", "pass", [])
    assert first["target"]["worker"] == "gw0" and first["target"]["reader"] == "Reader gw0"
    assert (second["verdict"], second["rules_failed"]) == ("fail", ["R01"])
    assert doc["verdict"] == "fail" and doc["serials_not_found"] == ["DENK07"]
    assert verify_manifest(tmp_path).ok
    assert "DENK01/summary.json" in (tmp_path / "MANIFEST.sha256").read_text()


def test_the_fleet_passes_only_if_every_token_left_a_passing_bundle(tmp_path: Path, small_view):
    a = TokenEntry.from_bundle(tmp_path, _bundle(tmp_path, "A", "gw0", "A", "passed", small_view), "gw0", "")
    b = TokenEntry.from_bundle(tmp_path, _bundle(tmp_path, "B", "gw1", "B", "passed", small_view), "gw1", "")
    assert overall_verdict([a, b], expected=2) == "pass"
    assert overall_verdict([a], expected=2) == "fail", "a token without a bundle"
    assert overall_verdict([], expected=0) == "fail"
    assert overall_verdict([a, replace(b, verdict="fail")], expected=2) == "fail"


def test_bundle_folder_names():
    assert bundle_name("DENK0100000", "gw0", set()) == "DENK0100000"
    assert bundle_name("", "gw1", set()) == "gw1"
    assert bundle_name("DENK01", "gw2", {"DENK01"}) == "gw2"
    assert bundle_name("../x y", "gw3", set()) == "x_y"
    assert bundle_name("gw0", "gw3", set()) == "gw3", "a serial never takes a worker's folder name"


def test_clearing_removes_only_what_a_fleet_run_left(tmp_path: Path, small_view):
    _bundle(tmp_path, "DENK01", "gw0", "DENK01", "passed", small_view)
    (tmp_path / "gw1").mkdir()
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "summary.json").write_text(json.dumps({"schema": "mine"}))
    (tmp_path / COMBINED_NAME).write_text("{}")
    (tmp_path / "MANIFEST.sha256").write_text("")
    clear_fleet_output(tmp_path, single_bundle_too=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes"]
