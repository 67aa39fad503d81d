"""Fleet runs end to end: 4 emulators on 4 vpcd ports through pcscd (one per xdist worker),
per-token consent over PC/SC readers, and the in-process emulator still sharing its tests out
over 2 workers into one bundle. Each run is a separate `python -m pytest -n N` process over a
few rules of the suite; the full 4-token campaign is measured in bench/ (python -m bench)."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest

from hsm_lifecycle.conformance.targets import AsRealTarget
from hsm_lifecycle.conformance.transport.pcsc import empty_vpcd_port
from hsm_lifecycle.emulator import VirtualToken
from hsm_lifecycle.emulator.vpcd import lease_ports, serve_emulator, vpcd_readers
from fleet_support import assert_manifest_ok, need_vpcd_readers, run_suite_process

# A few quick rules: free (R10, R19) and wipes on a shipped token (R21: each emulator is renewed).
SUBSET = "test_r10 or test_r19 or test_r21"
SUBSET_TESTS = 6
OWNER_PINS = ("--hsm-pin", "648219", "--hsm-so-pin", "3537363231383830")


@pytest.mark.pcscd
def test_four_vpcd_emulators_give_four_bundles_and_a_combined_summary(tmp_path: Path) -> None:
    need_vpcd_readers(4)
    run = run_suite_process(tmp_path / "evidence", "-n", "4", "--hsm-target", "emulator:vpcd", "-k", SUBSET)
    assert run.rc == 0, run.output[-3000:]
    assert "hsm fleet: 4 tokens" in run.output and "gw3 -> emulator:vpcd" in run.output  # the header
    combined = run.combined()
    tokens = combined["tokens"]
    assert [t["worker"] for t in tokens] == ["gw0", "gw1", "gw2", "gw3"]
    assert combined["verdict"] == "partial" and combined["complete"] is True  # a subset: partial, nothing failed
    serials = [t["serial"] for t in tokens]
    readers = [t["target"]["reader"] for t in tokens]
    assert all(serials) and len(set(serials)) == 4, serials
    assert len(set(readers)) == 4 and set(readers) <= set(vpcd_readers().values()), readers
    for token in tokens:
        summary = run.summary(token)
        assert token["bundle"] == token["serial"], "a token's bundle is named after its serial"
        assert summary["target"]["worker"] == token["worker"] and summary["target"]["serial"] == token["serial"]
        assert summary["verdict"] == "partial" and summary["complete"] is True
        verdicts = {r["id"]: r["verdict"] for r in summary["rules"]}
        assert verdicts["R10"] == verdicts["R19"] == verdicts["R21"] == "pass", verdicts
        assert len(run.records(token)) == SUBSET_TESTS, "every token ran the whole selection"
        assert (run.bundle(token) / "traces" / "session-setup.jsonl").is_file()
        assert_manifest_ok(run.bundle(token))
        # The terminal summary shows the mapping with each token's serial and bundle.
        assert f"{token['worker']} -> {token['target']['reader']} (serial {token['serial']})" in run.output
    assert_manifest_ok(run.evidence)  # the fleet folder's manifest covers every bundle too


@pytest.mark.pcscd
def test_each_reader_is_one_token_and_consent_is_per_serial(tmp_path: Path) -> None:
    """Two owned tokens in two PC/SC readers (emulators on vpcd, seen as real tokens): gw0 takes
    the first --hsm-reader, gw1 the second. Only the second token's serial is listed, so only
    it is wiped; the first one, built to break R16, fails its own bundle and the fleet."""
    need_vpcd_readers(2)
    with contextlib.ExitStack() as stack:
        ports = stack.enter_context(lease_ports(2, wait=60, usable=empty_vpcd_port))
        tokens, owned = [], []
        for i, port in enumerate(ports):
            state = tmp_path / f"token{i}.json"
            token = VirtualToken.manufacture(state_path=state)
            AsRealTarget.set_up_as_owner(token)
            token.power_on()
            owned.append(token.status())
            faults = ("wrong-length-spends-try",) if i == 0 else ()
            tokens.append(stack.enter_context(serve_emulator(port, state, faults=faults)))
        readers = [vpcd_readers()[port] for port in ports]
        run = run_suite_process(
            tmp_path / "evidence", "-n", "2", "--hsm-target", "pcsc", "--hsm-reader", readers[0], "--hsm-reader", readers[1],
            *OWNER_PINS, "--hsm-serial", tokens[1].serial, "-k", "test_r16 or test_r08",
        )  # fmt: skip
    assert run.rc == 1, run.output[-3000:]
    first, second = run.combined()["tokens"]
    assert (first["worker"], first["target"]["reader"], first["serial"]) == ("gw0", readers[0], tokens[0].serial)
    assert (second["worker"], second["target"]["reader"], second["serial"]) == ("gw1", readers[1], tokens[1].serial)
    assert "not listed" in first["consent"] and "listed" in second["consent"]
    outcome, why = run.outcome(first, "test_r08_identity_unchanged_by_initialize")
    assert outcome == "skipped" and tokens[0].serial in why and tokens[1].serial in why, why
    assert run.outcome(first, "test_r16_wrong_length_user_pin_in_verify_spends_nothing")[0] == "failed"
    assert (first["verdict"], first["rules_failed"]) == ("fail", ["R16"])
    assert run.outcome(second, "test_r08_identity_unchanged_by_initialize")[0] == "passed"
    assert (second["verdict"], second["rules_failed"]) == ("partial", [])
    assert run.combined()["verdict"] == "fail" and run.combined()["serials_not_found"] == []
    # The unlisted token was never re-initialized: its owner's key is still there.
    kept = VirtualToken.open(tmp_path / "token0.json")
    kept.power_on()
    assert kept.status().keys == owned[0].keys and kept.status().initialized


def test_in_process_emulator_shares_tests_out_over_two_workers_into_one_bundle(tmp_path: Path) -> None:
    run = run_suite_process(tmp_path / "evidence", "-n", "2", "-k", SUBSET + " or test_r04")
    assert run.rc == 0, run.output[-3000:]
    assert not (run.evidence / "combined-summary.json").exists()
    summary = run.summary({"bundle": "."})
    # A subset judges only some checks: partial, with nothing failed; merged from both workers.
    assert summary["verdict"] == "partial" and "worker" not in summary["target"]
    assert "fail" not in {r["verdict"] for r in summary["rules"]}
    assert next(r for r in summary["rules"] if r["id"] == "R04")["verdict"] == "pass"
    nodeids = [r["nodeid"] for r in run.records({"bundle": "."})]
    assert len(nodeids) == len(set(nodeids)) == SUBSET_TESTS + 3, "each test ran once, on one of the workers"  # + R04's three
    assert_manifest_ok(run.evidence)


def test_one_real_token_is_never_shared_by_two_workers(tmp_path: Path) -> None:
    run = run_suite_process(tmp_path / "evidence", "-n", "2", "--hsm-target", "pcsc:Nitrokey")
    assert run.rc == 4 and "one device, which 2 xdist workers cannot share" in run.output, run.output[-2000:]
    assert not any((tmp_path / "evidence").glob("gw*"))


@pytest.mark.pcscd
def test_each_token_of_a_fleet_gets_its_own_plan(tmp_path: Path) -> None:
    """Two persistent vpcd emulators: --hsm-plan reads each (free) and prints one plan per token,
    each from that token's own start state; nothing runs."""
    need_vpcd_readers(2)
    run = run_suite_process(tmp_path / "evidence", "-n", "2", "--hsm-target", "emulator:vpcd", "--hsm-persistent",
                            "--hsm-plan", "-k", SUBSET)  # fmt: skip
    assert run.rc == 0, run.output[-3000:]
    plans = [line for line in run.output.splitlines() if ": Campaign plan for emulator:vpcd, serial " in line]
    assert sorted(p.split(":")[0] for p in plans) == ["gw0", "gw1"], run.output[-3000:]
    serials = {p.split("serial ")[1].split(":")[0] for p in plans}
    assert len(serials) == 2, plans  # two tokens, two start states read
    assert "passed" not in run.output.splitlines()[-1] and "12 skipped" in run.output.splitlines()[-1]


@pytest.mark.pcscd
def test_a_persistent_fleet_walks_each_token_on_its_own_plan(tmp_path: Path) -> None:
    need_vpcd_readers(2)
    run = run_suite_process(tmp_path / "evidence", "-n", "2", "--hsm-target", "emulator:vpcd", "--hsm-persistent", "-k", SUBSET)
    assert run.rc == 0, run.output[-3000:]
    for token in run.combined()["tokens"]:
        plan = run.summary(token)["plan"]  # each token's bundle carries its own plan
        steps = [s["check"].split("::")[-1] for seg in plan["segments"] for s in seg["steps"]]
        assert steps[0] == "test_r21_any_code_becomes_the_so_pin" and len(steps) == SUBSET_TESTS, steps
        assert plan["changed_by_device"] is False
