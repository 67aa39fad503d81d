"""--hsm-plan and `hsm-lifecycle run --plan`: the plan is printed after free reads only."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from hsm_lifecycle.conformance.campaign import LatencyTable, ins_histogram, load_costs
from hsm_lifecycle.conformance.targets import AsRealTarget
from hsm_lifecycle.emulator import VirtualToken
from hsm_lifecycle.model.commands import Command

OWNER_PINS = ("--hsm-pin", "648219", "--hsm-so-pin", "3537363231383830")


def owned_token(path: Path) -> VirtualToken:
    token = VirtualToken.manufacture(state_path=path)
    AsRealTarget.set_up_as_owner(token)
    token.power_off()
    return token


def test_plan_on_an_owned_token_changes_nothing_and_names_the_options(run_suite, tmp_path: Path):
    state = tmp_path / "owned.json"
    token = owned_token(state)
    before = state.read_bytes()
    run = run_suite("--hsm-emulator-as-real", "--hsm-emulator-state", str(state), *OWNER_PINS, "--hsm-plan")
    assert run.rc == 0, run.output
    assert state.read_bytes() == before  # not a counter, not a session flag: nothing was written
    assert f"serial {token.serial}" in run.output and "initialized(so=15, user=3/3" in run.output
    assert "test_r03_blocked_so_pin_stays_blocked (R03): cost class 'irreversible' needs consent — would run with " \
           "--hsm-serial SERIAL --hsm-allow-irreversible" in run.output  # fmt: skip
    assert "Estimated duration on a Nitrokey HSM 2" in run.output
    assert not run.records  # no test ran
    plan = json.loads((run.evidence / "plan.json").read_text())
    assert plan["firmware_updates"] == 0 and plan["segments"][0]["starts_in"] == "initialized"
    costs = {s["cost"] for seg in plan["segments"] for s in seg["steps"]}
    assert costs <= {"free", "tries"}


def test_plan_with_full_consent_blocks_the_so_pin_once_at_the_end(run_suite, tmp_path: Path):
    state = tmp_path / "owned.json"
    token = owned_token(state)
    run = run_suite("--hsm-emulator-as-real", "--hsm-emulator-state", str(state), *OWNER_PINS,
                    "--hsm-serial", token.serial, "--hsm-allow-irreversible", "--hsm-plan")  # fmt: skip
    assert run.rc == 0, run.output
    plan = json.loads((run.evidence / "plan.json").read_text())
    steps = [s for seg in plan["segments"] for s in seg["steps"]]
    assert [s["check"].split("::")[-1] for s in steps if s["so_blocks"]] == ["test_r03_blocked_so_pin_stays_blocked"]
    assert steps[-1]["so_blocks"] == 1


def test_plan_respects_k_selection(run_suite):
    run = run_suite("--hsm-plan", select="test_r20 or test_r21")
    assert run.rc == 0, run.output
    assert "test_r20_" in run.output and "test_r21_" in run.output and "test_r19_" not in run.output


def test_run_plan_words_the_options_of_run_and_writes_nothing(tmp_path: Path):
    out = tmp_path / "evidence"
    done = subprocess.run(
        [sys.executable, "-c", "import sys; from hsm_lifecycle.conformance.cli import main; sys.exit(main())",
         "run", "--plan", "--out", str(out), "-k", "test_r03 or test_r20"],
        capture_output=True, text=True, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "every check on a fresh emulated token" in done.stdout and "test_r03_" in done.stdout
    assert not out.exists()


def test_latency_table_prices_the_mapper_commands():
    table = LatencyTable.load()
    apdus, seconds = table.command(Command.initialize("right"))
    assert apdus == 1 and seconds > 0.5
    assert table.command(Command.query_so())[1] < table.command(Command.verify_user("right"))[1]
    assert table.all_estimates  # nothing sourced yet: the plan must say "estimate"


def test_costs_file_covers_the_suite_and_counts_queries_apart():
    costs = load_costs()
    assert "test_r20_uninitialized_token_refuses_pin_and_key_commands" in costs
    assert ins_histogram([{"cmd": "0020008100"}, {"cmd": "00200081063132333435"}, {"cmd": "01"}]) == {"20": 1, "20q": 1}


# -- the walker's free re-read of the counters ---------------------------------------------------

from dataclasses import dataclass, field  # noqa: E402

from hsm_lifecycle.conformance.campaign import SessionPlan, Walker, read_counters  # noqa: E402
from hsm_lifecycle.model.plan import Plan  # noqa: E402
from hsm_lifecycle.conformance.transport.base import Response  # noqa: E402
from hsm_lifecycle.model.states import ExtState  # noqa: E402


@dataclass
class _Answers:
    """A token that answers the status queries with fixed SWs (and lists `keys` keys)."""

    so_sw: int
    user_sw: int
    keys: int = 0
    sent: list[bytes] = field(default_factory=list)

    def send(self, capdu: bytes) -> Response:
        self.sent.append(capdu)
        return Response(b"", self.so_sw if capdu[3] == 0x88 else self.user_sw)

    def key_ids(self) -> set[int]:
        return set(range(1, self.keys + 1))


@dataclass
class _Recorder:
    def context(self, *args: object) -> None:
        pass


@dataclass
class _Target:
    twin: ExtState | None = None


@dataclass
class _Device:
    mapper: _Answers
    state: ExtState
    recorder: _Recorder = field(default_factory=_Recorder)
    target: _Target = field(default_factory=_Target)


def test_counters_read_again_only_with_free_queries_and_the_token_wins():
    twin = ExtState.initialized(keys=1)
    device = _Device(_Answers(0x63CF, 0x63C1, keys=1), twin)  # one user try left: something spent two
    assert read_counters(device) == twin.but(user_tries=1)
    assert all(len(capdu) == 4 for capdu in device.mapper.sent)  # VERIFY without data only

    from hsm_lifecycle.conformance.campaign import SessionPlan
    from hsm_lifecycle.model.plan import Plan

    walker = Walker(SessionPlan(Plan("x", (), ()), "", None, {}), {})
    walker.reread(device, "t::test")
    assert device.state.user_tries == 1 and device.target.twin == device.state
    assert walker.changes == [{"before": "t::test", "believed": str(twin), "read": str(twin.but(user_tries=1))}]
    assert walker.finish(None)["changed_by_device"] is True


def test_a_token_found_uninitialized_after_an_update_is_a_new_identity():
    twin = ExtState.initialized(so_tries=0)
    device = _Device(_Answers(0x6A88, 0x6A88), twin)
    assert read_counters(device) == ExtState(identity=1)


def test_persistent_is_only_for_the_vpcd_emulator(run_suite):
    run = run_suite("--hsm-persistent", "--hsm-plan")
    assert run.rc == 4 and "--hsm-persistent only applies to --hsm-target emulator:vpcd" in run.output


def test_the_bundle_carries_the_plan_and_what_the_device_changed(tmp_path: Path):
    from hsm_lifecycle.conformance.evidence.bundle import write_bundle

    doc = Walker(SessionPlan(Plan("x", (), ()), "", None, {}, updates_used=3), {}).finish(tmp_path)
    doc["changes"] = [{"before": "t::test", "believed": "a", "read": "b"}]
    doc["changed_by_device"] = True
    (tmp_path / "plan.json").write_text(json.dumps(doc), encoding="utf-8")
    summary = write_bundle(tmp_path, [], target={"kind": "pcsc"}, started="2026-01-01T00:00:00+00:00", duration_s=0.0,
                           open_behaviours={})  # fmt: skip
    written = json.loads((tmp_path / "summary.json").read_text())["plan"]
    assert written == summary.to_json_dict()["plan"] and written["changed_by_device"] is True
    assert written["changes"][0]["before"] == "t::test" and written["updates_used_before"] == 3


def test_a_test_names_only_catalog_checks_and_makes_the_updates_left():
    import pytest

    from hsm_lifecycle.conformance.campaign import check_spec

    latency = LatencyTable.load()
    spec = check_spec("t::test_x", ("R13",), "operator", {"updates": 1, "counted": "left", "decides": ("R13.five-admitted",)}, {}, latency)
    assert spec.counts_left and spec.decides == frozenset({"R13.five-admitted"}) and spec.updates == 1
    with pytest.raises(ValueError, match="not a check of R13"):
        check_spec("t::test_x", ("R13",), "operator", {"decides": ("R13.seventh",)}, {}, latency)
    with pytest.raises(ValueError, match="neither a number nor 'left'"):
        check_spec("t::test_x", ("R13",), "operator", {"counted": "many"}, {}, latency)


def test_device_step_is_the_one_path_and_imports_no_campaign():
    import ast

    import hsm_lifecycle.conformance.campaign as campaign
    import hsm_lifecycle.conformance.device as device

    assert not hasattr(campaign, "step_observing")
    tree = ast.parse(Path(device.__file__).read_text())
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert "hsm_lifecycle.conformance.campaign" not in imported


def test_run_refuses_an_impossible_update_bound_or_history_in_one_sentence(tmp_path: Path):
    for flag, value, says in (("--updates-used", "6", "--updates-used must be 0..5"), ("--max-updates", "-1", "--max-updates must be 0 or more")):
        done = subprocess.run(
            [sys.executable, "-c", "import sys; from hsm_lifecycle.conformance.cli import main; sys.exit(main())",
             "run", "--plan", flag, value], capture_output=True, text=True, cwd=tmp_path,
        )  # fmt: skip
        assert done.returncode == 2 and says in done.stderr and "Traceback" not in done.stderr, done.stderr
