"""Power-loss injection over the model's transitions (the tear method of docs/robustness.md).

For one transition: take the model's path to it, run the prefix on a file-backed token, run the
transition's command once uncut while recording the durable state at every power event, then
for n = 0, 1, 2, ... run the prefix again on a fresh token and cut the power at event n, until
the command completes. After each cut the token is reopened from its state file and judged:

* the file holds exactly what the uncut run had made durable by event n (each write atomic);
* that is the state before, the state after, or the state before with the presented PIN's try
  spent (the pre-decrement, R17), never a mix, in the emulator's full durable state (PINs,
  counters, options, objects, identity) and in what a client reads back through APDUs;
* no try is refunded: once the comparison has been made, the counter is not back where it was
  unless the command's own restoring write had completed (a right PIN);
* no PIN is compared before its decremented counter is durable; the session died with the power.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from itertools import count
from pathlib import Path

from hsm_lifecycle.conformance.fuzz.invariants import RESTORING, pin_order
from hsm_lifecycle.conformance.fuzz.starts import ModelDriver
from hsm_lifecycle.emulator import PersistencePoint, PowerCut, PowerEvent, PowerLoss, Profile, Stage, VirtualToken
from hsm_lifecycle.emulator.store import FileStore
from hsm_lifecycle.protocol import FID_C_DEVAUT, FID_PREFIX_EE_CERT
from hsm_lifecycle.model import EMULATOR_DEFAULTS, Command, ExtState
from hsm_lifecycle.model import Profile as ModelProfile
from robust_support import Seen, look

USER_PIN_COMMANDS = frozenset({"verify_user", "change_user_pin", "portal_login"})
SO_PIN_COMMANDS = frozenset({"initialize", "reset_retry_counter", "change_so_pin"})


def random_content(fid: int) -> bool:
    """EF.C_DevAut and CV requests (CExx) differ between two fresh tokens doing the same."""
    return fid == FID_C_DEVAUT or fid >> 8 == FID_PREFIX_EE_CERT


@dataclass(frozen=True)
class Durable:
    """The persisted state, without what differs between two freshly made tokens (key
    material, the random identity itself): `same_identity` says whether it is still the
    identity the prefix left."""

    so_pin: bytes | None
    so_tries: int
    user_pin: bytes | None
    user_tries: int
    user_max: int
    options: int
    transport_pin: bool
    key_fids: frozenset[int]
    files: frozenset[tuple[int, bytes]]  # content, except for what is random per token
    identity_generation: int
    same_identity: bool
    so_blocked_updates: int
    dkek_outstanding: int | None

    @classmethod
    def load(cls, path: Path, chr_at_start: str) -> Durable:
        s = FileStore(path).load()
        return cls(s.so_pin, s.so_tries, s.user_pin, s.user_tries, s.user_max, s.options, s.transport_pin,
                   frozenset(s.keys), frozenset((fid, b"" if random_content(fid) else body) for fid, body in s.files.items()),
                   s.identity_generation, s.device_chr == chr_at_start,
                   s.so_blocked_updates, None if s.dkek is None else s.dkek.outstanding)

    def spent(self, counter: str) -> Durable:
        return replace(self, **{counter: max(getattr(self, counter) - 1, 0)})


@dataclass(frozen=True)
class TearCase:
    """A model transition to tear: the profiles and the model's path whose last step takes it."""

    transition: str
    emulator: Profile
    model: ModelProfile
    path: tuple[Command, ...]

    @property
    def command(self) -> Command:
        return self.path[-1]


@dataclass(frozen=True)
class RawCase:
    """A command outside the model's alphabet (VERIFY 88 with data, UPDATE BINARY, DKEK import):
    a model path, raw set-up APDUs, the APDU to tear and the SW its uncut run answers."""

    name: str
    path: tuple[Command, ...]
    setup: tuple[bytes, ...]
    capdu: bytes
    sw: str
    counters: tuple[str, ...] = ()
    emulator: Profile = Profile()


@dataclass
class TearReport:
    name: str
    events: list[PowerEvent] = field(default_factory=list)
    cuts: int = 0
    problems: list[str] = field(default_factory=list)


@dataclass
class Prefixed:
    """A fresh file-backed token driven to the start of the command under test."""

    token: VirtualToken
    driver: ModelDriver
    path: Path
    chr: str
    identity: bytes  # EF.C_DevAut at the start (read from the file: an APDU ends the session)

    @classmethod
    def make(cls, path: Path, emulator: Profile, model: ModelProfile, commands: tuple[Command, ...],
             setup: tuple[bytes, ...] = ()) -> Prefixed:
        token = VirtualToken.manufacture(state_path=path, profile=emulator)
        driver = ModelDriver(token, model)
        for cmd in commands:
            driver.run(cmd)
        for capdu in setup:
            answer = token.transmit(capdu)
            assert answer[-2:] == b"\x90\x00", f"set-up {capdu.hex().upper()} answered {answer.hex().upper()}"
        return cls(token, driver, path, token.status().device_chr, FileStore(path).load().files[FID_C_DEVAUT])

    def durable(self) -> Durable:
        return Durable.load(self.path, self.chr)


Make = Callable[[Path], Prefixed]
Act = Callable[[Prefixed], object]
Judge = Callable[[VirtualToken, Prefixed], list[str]]


def counters(cmd: Command) -> tuple[str, ...]:
    """Which counter a command's PIN presentation pre-decrements."""
    if cmd.name in USER_PIN_COMMANDS:
        return ("user_tries",)
    if cmd.name in SO_PIN_COMMANDS:
        return ("so_tries",)
    return ()


def model_candidates(before: ExtState, after: ExtState, cmd: Command) -> dict[str, ExtState]:
    """before / after / spent in the model's terms, with no session (the power took it)."""

    def off(s: ExtState) -> ExtState:
        return s.but(authenticated=False) if s.authenticated else s

    found = {"before": off(before), "after": off(after)}
    if before.is_initialized:
        if "user_tries" in counters(cmd) and before.user_tries:
            found["spent"] = off(before.but(user_tries=before.user_tries - 1))
        if "so_tries" in counters(cmd) and before.so_tries:
            found["spent"] = off(before.but(so_tries=before.so_tries - 1))
    return found


def tear(case: TearCase, directory: Path) -> TearReport:
    """Tear a model transition; after each cut a client's reads must match the model too."""
    commands = case.path[:-1]

    def make(path: Path) -> Prefixed:
        return Prefixed.make(path, case.emulator, case.model, commands)

    def act(run: Prefixed) -> object:
        return run.driver.run(case.command)  # judged by the oracle

    start = make(directory / "model-before.json")
    model_before = start.driver.state
    act(start)
    candidates = {name: Seen.of_model(s, model_before)
                  for name, s in model_candidates(model_before, start.driver.state, case.command).items()}

    def judge(reopened: VirtualToken, run: Prefixed) -> list[str]:
        seen = look(reopened, run.identity)
        return [] if seen in candidates.values() else [f"a client reads {seen}, which is none of {candidates}"]

    return tear_with(case.transition, make, act, counters(case.command), directory, judge)


def tear_raw(case: RawCase, directory: Path) -> TearReport:
    def make(path: Path) -> Prefixed:
        return Prefixed.make(path, case.emulator, EMULATOR_DEFAULTS, case.path, case.setup)

    def act(run: Prefixed) -> object:
        answer = run.token.transmit(case.capdu)
        assert answer[-2:].hex().upper() == case.sw, f"{case.name}: uncut run answered {answer.hex().upper()}"
        return answer

    return tear_with(case.name, make, act, case.counters, directory, lambda reopened, run: [])


def tear_with(name: str, make: Make, act: Act, spends: tuple[str, ...], directory: Path, judge: Judge) -> TearReport:
    """The tear method: a recorded uncut run, then one run cut at each of its events."""
    report = TearReport(name)
    reference = make(directory / "reference.json")
    before = reference.durable()
    seen: list[Durable] = []

    def record(event: PowerEvent) -> None:
        report.events.append(event)
        seen.append(reference.durable())

    reference.token.set_power_loss_hook(record)
    act(reference)
    reference.token.set_power_loss_hook(None)
    allowed = {"before": before, "after": reference.durable()} | {f"spent {c}": before.spent(c) for c in spends}
    report.problems += pin_order(report.events)
    for event, state in zip(report.events, seen):
        if state not in allowed.values():
            report.problems.append(f"at {event.point.value}/{event.stage.value} the durable state is a mix: {state}")
    for n in count():
        run = make(directory / f"cut-{n}.json")
        cut = PowerCut(at=n)
        run.token.set_power_loss_hook(cut)
        try:
            act(run)
        except PowerLoss:
            pass
        else:
            if n != len(report.events):
                report.problems.append(f"completed uncut at attempt {n}, but the reference run had {len(report.events)} events")
            break
        report.cuts += 1
        where = f"cut at event {n} ({cut.events[-1].point.value}/{cut.events[-1].stage.value})"
        problems = judge_cut(cut.events, run, seen[n] if n < len(seen) else None, before, allowed, judge)
        report.problems += [f"{where}: {p}" for p in problems]
    return report


def judge_cut(events: list[PowerEvent], run: Prefixed, expected: Durable | None, before: Durable,
              allowed: dict[str, Durable], judge: Judge) -> list[str]:
    problems = []
    reopened = VirtualToken.open(run.path)  # StateFileError here would fail the test outright
    reopened.power_on()
    now = run.durable()
    if now != expected:
        problems.append(f"the state file holds {now}, the uncut run had {expected} durable there")
    if now not in allowed.values():
        problems.append(f"neither before, after nor a spent try: {now}")
    compared = any(e.point is PersistencePoint.PIN_COMPARED for e in events)
    restored = any(e.stage is Stage.AFTER and e.point in RESTORING for e in events)
    if compared and not restored and now == before:
        problems.append("R17: the try spent on the comparison was refunded")
    problems += judge(reopened, run)
    if reopened.status().authenticated:
        problems.append("a session survived the power loss")
    return problems
