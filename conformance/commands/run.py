"""`hsm-lifecycle run`: the main job. Runs the conformance campaign in this process
(pytest.main on conformance/suite, the plugin options mapped from ours), shows a progress display
while it runs, leaves the evidence bundle in --out and exits 0 only if every rule was judged and
passed (1 a rule failed, 4 partial: nothing failed but something was not judged, 5 the suite itself
broke).

Exit status (architecture.md): 0 pass; 1 fail; 2 a usage mistake; 3 the run was stopped before
its end (the token's serial did not match --serial, a PIN the token refused, a pulled token,
SIGTERM or SIGHUP); 4 partial; 5 error; 130 interrupted (Ctrl-C, SIGINT). A bundle left by a run
that did not reach its end says "complete": false, and on a real token the custody's sentence
says what was put back or which PIN is left where.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Column, Table

from hsm_lifecycle import conformance
from hsm_lifecycle.conformance import terminal
from hsm_lifecycle.conformance.errors import RunStopped, UsageError
from hsm_lifecycle.conformance.evidence.bundle import REPORT_NAME, SUMMARY_NAME, read_summary, rebuild_bundle, write_bundle
from hsm_lifecycle.conformance.evidence.manifest import MANIFEST_NAME, write_manifest
from hsm_lifecycle.conformance.evidence.records import load_evidence_records
from hsm_lifecycle.conformance.evidence.summary import headline_of
from hsm_lifecycle.conformance.options import TargetSpec, parse_so_pin, parse_target, parse_user_pin
from hsm_lifecycle.protocol import FIRMWARE_UPDATES_WHILE_SO_BLOCKED

HELP = (
    "the main job: run the conformance campaign and write the evidence bundle "
    "(exit 0 pass: every rule judged and passed; 1 fail; 4 partial; 5 suite error)"
)

DEFAULT_OUT = Path("evidence")
EXIT_RULE_FAILED = 1
EXIT_USAGE = 2
EXIT_STOPPED = 3
EXIT_PARTIAL = 4
EXIT_ERROR = 5
EXIT_INTERRUPTED = 130
EXIT_OF_VERDICT = {"pass": 0, "fail": EXIT_RULE_FAILED, "partial": EXIT_PARTIAL, "error": EXIT_ERROR}
# Files that mark a folder as an earlier evidence bundle (only those may be replaced by --force).
BUNDLE_MARKERS = (SUMMARY_NAME, MANIFEST_NAME, REPORT_NAME)
VERDICT_STYLE = {"pass": "green", "fail": "bold red", "observed": "cyan", "not-run": "yellow", "partial": "yellow"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--target", metavar="T", help="emulator (default), emulator:vpcd or pcsc:READER")
    parser.add_argument("--reader", metavar="R", help="PC/SC reader name substring (implies --target pcsc)")
    parser.add_argument("--out", metavar="DIR", type=Path, default=DEFAULT_OUT, help="where the evidence bundle goes (default ./evidence)")
    parser.add_argument("--force", action="store_true", help="replace an earlier evidence bundle in --out")
    parser.add_argument(
        "--serial",
        metavar="S",
        help="serial of the token you consent to re-initialize (wipes its keys); without it only free and tries checks run on a real token",
    )
    parser.add_argument("--allow-irreversible", action="store_true", help="also run checks that block the SO-PIN for good (needs --serial)")
    parser.add_argument("--allow-operator", action="store_true", help="also run checks that need you at the firmware-update portal")
    parser.add_argument(
        "--portal",
        metavar="SOCKET",
        help="the portal steps are done by a scripted operator at the simulated portal of `hsm-lifecycle emulate --portal SOCKET`",
    )
    parser.add_argument(
        "--max-updates",
        metavar="N",
        type=int,
        help="with --allow-operator: make at most N firmware updates (run --plan first: it says how many each check needs)",
    )
    parser.add_argument(
        "--updates-used",
        metavar="N",
        type=int,
        help="firmware updates the token already had because its SO-PIN was blocked (0..5), where no scripted portal tells",
    )
    parser.add_argument(
        "--power-rig",
        metavar="SOCKET",
        help="a power-cut rig on this Unix socket cuts the token's power in a PIN check, so R17 is judged "
        "(`hsm-lifecycle emulate --power-rig SOCKET`, or a lab rig speaking docs/power-rig.md)",
    )
    parser.add_argument("--so-pin", metavar="X", help="the real token's SO-PIN: 16 hex digits (e.g. 3537363231383830)")
    parser.add_argument("--pin", metavar="Y", help="the real token's user PIN (6..16 characters)")
    parser.add_argument("--so-floor", metavar="N", type=int, help="never let SO-PIN tries drop below N in tries checks (default 5)")
    parser.add_argument(
        "--trace-secrets",
        action="store_true",
        help="keep --pin and --so-pin in clear in the traces (by default a real token's PINs are masked)",
    )
    parser.add_argument("-k", metavar="EXPR", dest="select", help="run only the tests matching this pytest -k expression")
    parser.add_argument("--plain", action="store_true", help="show pytest's own output instead of the progress display")
    parser.add_argument(
        "--plan",
        action="store_true",
        help="print the campaign plan (ordered checks, what each costs, what will not run and which option would "
        "allow it, estimated duration on a Nitrokey HSM 2) after free reads only, then stop; writes nothing",
    )
    parser.epilog = (
        "Exit status: 0 no rule failed, 1 a rule failed, 2 usage mistake, 3 the run stopped early (a refused PIN, a "
        "pulled token, SIGTERM), 130 interrupted (Ctrl-C). Either leaves a partial bundle marked \"complete\": false. On a real token the "
        "owner's PINs are put back at the end of every run; after a pulled token, `hsm-lifecycle restore` (or the next run) does it."
    )


@dataclass(frozen=True)
class Campaign:
    """The validated request: what to run, where to, and the pytest arguments it becomes."""

    target: TargetSpec
    out: Path
    pytest_args: tuple[str, ...]
    serial: str | None
    plan_only: bool = False  # --plan: print the plan and stop
    earlier: Path | None = None  # --force: the earlier bundle, set aside until this run collects tests


def plan(args: argparse.Namespace, suite: Path) -> Campaign:
    """Validate everything before the first APDU; each mistake is one sentence (UsageError)."""
    for flag, value in (("--reader", args.reader), ("--serial", args.serial), ("--target", args.target)):
        if value is not None and not value.strip():
            raise UsageError(f"{flag} is empty: give a value (for a reader, part of its name as `opensc-tool -l` lists it), or leave {flag} out.")
    if args.max_updates is not None and args.max_updates < 0:
        raise UsageError("--max-updates must be 0 or more.")
    if args.updates_used is not None and not 0 <= args.updates_used <= FIRMWARE_UPDATES_WHILE_SO_BLOCKED:
        raise UsageError(f"--updates-used must be 0..{FIRMWARE_UPDATES_WHILE_SO_BLOCKED}: a token gets 5 updates for a blocked SO-PIN.")
    target_text = args.target or ("pcsc" if args.reader is not None else "emulator")
    try:
        target = parse_target(target_text, args.reader, False)
        if args.so_pin is not None:
            parse_so_pin(args.so_pin)
        if args.pin is not None:
            parse_user_pin(args.pin)
    except ValueError as exc:
        raise UsageError(str(exc).replace("--hsm-", "--")) from None
    if target.kind == "emulator" and (args.so_pin or args.pin):
        raise UsageError("--so-pin and --pin are a real token's PINs; the in-process emulator starts fresh with the suite's own.")
    if args.allow_irreversible and not args.serial:
        raise UsageError("--allow-irreversible needs --serial naming the token you consent to block.")
    if args.so_floor is not None and args.so_floor < 1:
        raise UsageError("--so-floor must be at least 1: at 0 SO tries the SO-PIN is blocked for good.")
    out = args.out.expanduser()
    plan_only = bool(getattr(args, "plan", False))
    if not plan_only:
        check_out(out, force=args.force)
    if target.kind == "pcsc":
        _check_reader(target.reader or "")
    if plan_only:
        return Campaign(target, out, tuple(_plan_args(args, suite, target)), args.serial, plan_only=True)
    earlier = prepare_out(out, force=args.force)  # only now: a refused run must not cost the earlier bundle
    pytest_args = [
        *_consent_args(args, suite, target),
        f"--hsm-evidence={out}",
        f"--junitxml={out / 'junit.xml'}",
        "-o", "junit_family=xunit1",  # keeps record_property's rule-id properties
    ]  # fmt: skip
    if args.trace_secrets:
        pytest_args.append("--hsm-trace-secrets")
    if not args.plain:
        # The progress display replaces pytest's output; the project's addopts (-ra) need the
        # terminal reporter, so they go too.
        pytest_args += ["-p", "no:terminal", "-o", "addopts="]
    return Campaign(target, out, tuple(pytest_args), args.serial, earlier=earlier)


def _consent_args(args: argparse.Namespace, suite: Path, target: TargetSpec) -> list[str]:
    """pytest arguments both the run and --plan pass: the suite, the target, the consent, the
    PINs and the selection, with skip reasons naming run's options."""
    argv = [
        str(suite),
        f"--hsm-target={'pcsc:' + target.reader if target.kind == 'pcsc' else target.kind}",
        "-p", "no:cacheprovider",
        "--hsm-option-names=run",  # skip reasons and messages name run's options
    ]  # fmt: skip
    if target.kind == "emulator:vpcd" and target.reader:
        argv.append(f"--hsm-reader={target.reader}")
    for flag, value in (("--hsm-serial", args.serial), ("--hsm-so-pin", args.so_pin), ("--hsm-pin", args.pin)):
        if value is not None:
            argv.append(f"{flag}={value}")
    if args.so_floor is not None:
        argv.append(f"--hsm-so-floor={args.so_floor}")
    if args.power_rig:
        argv.append(f"--hsm-power-rig={args.power_rig}")
    for flag, given in (("--hsm-allow-irreversible", args.allow_irreversible), ("--hsm-allow-operator", args.allow_operator)):
        if given:
            argv.append(flag)
    if args.portal:  # the plan reads the token's update history there too
        argv.append(f"--hsm-portal={args.portal}")
    if args.max_updates is not None:
        argv.append(f"--hsm-max-updates={args.max_updates}")
    if args.updates_used is not None:
        argv.append(f"--hsm-updates-used={args.updates_used}")
    if args.select:
        argv += ["-k", args.select]
    return argv


def _plan_args(args: argparse.Namespace, suite: Path, target: TargetSpec) -> list[str]:
    """pytest arguments for --plan: the same consent and PINs, no evidence, pytest's output off."""
    return [*_consent_args(args, suite, target), "--hsm-plan", "-p", "no:terminal", "-o", "addopts="]


def check_out(out: Path, *, force: bool) -> None:
    """--out must be new or empty; --force may replace an earlier bundle, never another folder."""
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file, not a folder: name a folder for the evidence bundle.")
    if out.is_dir() and any(out.iterdir()):
        if not force:
            raise UsageError(f"--out {out} exists and is not empty: choose another folder, or pass --force to replace the earlier bundle in it.")
        if not any((out / marker).exists() for marker in BUNDLE_MARKERS):
            raise UsageError(f"--out {out} is not an evidence bundle (no {SUMMARY_NAME}): refusing to empty it, even with --force.")


def prepare_out(out: Path, *, force: bool) -> Path | None:
    """An empty --out folder. With `force` an earlier bundle is set aside beside it (returned),
    not removed: a run that then collects nothing puts it back (discard_out)."""
    check_out(out, force=force)
    earlier = None
    if out.is_dir() and any(out.iterdir()):
        earlier = out.with_name(f".{out.name}.earlier-bundle")
        try:
            if earlier.exists():
                shutil.rmtree(earlier)
            out.rename(earlier)
        except OSError as exc:
            raise UsageError(f"cannot set the earlier bundle in --out {out} aside: {exc.strerror}.") from None
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".hsm-lifecycle-write-check"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        if earlier is not None:
            discard_out(out, False, earlier)
        raise UsageError(f"cannot write the evidence bundle to --out {out}: {exc.strerror}.") from None
    return earlier


def discard_out(out: Path, out_is_new: bool, earlier: Path | None = None) -> None:
    """Undo prepare_out after a run that ran nothing: the folder goes if this run made it,
    else it is left as check_out found it (the earlier bundle back in place with --force)."""
    if out_is_new:
        shutil.rmtree(out, ignore_errors=True)
    elif out.is_dir():
        _empty(out)
    if earlier is not None and earlier.is_dir():
        if out.is_dir():
            out.rmdir()
        earlier.rename(out)


def drop_earlier(earlier: Path | None) -> None:
    """The run collected tests: the earlier bundle set aside by --force goes for good."""
    if earlier is not None:
        shutil.rmtree(earlier, ignore_errors=True)


def _empty(folder: Path) -> None:
    for child in folder.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()


def _check_reader(substring: str) -> None:
    """pcscd up and the reader there, before pytest starts (its errors would be noisier)."""
    from hsm_lifecycle.conformance.transport.base import TransportError
    from hsm_lifecycle.conformance.transport.pcsc import list_readers, select_reader

    try:
        select_reader(list_readers(), substring)
    except TransportError as exc:
        raise UsageError(str(exc)) from None


# ---------------------------------------------------------------------------------------------
# The progress display: a small pytest plugin object


@dataclass(eq=False)  # pytest registers plugins in sets: keep identity hashing
class ProgressDisplay:
    """Updates a rich Progress per test and keeps what the end of the run needs to know."""

    console: Console
    enabled: bool = True
    total: int = 0
    finished: int = 0
    counts: dict[str, int] = field(default_factory=lambda: {"passed": 0, "failed": 0, "skipped": 0})
    failures: list[str] = field(default_factory=list)
    collect_errors: list[str] = field(default_factory=list)
    stop_message: str | None = None  # pytest.exit's message (an interlock stopped the run)
    interrupted: bool = False
    _progress: Progress | None = None
    _task: Any = None

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        release_stop_signals()  # every module is imported: from here a signal stops the run cleanly
        self.total = len(session.items)
        if not self.enabled or not self.total:
            return
        self._progress = Progress(
            SpinnerColumn(),
            # The test name takes what the terminal has left; the rest keeps its width.
            TextColumn("{task.description}", style="bold", table_column=Column(ratio=1, no_wrap=True, overflow="ellipsis")),
            BarColumn(bar_width=20),
            MofNCompleteColumn(),
            TextColumn(
                "[green]{task.fields[passed]} ok[/] [red]{task.fields[failed]} failed[/] "
                "[yellow]{task.fields[skipped]} skipped[/]",
                table_column=Column(no_wrap=True),
            ),
            TimeElapsedColumn(),
            console=self.console,
            transient=True,
            expand=True,
        )
        self._progress.start()
        self._task = self._progress.add_task("conformance", total=self.total, **self.counts)

    def pytest_runtest_logstart(self, nodeid: str, location: tuple[str, int | None, str]) -> None:
        if self._progress is not None:
            self._progress.update(self._task, description=escape(location[2]))

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when == "call":
            self.counts[report.outcome] = self.counts.get(report.outcome, 0) + 1
        elif report.skipped:  # skipped in setup (an interlock, a missing option)
            self.counts["skipped"] += 1
        elif report.failed:  # an error in setup or teardown
            self.counts["failed"] += 1
        if report.failed:
            line = _first_line(getattr(report, "longreprtext", "") or "")
            self.failures.append(f"{report.nodeid}: {line}")
            if self._progress is not None:
                self._progress.console.print(f"[red]✘[/] {escape(report.nodeid)} — {escape(line)}")

    def pytest_runtest_logfinish(self, nodeid: str, location: tuple[str, int | None, str]) -> None:
        self.finished += 1
        if self._progress is not None:
            self._progress.update(self._task, advance=1, **self.counts)

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:
            self.collect_errors.append(f"{report.nodeid}: {_first_line(report.longreprtext)}")

    def pytest_keyboard_interrupt(self, excinfo: pytest.ExceptionInfo[BaseException]) -> None:
        stop = excinfo.value
        if isinstance(stop, RunStopped) and stop.exit_code != EXIT_INTERRUPTED:
            self.stop_message = stop.message.replace("--hsm-", "--")  # SIGTERM, a refused PIN: exit 3
        elif isinstance(stop, KeyboardInterrupt):
            self.interrupted = True
        else:  # pytest.exit(...): the plugin names its own options; ours drop the "hsm-"
            self.stop_message = str(getattr(excinfo.value, "msg", excinfo.value)).replace("--hsm-", "--")

    def pytest_sessionfinish(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """The live display stopped while a person answers an operator prompt (it would draw
        over the prompt), then started again where it was."""
        progress = self._progress
        if progress is None or not progress.live.is_started:
            yield
            return
        progress.stop()
        try:
            yield
        finally:
            progress.start()

    @property
    def complete(self) -> bool:
        return not self.interrupted and self.stop_message is None and self.finished >= self.total


def _first_line(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    # pytest's long representation ends with the "E   ..." line that says what failed.
    errors = [ln.removeprefix("E").strip() for ln in lines if ln.startswith("E ")]
    return (errors[0] if errors else lines[-1] if lines else "")[:200]


# ---------------------------------------------------------------------------------------------


@contextlib.contextmanager
def stop_signals_interrupt() -> Iterator[None]:
    """SIGTERM (a CI timeout) and SIGHUP (a closed terminal) stop the campaign the way Ctrl-C
    does, so the partial bundle is still written and marked incomplete; they exit 3, Ctrl-C 130.
    (On a real token the custody holds them to the next APDU boundary.)"""

    def interrupt(signum: int, frame: object) -> None:
        raise RunStopped.by_signal(signum)

    wanted = (signal.SIGTERM, signal.SIGHUP)
    try:
        previous = {sig: signal.signal(sig, interrupt) for sig in wanted}
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@contextlib.contextmanager
def terminal_console() -> Iterator[Console]:
    """A console on a duplicate of our stdout: pytest captures fd 1 while tests run, and the
    progress display must still reach the terminal."""
    try:
        fd = os.dup(sys.stdout.fileno())
    except (AttributeError, OSError, ValueError):  # no real stdout (embedded, already captured)
        yield Console(highlight=False)
        return
    with os.fdopen(fd, "w", buffering=1, encoding="utf-8", errors="replace") as stream:
        yield Console(file=stream, highlight=False)


def suite_dir() -> Path:
    return conformance.SUITE_DIR


STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}


def hold_stop_signals() -> None:
    """Signals wait while pytest and the suite load: a Ctrl-C inside an import leaves a half
    module that breaks the rest of the run with a traceback. They are let through once the tests
    are collected (or when pytest returns), where they stop the run cleanly."""
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)


def release_stop_signals() -> None:
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)


def main(args: argparse.Namespace) -> int:
    hold_stop_signals()
    try:
        return _main(args)
    finally:
        release_stop_signals()


def _main(args: argparse.Namespace) -> int:
    console = Console(highlight=False)
    out_is_new = not args.out.expanduser().exists()
    campaign = plan(args, suite_dir())
    if campaign.plan_only:
        code = pytest.main(list(campaign.pytest_args))
        if code == pytest.ExitCode.USAGE_ERROR:
            return EXIT_USAGE
        return 0 if code == pytest.ExitCode.OK else EXIT_STOPPED
    console.print(
        f"hsm-lifecycle run: target [bold]{escape(str(campaign.target))}[/], evidence in [bold]{escape(str(campaign.out))}[/]",
        soft_wrap=True,  # paths stay whole, to copy them
    )
    started = datetime.now(timezone.utc)
    t0 = time.perf_counter()
    with terminal_console() as live_console, stop_signals_interrupt():
        display = ProgressDisplay(live_console, enabled=not args.plain)
        pause = display.paused
        terminal.add_pause(terminal.DISPLAY, pause)
        try:
            code = pytest.main(list(campaign.pytest_args), plugins=[display])
        finally:
            terminal.remove_pause(pause)
            release_stop_signals()  # pytest stopped before collecting: a held signal lands here
        display.pytest_sessionfinish()
    duration = time.perf_counter() - t0

    if code in (pytest.ExitCode.USAGE_ERROR, pytest.ExitCode.NO_TESTS_COLLECTED) or (display.collect_errors and not display.total):
        discard_out(campaign.out, out_is_new, campaign.earlier)  # a usage mistake leaves nothing behind
    else:
        drop_earlier(campaign.earlier)
    if code == pytest.ExitCode.USAGE_ERROR:
        return EXIT_USAGE  # pytest has printed the one-line reason
    if code == pytest.ExitCode.NO_TESTS_COLLECTED:
        what = f"no test matches -k {args.select!r}" if args.select else f"the conformance suite in {suite_dir()} has no tests"
        raise UsageError(f"{what}; nothing was run.")
    if display.collect_errors and not display.total:
        raise UsageError(f"the conformance suite could not be loaded: {display.collect_errors[0]}")
    ran_all = display.complete and code in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED)
    summary = finish_bundle(campaign, started, duration, complete=ran_all)

    print_summary(console, campaign, summary)
    if display.stop_message is not None:  # SIGTERM, a refused PIN, a pulled token: exit 3, not 130
        console.print(f"[bold red]Stopped[/]: {escape(display.stop_message)}", soft_wrap=True)
        return EXIT_STOPPED
    if display.interrupted or code == pytest.ExitCode.INTERRUPTED:
        console.print(f"[bold red]Interrupted[/]: the partial bundle in {escape(str(campaign.out))} is marked incomplete.", soft_wrap=True)
        return EXIT_INTERRUPTED
    if code == EXIT_STOPPED:  # a signal held through the restore, or the custody could not put all back: the line above says what
        console.print("[bold red]Stopped[/] before its end; the bundle is marked incomplete.", soft_wrap=True)
        return EXIT_STOPPED
    if code == pytest.ExitCode.INTERNAL_ERROR:
        console.print("[bold red]pytest failed internally[/]; the bundle is marked incomplete.")
        return EXIT_STOPPED
    verdict = str(summary.get("verdict", "error"))
    if code == pytest.ExitCode.TESTS_FAILED and verdict in ("pass", "partial"):
        # pytest saw a failure the bundle does not hold (a test outside the records): the suite's.
        console.print("[bold red]ERROR[/]: pytest reports a failed test that no rule's check accounts for; see junit.xml.")
        return EXIT_ERROR
    return EXIT_OF_VERDICT.get(verdict, EXIT_ERROR)


def finish_bundle(campaign: Campaign, started: datetime, duration: float, *, complete: bool) -> dict:
    """Make sure the bundle is whole and honest: written (the plugin normally does it), marked
    incomplete if the run did not finish, and its manifest listing junit.xml (written by pytest
    after the plugin's bundle)."""
    out = campaign.out
    if not (out / SUMMARY_NAME).exists():
        # The plugin wrote no bundle (the run stopped before its session finished): write it
        # from whatever records there are.
        write_bundle(
            out,
            load_evidence_records(out),
            target={"kind": "pcsc" if campaign.target.kind == "pcsc" else "emulator",
                    "reader": campaign.target.reader or "", "serial": campaign.serial or "",
                    "profile": "smartcard-hsm"},
            started=started,
            duration_s=duration,
            open_behaviours={},
            complete=False,
        )
    elif not complete and read_summary(out).get("complete", True):
        rebuild_bundle(out, complete=False)
    else:
        write_manifest(out)
    return read_summary(out)


def print_summary(console: Console, campaign: Campaign, summary: dict) -> None:
    table = Table(title="Rules", show_lines=False, header_style="bold")
    table.add_column("rule")
    table.add_column("title")
    table.add_column("verdict")
    table.add_column("why", overflow="fold")
    for rule in summary.get("rules", []):
        style = VERDICT_STYLE.get(rule["verdict"], "")
        table.add_row(rule["id"], rule["title"], f"[{style}]{rule['verdict']}[/]", escape(rule.get("why", ""))[:160])
    console.print(table)
    # Every check that keeps a rule from passing, with the trace that decided it (all are in the report).
    open_checks = [(c, r["id"]) for r in summary.get("rules", []) for c in r.get("checks", []) if c.get("verdict") != "pass"]
    for check, _ in open_checks[:40]:
        trace = f" [{check['traces'][0]}]" if check.get("traces") else ""
        console.print(f"  {check['id']}: {check['verdict']}{escape(trace)} {escape(check.get('why', ''))[:140]}", soft_wrap=True)
    if len(open_checks) > 40:
        console.print(f"  ... and {len(open_checks) - 40} more checks not passed (report.html lists every check)")
    cov, cost = summary.get("coverage", {}), summary.get("cost", {})
    s, t = cov.get("states", {}), cov.get("transitions", {})
    console.print(
        f"coverage: {s.get('covered', 0)}/{s.get('total', 0)} states, {t.get('covered', 0)}/{t.get('applicable', t.get('total', 0))} applicable transitions · "
        f"cost: {cost.get('apdus', 0)} APDUs, {cost.get('user_tries_spent', 0)} user tries, {cost.get('so_tries_spent', 0)} SO tries"
        + (f", {cost['so_tries_left_end']} SO tries left" if cost.get("so_tries_left_end") is not None else "")
    )
    if cost.get("measured_from") == "device counters":
        before, after = cost.get("counters", {}).get("before", {}), cost.get("counters", {}).get("after", {})
        console.print(
            f"token tries (its own counters): user PIN {before.get('user_tries')} -> {after.get('user_tries')}, "
            f"SO-PIN {before.get('so_tries')} -> {after.get('so_tries')}; owner's PINs "
            + ("in place" if cost.get("owner_pins_in_place") else "[bold red]NOT in place[/]")
        )
    if cost.get("custody"):
        console.print(escape(str(cost["custody"])), soft_wrap=True)
    verdict = summary.get("verdict", "error")
    label = headline_of(summary) if summary.get("complete", True) else "INCOMPLETE: " + headline_of(summary)
    colour = {"pass": "green", "partial": "yellow"}.get(verdict, "red")
    console.print(f"[bold {colour}]{escape(label)}[/] — report: {escape(str(campaign.out / REPORT_NAME))}", soft_wrap=True)
