"""The fault matrix: every fault switch of the emulator and its portal, run against the per-rule
conformance tests, with the check each one must break and what else failed (spillover).

    python -m bench.fault_matrix                    all faults, writes docs/fault-matrix.md
    python -m bench.fault_matrix --only FAULT ...   some of them, printed only
    python -m bench.fault_matrix --workers 2        runs in parallel (one pytest process each)

`BREAKS` is the table the project's tests hold the suite to (tests/conformance/test_fault_kills.py):
each fault must fail its own rule through the named check (and the checks `ALSO_BREAKS` names),
and every check of model.checks must be the one some fault breaks. Not part of `python -m bench` (it has
no `run()`): a full matrix takes a few minutes.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from hsm_lifecycle.emulator import Fault
from hsm_lifecycle.emulator.portal import PortalFault

ROOT = Path(__file__).resolve().parents[1]
SUITE = ROOT / "conformance" / "suite"
DEFAULT_OUT = ROOT / "docs" / "fault-matrix.md"
PER_RULE_TESTS = "test_r0 or test_r1 or test_r2"  # the per-rule tests (not the tour, not the stateful test)

# fault switch -> the check (model.checks) it breaks; the check's rule is the fault's rule.
BREAKS: dict[str, str] = {
    Fault.INITIALIZE_IGNORES_SO_PIN.value: "R01.wrong-init-refused",
    Fault.SO_COUNTER_NOT_SPENT.value: "R02.change-so-wrong-spends-one",
    Fault.SO_UNBLOCKABLE.value: "R03.init-refused",  # the first thing a right SO-PIN at 0 tries opens
    Fault.USER_COUNTER_NOT_RESTORED.value: "R04.right-restores",
    Fault.USER_BLOCK_IGNORED.value: "R05.right-pin-refused",
    Fault.RRC_IGNORES_OPTION.value: "R06.refused-without-option",
    Fault.REINIT_KEEPS_KEYS.value: "R07.keys-erased",
    Fault.IDENTITY_CHANGES_ON_INIT.value: "R08.c-devaut-unchanged",
    Fault.SO_PIN_AUTHORIZES_KEYS.value: "R09.verify-so-opens-nothing",
    Fault.KEY_USE_WITHOUT_LOGIN.value: "R10.sign-needs-login",
    Fault.SESSION_SURVIVES_RESELECT.value: "R10.reselect-ends-session",
    Fault.TRANSPORT_PIN_IGNORED.value: "R11.pin-answers-6984",
    Fault.WRONG_LENGTH_SPENDS_TRY.value: "R16.verify-short-user-pin-free",
    Fault.TEAR_REFUNDS_TRY.value: "R17.verify-user-tear",
    Fault.QUERY_SPENDS_TRY.value: "R19.query-user-free",
    Fault.UNINITIALIZED_ACCEPTS_PIN.value: "R20.pin-commands-refused",
    Fault.FIRST_INIT_SETS_WRONG_TRIES.value: "R21.so-tries-15",
    Fault.RRC_DISABLED_SPENDS_TWO.value: "R02.rrc-disabled-wrong-spends-per-profile",
    Fault.RRC_WRONG_SPENDS_TWO.value: "R02.rrc-wrong-spends-one",
    Fault.CHANGE_USER_PIN_REFUSED.value: "R04.right-restores",
    Fault.REINIT_KEEPS_CERTIFICATES.value: "R07.certificates-erased",
    Fault.REINIT_KEEPS_DATA_OBJECTS.value: "R07.data-objects-erased",
    Fault.REINIT_KEEPS_USER_PIN.value: "R07.new-user-pin-set",
    Fault.PROTECTED_READ_WITHOUT_LOGIN.value: "R09.protected-read-refused",
    Fault.UPDATE_WITHOUT_LOGIN.value: "R10.update-needs-login",
    Fault.DECIPHER_WITHOUT_LOGIN.value: "R10.decipher-needs-login",
    Fault.SESSION_SURVIVES_WARM_RESET.value: "R10.warm-reset-ends-session",
    Fault.LONG_PIN_SPENDS_TRY.value: "R16.verify-long-user-pin-free",
    Fault.SHORT_SO_PIN_SPENDS_TRY.value: "R16.so-pin-wrong-length-free",
    Fault.QUERY_ENDS_SESSION.value: "R19.query-keeps-session",
    Fault.LC_MISMATCH_ACCEPTED.value: "R22.lc-longer-than-data",
    Fault.UNKNOWN_INS_ACCEPTED.value: "R22.unknown-ins",
    Fault.UNKNOWN_CLA_ACCEPTED.value: "R22.unknown-cla",
    Fault.ENUMERATE_IGNORES_P1P2.value: "R22.impossible-p1p2",
    Fault.SLOW_ON_UNKNOWN_INS.value: "R22.within-deadline",
    Fault.UNKNOWN_INS_SPENDS_TRY.value: "R22.changes-nothing",
    Fault.SESSION_SURVIVES_POWER_OFF.value: "R10.power-off-ends-session",
    Fault.GENERATE_WITHOUT_LOGIN.value: "R10.generate-needs-login",
    Fault.DELETE_WITHOUT_LOGIN.value: "R10.delete-needs-login",
    Fault.WRONG_VERIFY_SPENDS_TWO.value: "R04.verify-wrong-spends-one",
    Fault.WRONG_CHANGE_SPENDS_TWO.value: "R04.change-wrong-spends-one",
    Fault.RIGHT_SO_PIN_SPENDS.value: "R02.right-spends-none",
    Fault.REINIT_CHANGES_SO_PIN.value: "R07.so-pin-kept",
    Fault.REINIT_KEEPS_COUNTER.value: "R07.counter-set",
    Fault.FIRST_INIT_IGNORES_RETRIES.value: "R04.starts-at-tag-91",
    Fault.RRC_DOES_NOT_RESET.value: "R06.resets-with-option",
    Fault.RRC_IGNORES_NEW_PIN.value: "R06.new-pin-with-option",
    Fault.WRONG_SO_ERASES_KEYS.value: "R01.wrong-so-keeps-keys",
    Fault.WRONG_INIT_SPENDS_USER_TRY.value: "R01.wrong-init-changes-only-so",
    Fault.SO_BLOCK_QUERY_ANSWERS_63C0.value: "R03.blocked-at-zero",
    Fault.RRC_WORKS_WHEN_SO_BLOCKED.value: "R03.rrc-refused",
    Fault.SO_BLOCK_BLOCKS_USER_PIN.value: "R03.user-pin-and-keys-work",
    Fault.RRC_LOGS_IN.value: "R09.rrc-opens-nothing",
    Fault.CHANGE_SO_LOGS_IN.value: "R09.change-so-opens-nothing",
    Fault.UNINITIALIZED_KEY_USE_6982.value: "R20.key-commands-refused",
    Fault.LC_SHORT_ACCEPTED.value: "R22.lc-shorter-than-data",
    Fault.TEAR_REFUNDS_CHANGE_USER.value: "R17.change-user-tear",
    Fault.TEAR_REFUNDS_RRC.value: "R17.rrc-tear",
    Fault.CHANGE_SO_UNBLOCKS.value: "R03.nothing-unblocks",
    Fault.FIRST_INIT_KEEPS_FACTORY_CODE.value: "R21.code-becomes-so-pin",
    Fault.FIRST_INIT_ONLY_FACTORY_CODE.value: "R21.any-code-accepted",
    Fault.INCOMPLETE_DKEK_USED.value: "R23.needs-complete-dkek",
    Fault.WRAP_UNDER_FIXED_KEY.value: "R23.unwrap-needs-same-dkek",
    Fault.DKEK_SURVIVES_INIT.value: "R23.init-erases-dkek",
    PortalFault.UPDATE_WITH_KEYS.value: "R12.refused-with-keys",
    PortalFault.UNLIMITED_UPDATES.value: "R13.sixth-refused",
    PortalFault.IDENTITY_KEPT_ON_UPDATE.value: "R14.new-identity",
    PortalFault.BLOCKED_HSM_LOGS_IN.value: "R15.user-blocked-refused",
    PortalFault.SO_BLOCK_NOT_ADMITTED.value: "R12.admitted-when-so-blocked",
    Fault.INIT_REGENERATES_DEVICE_KEY.value: "R08.device-key-unchanged",
    Fault.UPDATE_KEEPS_PINS.value: "R14.as-shipped",
    Fault.UPDATE_KEEPS_DATA_OBJECTS.value: "R14.no-keys",
    Fault.UPDATE_UNDER_OTHER_ROOT.value: "R14.same-root",
    Fault.DICA_FROM_UNKNOWN_ROOT.value: "R18.issuer-is-root",
    Fault.DEVICE_CVC_BAD_SIGNATURE.value: "R18.chain-verifies",
    Fault.SERIAL_IS_WHOLE_CHR.value: "R18.serial-from-chr",
    Fault.TRUNCATED_TLV_ACCEPTED.value: "R22.truncated-tlv",
    PortalFault.USER_BLOCKED_NOT_ADMITTED.value: "R12.admitted-without-keys",
    PortalFault.EMPTY_UPDATE_COUNTED.value: "R13.empty-not-counted",
    PortalFault.UNINITIALIZED_LOGS_IN.value: "R15.uninitialized-refused",
    PortalFault.BLOCKED_DEVICE_NEEDS_OWN_LOGIN.value: "R15.account-updates-blocked-device",
    Fault.WRONG_RRC_UNINITIALIZES.value: "R01.wrong-so-keeps-initialized",
    Fault.WRONG_INIT_SPENDS_TWO.value: "R02.init-wrong-spends-one",
    Fault.BLOCKED_USER_KEY_USE.value: "R05.no-key-use",
    Fault.TRANSPORT_VERIFY_LOGS_IN.value: "R11.key-use-refused",
    Fault.CHANGE_KEEPS_TRANSPORT.value: "R11.change-ends-transport",
    Fault.CHANGE_WRONG_LENGTH_SPENDS_TRY.value: "R16.change-user-wrong-length-free",
    Fault.RRC_WRONG_LENGTH_SPENDS_TRY.value: "R16.rrc-user-wrong-length-free",
    Fault.INIT_WRONG_LENGTH_SPENDS_TRY.value: "R16.initialize-wrong-length-free",
    Fault.TEAR_REFUNDS_CHANGE_SO.value: "R17.change-so-tear",
    Fault.SO_QUERY_SPENDS_TRY.value: "R19.query-so-free",
    Fault.UNINITIALIZED_GENERATE_WRITES.value: "R20.changes-nothing",
    Fault.DKEK_STATUS_SHOWS_IMPORTED.value: "R23.status-follows-init",
    Fault.DEVICE_KEY_NEEDS_EXTENDED_LE.value: "R15.working-logs-in",
    PortalFault.FOUR_UPDATES_ONLY.value: "R13.five-admitted",
    PortalFault.TRANSPORT_HSM_LOGS_IN.value: "R15.transport-refused",
    PortalFault.SO_BLOCKED_HSM_REFUSED.value: "R15.so-blocked-logs-in",
    Fault.DKEK_EXTRA_SHARE.value: "R23.status-follows-init",
}

# Checks a fault must fail besides its own, because they share its observation word for word:
# two rules state the same fact (R21 and R02 the 15 SO tries after the first INITIALIZE; R02
# and R06 the one SO try a wrong RESET RETRY COUNTER costs), so no device can break one alone.
ALSO_BREAKS: dict[str, tuple[str, ...]] = {
    Fault.FIRST_INIT_SETS_WRONG_TRIES.value: ("R02.starts-at-15",),
    Fault.RRC_WRONG_SPENDS_TWO.value: ("R06.wrong-so-spends-one",),
}


def every_fault() -> list[str]:
    return [f.value for f in Fault] + [f.value for f in PortalFault]


@dataclass(frozen=True)
class Row:
    fault: str
    check: str  # the check it must break
    verdict: str  # the run's overall verdict
    failed_checks: tuple[str, ...]
    failed_rules: tuple[str, ...]
    errors: int
    seconds: float

    @property
    def rule(self) -> str:
        return self.check.partition(".")[0]

    @property
    def killed(self) -> bool:
        """Its own rule failed, through the check it breaks (and those it shares, ALSO_BREAKS)."""
        return {self.check, *ALSO_BREAKS.get(self.fault, ())} <= set(self.failed_checks)

    @property
    def spillover(self) -> tuple[str, ...]:
        return tuple(r for r in self.failed_rules if r != self.rule)

    @property
    def other_checks(self) -> tuple[str, ...]:
        return tuple(c for c in self.failed_checks if c != self.check)


def run_fault(fault: str, select: str = PER_RULE_TESTS, python: str = sys.executable) -> Row:
    """One pytest process on the in-process emulator with `fault` switched on."""
    with tempfile.TemporaryDirectory(prefix="fault-matrix-") as tmp:
        evidence = Path(tmp) / "evidence"
        argv = [python, "-m", "pytest", str(SUITE), "-q", "-p", "no:randomly", "-p", "no:cacheprovider",
                "--hsm-evidence", str(evidence), "--hsm-emulator-fault", fault, "-k", select]  # fmt: skip
        began = time.perf_counter()
        subprocess.run(argv, cwd=ROOT, capture_output=True, text=True)
        took = time.perf_counter() - began
        doc = json.loads((evidence / "summary.json").read_text(encoding="utf-8"))
        records = [json.loads(line) for line in (evidence / "records.jsonl").read_text(encoding="utf-8").splitlines() if line]
    failed_checks = tuple(c["id"] for r in doc["rules"] for c in r["checks"] if c["verdict"] == "fail")
    failed_rules = tuple(r["id"] for r in doc["rules"] if r["verdict"] == "fail")
    errors = sum(1 for r in records if r["outcome"] == "error")
    return Row(fault, BREAKS.get(fault, "?"), str(doc["verdict"]), failed_checks, failed_rules, errors, took)


def measure(faults: list[str] | None = None, workers: int = 2) -> list[Row]:
    faults = faults or every_fault()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(run_fault, faults))


def render(rows: list[Row], wall: float | None = None, workers: int = 1) -> str:
    killed = sum(r.killed for r in rows)
    clean = sum(r.killed and not r.spillover for r in rows)
    lines = [
        "# Fault matrix",
        "",
        "<!-- Generated by `python -m bench.fault_matrix`; do not edit by hand. -->",
        "",
        "Every fault switch of the emulator (`emulator.profile.Fault`) and its portal (`emulator.portal.PortalFault`),",
        f"run against the per-rule conformance tests (`-k \"{PER_RULE_TESTS}\"`) on the in-process emulator.",
        "A fault is *killed* when its own rule fails through the check it breaks (and through the checks that",
        "share that check's observation word for word, `ALSO_BREAKS`, listed after it). *Spillover* lists the other",
        "rules that failed as well: a fault that shows in a second rule's check, because that check sees the",
        "same misbehaviour (it is not hidden, and the rule it breaks is still named).",
        "",
        f"**{killed} of {len(rows)} faults killed through their own check; {clean} with no spillover.**",
        "",
        *([f"Wall time {wall:.0f} s with {workers} worker(s); the s column is each fault's own pytest process.", ""] if wall else []),
        "| fault | breaks | killed | run verdict | spillover rules | other failed checks | suite errors | s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    from hsm_lifecycle.model.checks import CHECKS

    seen = {c for r in rows for c in r.failed_checks}
    never = [c.id for c in CHECKS if c.id not in seen]
    tail = [
        "",
        f"## Checks seen to fail: {len(seen & {c.id for c in CHECKS})} of {len(CHECKS)}",
        "",
        *(["A check no fault switch makes fail is not yet proven able to fail; these are:", "", *(f"- `{cid}`" for cid in never)]
          if never else ["Every check of `model/checks.py` failed under at least one fault switch."]),
    ] if not set(BREAKS) - {r.fault for r in rows} else []
    for r in rows:
        also = "".join(f", `{c}`" for c in ALSO_BREAKS.get(r.fault, ()))
        others = [c for c in r.other_checks if c not in ALSO_BREAKS.get(r.fault, ())]
        lines.append(
            f"| `{r.fault}` | `{r.check}`{also} | {'yes' if r.killed else '**no**'} | {r.verdict} | "
            f"{', '.join(r.spillover) or '—'} | {', '.join(f'`{c}`' for c in others) or '—'} | {r.errors} | {r.seconds:.1f} |"
        )
    return "\n".join(lines + tail) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.fault_matrix", description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", metavar="FAULT")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    began = time.perf_counter()
    rows = measure(args.only, args.workers)
    text = render(rows, time.perf_counter() - began, args.workers)
    if args.only:
        print(text)
    else:
        args.out.write_text(text, encoding="utf-8")
        print(f"wrote {args.out}")
    return 0 if all(r.killed for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
