"""The suite's pytest options (architecture.md names them) and their validation.

Every user mistake becomes one sentence (pytest.UsageError), never a traceback, and never an
APDU: a malformed SO-PIN caught here is an SO try not spent on the token.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from hsm_lifecycle.protocol import FIRMWARE_UPDATES_WHILE_SO_BLOCKED, SO_PIN_LENGTH, USER_PIN_MAX, USER_PIN_MIN

if TYPE_CHECKING:
    from hsm_lifecycle.emulator import Profile as EmulatorProfile

DEFAULT_SO_FLOOR = 5
DEFAULT_EXAMPLES = 200  # the in-process emulator
DEFAULT_EXAMPLES_SLOW = 10  # a real token, vpcd or the emulator posing as a real token
DEFAULT_STEPS = 30
DEFAULT_APDU_TIMEOUT_S = 30.0  # far above any honest APDU (RSA key generation takes seconds)

TARGET_EMULATOR = "emulator"
TARGET_VPCD = "emulator:vpcd"
TARGET_PCSC_PREFIX = "pcsc:"


@dataclass(frozen=True)
class TargetSpec:
    """Where the suite points: the in-process emulator, the emulator behind pcscd+vpcd, or a
    PC/SC reader. `as_real` presents the in-process emulator as a real token (project-only):
    one persistent token per session, kind "pcsc", every interlock active."""

    kind: str  # "emulator" | "emulator:vpcd" | "pcsc"
    reader: str | None = None
    as_real: bool = False
    # Which token of a fleet this is (the xdist worker's index; conformance.fleet). A vpcd
    # emulator tries the slot-th vpcd port first, so gw0 gets the first reader when all are free.
    slot: int = 0

    @property
    def is_emulator(self) -> bool:
        return self.kind != "pcsc"

    @property
    def guarded(self) -> bool:
        """Whether the cost-class interlocks apply (a real token, or the emulator posing as one)."""
        return self.kind == "pcsc" or self.as_real

    def __str__(self) -> str:
        if self.as_real:
            return "emulator (presented as a real token)"
        if self.kind == "pcsc":
            return f"pcsc:{self.reader}" if self.reader else "pcsc"
        return f"{self.kind} ({self.reader})" if self.reader else self.kind


@dataclass(frozen=True)
class HsmOptions:
    target: TargetSpec
    serial: str | None
    allow_irreversible: bool
    allow_operator: bool
    so_pin: bytes | None  # 8 raw bytes
    pin: bytes | None  # the user PIN as the card stores it (ASCII bytes)
    so_floor: int
    evidence: str | None
    faults: tuple[str, ...]
    examples: int
    steps: int
    emulator_state: str | None = None  # the as-real token's state file (kept across runs, like a real token)
    emulator_profile: tuple[tuple[str, str], ...] = ()  # emulator.Profile fields to override
    readers: tuple[str, ...] = ()  # every --hsm-reader (or the pcsc:READER one): one token each
    serials: tuple[str, ...] = ()  # every --hsm-serial; in a fleet each token matches its own
    workers: int = 0  # pytest-xdist workers of this run (0: no xdist)
    trace_secrets: bool = False  # keep a real token's PINs in its traces (a lab's own token)
    apdu_timeout: float = DEFAULT_APDU_TIMEOUT_S  # seconds a device may take per exchange
    portal_socket: str | None = None  # the emulator's simulated portal, for a scripted operator
    power_rig: str | None = None  # a power-cut rig's socket (conformance.power_rig): R17 on a token
    persistent: bool = False  # emulator:vpcd keeps ONE token for the run, planned like a real one
    examples_given: bool = False  # --hsm-examples was given (the campaign plan leaves it alone)
    plan: bool = False  # print the campaign plan (after free reads only) and stop
    option_names: str = "pytest"  # whose option names reasons and plans use: pytest's or `hsm-lifecycle run`'s
    max_updates: int | None = None  # the campaign's firmware updates at most (None: as few as its checks need)
    updates_used: int | None = None  # SO-blocked updates the token already had, as its owner knows (no portal to ask)

    @property
    def fleet(self) -> bool:
        """One token per xdist worker (conformance.fleet): a PC/SC reader or a vpcd emulator
        each. The in-process emulator is not a fleet: its tests share out over the workers."""
        return self.workers > 0 and self.target.kind in ("pcsc", TARGET_VPCD)


def add_options(parser: Any) -> None:
    group = parser.getgroup("hsm", "SmartCard-HSM / Nitrokey HSM 2 conformance")
    group.addoption(
        "--hsm-suite",
        action="store_true",
        default=False,
        help="collect the installed conformance suite (as well as any paths given), e.g. from a lab's own folder",
    )
    group.addoption(
        "--hsm-target",
        default=TARGET_EMULATOR,
        metavar="TARGET",
        help="emulator (default, in-process, fresh token per test) | emulator:vpcd | pcsc:READER",
    )
    group.addoption(
        "--hsm-reader",
        action="append",
        default=[],
        metavar="READER",
        help="PC/SC reader name substring (same as pcsc:READER); repeat it for several tokens, "
        "one per xdist worker (-n N: gw0 takes the first reader, gw1 the second, ...)",
    )
    group.addoption(
        "--hsm-serial",
        action="append",
        default=[],
        metavar="SERIAL",
        help="the serial of the token you consent to wipe (as sc-hsm-tool / OpenSC show it); "
        "without it nothing of cost class 'wipes' or 'irreversible' runs on a real token; "
        "with several tokens (-n) repeat it: each token is matched against the list",
    )
    group.addoption(
        "--hsm-allow-irreversible",
        action="store_true",
        default=False,
        help="also run 'irreversible' tests (they block the SO-PIN; needs --hsm-serial)",
    )
    group.addoption(
        "--hsm-allow-operator",
        action="store_true",
        default=False,
        help="run 'operator' tests (firmware update in the portal; needs a terminal)",
    )
    group.addoption("--hsm-so-pin", default=None, metavar="HEX16", help="the token's SO-PIN: 16 hex digits (8 bytes)")
    group.addoption("--hsm-pin", default=None, metavar="PIN", help="the token's user PIN (6..16 characters)")
    group.addoption(
        "--hsm-so-floor",
        type=int,
        default=DEFAULT_SO_FLOOR,
        metavar="N",
        help=f"never let SO-PIN tries drop below N in 'tries' tests (default {DEFAULT_SO_FLOOR})",
    )
    group.addoption("--hsm-evidence", default=None, metavar="DIR", help="write the evidence bundle to DIR")
    group.addoption(
        "--hsm-trace-secrets",
        action="store_true",
        default=False,
        help="keep the PINs given with --hsm-pin / --hsm-so-pin in a real token's traces (masked by default)",
    )
    group.addoption(
        "--hsm-examples",
        type=int,
        default=None,
        metavar="N",
        help=f"hypothesis examples of the stateful test (default {DEFAULT_EXAMPLES} on the in-process emulator, "
        f"{DEFAULT_EXAMPLES_SLOW} elsewhere)",
    )
    group.addoption(
        "--hsm-apdu-timeout",
        default=None,
        metavar="SECONDS",
        help=f"fail an APDU the device has not answered after SECONDS (default {DEFAULT_APDU_TIMEOUT_S:g}), "
        "so a hung token or reader cannot hang the run",
    )
    group.addoption(
        "--hsm-plan",
        action="store_true",
        default=False,
        help="print the campaign plan (ordered checks, their cost, what will not run and why, estimated duration) "
        "after reading the token with free queries only, then stop",
    )
    group.addoption(
        "--hsm-portal",
        default=None,
        metavar="SOCKET",
        help="operator steps done by a scripted operator at the simulated portal of `hsm-lifecycle emulate --portal SOCKET` "
        "(a token served through pcscd), instead of a person at a terminal",
    )
    group.addoption(
        "--hsm-max-updates",
        type=int,
        default=None,
        metavar="N",
        help="with --hsm-allow-operator: the campaign makes at most N firmware updates (the plan says how many each check needs)",
    )
    group.addoption(
        "--hsm-updates-used",
        type=int,
        default=None,
        metavar="N",
        help="firmware updates this token already had because its SO-PIN was blocked (of 5), where no scripted portal "
        "tells the suite; without it the plan assumes none",
    )
    group.addoption(
        "--hsm-power-rig",
        default=None,
        metavar="SOCKET",
        help="a power-cut rig on this Unix socket (`hsm-lifecycle emulate --power-rig SOCKET`, or a lab's own rig "
        "speaking docs/power-rig.md) cuts the token's power in the middle of a PIN check, so R17 is judged on a token",
    )
    group.addoption(
        "--hsm-persistent",
        action="store_true",
        default=False,
        help="with --hsm-target emulator:vpcd: keep ONE emulated token for the whole run (never a fresh one), "
        "its portal steps done by a scripted operator, the campaign planned as on a real token",
    )
    # Set by `hsm-lifecycle run`: reasons and plans then name its options (--serial, not --hsm-serial).
    group.addoption("--hsm-option-names", default="pytest", choices=("pytest", "run"), help=argparse.SUPPRESS)
    group.addoption("--hsm-steps", type=int, default=DEFAULT_STEPS, metavar="N", help=argparse.SUPPRESS)
    # Project-only switches: they exist so the project's own tests can prove the checks bite.
    group.addoption("--hsm-emulator-fault", action="append", default=[], metavar="NAME", help=argparse.SUPPRESS)
    group.addoption("--hsm-emulator-as-real", action="store_true", default=False, help=argparse.SUPPRESS)
    group.addoption("--hsm-emulator-state", default=None, metavar="FILE", help=argparse.SUPPRESS)
    # An emulator that settles the open behaviours otherwise (field=value of emulator.Profile):
    # the suite must find them by observation, never by assumption.
    group.addoption("--hsm-emulator-profile", action="append", default=[], metavar="FIELD=VALUE", help=argparse.SUPPRESS)


def parse_target(text: str, reader: str | None, as_real: bool) -> TargetSpec:
    if text == TARGET_EMULATOR:
        if reader:
            raise ValueError("--hsm-reader only applies to a pcsc:READER target; drop it or use --hsm-target pcsc:READER.")
        return TargetSpec(TARGET_EMULATOR, None, as_real)
    if as_real:
        raise ValueError("--hsm-emulator-as-real only applies to --hsm-target emulator.")
    if text == TARGET_VPCD:
        return TargetSpec(TARGET_VPCD, reader)
    if text.startswith(TARGET_PCSC_PREFIX) or text == "pcsc":
        named = text[len(TARGET_PCSC_PREFIX) :] if text != "pcsc" else ""
        if named and reader and named != reader:
            raise ValueError(f"--hsm-target names reader {named!r} but --hsm-reader names {reader!r}; give one.")
        chosen = named or reader
        if not chosen:
            raise ValueError("--hsm-target pcsc needs a reader: use pcsc:READER (a substring of the reader name) or --hsm-reader.")
        return TargetSpec("pcsc", chosen)
    raise ValueError(f"unknown --hsm-target {text!r}: use emulator, emulator:vpcd or pcsc:READER.")


def parse_targets(text: str, readers: tuple[str, ...], as_real: bool) -> tuple[TargetSpec, tuple[str, ...]]:
    """The target and the readers of its tokens: one reader is one token (parse_target); several
    `--hsm-reader`s are several tokens of one kind, `--hsm-target pcsc` or `emulator:vpcd`."""
    if len(readers) <= 1:
        spec = parse_target(text, readers[0] if readers else None, as_real)
        return spec, ((spec.reader,) if spec.reader else ())
    if len(set(readers)) != len(readers):
        raise ValueError("--hsm-reader names the same reader twice: one token per reader, each named once.")
    if text not in ("pcsc", TARGET_VPCD):
        raise ValueError(
            f"several --hsm-reader values are several tokens: use --hsm-target pcsc (tokens in readers) or "
            f"emulator:vpcd (an emulator on each vpcd reader), not {text!r}."
        )
    return TargetSpec(text), readers


def xdist_workers(config: Any) -> int:
    """How many pytest-xdist workers this run has (0 without xdist), in the controller and in
    every worker (a worker's own numprocesses is reset by xdist)."""
    workerinput = getattr(config, "workerinput", None)
    if workerinput is not None:
        return int(workerinput.get("workercount", 0))
    count = getattr(config.option, "numprocesses", None)
    return int(count) if isinstance(count, int) and getattr(config.option, "dist", "no") != "no" else 0


def check_workers(options: HsmOptions) -> None:
    """One token per xdist worker, never one token for two workers (a device cannot be shared)."""
    target, n, readers = options.target, options.workers, options.readers
    if n and (target.as_real or options.emulator_state):
        raise ValueError(f"--hsm-target {target} is one device, which xdist workers cannot share: run without -n.")
    if target.kind not in ("pcsc", TARGET_VPCD):
        if len(options.serials) > 1:
            raise ValueError("--hsm-serial is given several times, but the emulator is no fleet of tokens: give it once.")
        return
    if not n and len(readers) > 1:
        raise ValueError(f"--hsm-reader names {len(readers)} tokens: run them with -n {len(readers)} (one xdist worker per token).")
    if n and target.kind == "pcsc" and len(readers) == 1 and n > 1:
        raise ValueError(
            f"--hsm-target {target} is one device, which {n} xdist workers cannot share: run without -n, "
            f"or name one reader per worker (--hsm-reader, {n} times)."
        )
    if n and readers and len(readers) != n:
        raise ValueError(f"--hsm-reader names {len(readers)} tokens but -n starts {n} workers: one worker per token, use -n {len(readers)}.")
    if not n and len(options.serials) > 1:
        raise ValueError(
            f"--hsm-serial is given {len(options.serials)} times, but this run drives one token: give only its serial "
            "(several serials are for several tokens, with -n)."
        )


def parse_so_pin(text: str) -> bytes:
    """16 hex digits -> the 8 bytes the card stores. The card never sees the text."""
    cleaned = text.strip()
    ok = len(cleaned) == 2 * SO_PIN_LENGTH and all(c in "0123456789abcdefABCDEF" for c in cleaned)
    if ok:
        return bytes.fromhex(cleaned)
    hint = ""
    if len(cleaned) == SO_PIN_LENGTH:
        hint = f" (if {cleaned!r} is what you typed as text, its hex form is {cleaned.encode().hex().upper()})"
    raise ValueError(
        f"--hsm-so-pin must be exactly 16 hex digits (8 bytes), got {len(cleaned)} characters{hint}; "
        "beware the ASCII-hex trap: the default 3537363231383830 is the hex of ASCII \"57621880\", "
        "and sending the 16 characters as text fails and spends an SO try."
    )


def parse_apdu_timeout(text: str | None) -> float:
    if text is None:
        return DEFAULT_APDU_TIMEOUT_S
    try:
        seconds = float(text)
    except ValueError:
        seconds = float("nan")
    if not (0 < seconds < float("inf")):  # also refuses nan
        raise ValueError(f"--hsm-apdu-timeout must be a positive number of seconds (e.g. {DEFAULT_APDU_TIMEOUT_S:g}), got {text!r}.")
    return seconds


def parse_user_pin(text: str) -> bytes:
    raw = text.encode("utf-8")
    if not USER_PIN_MIN <= len(raw) <= USER_PIN_MAX:
        raise ValueError(
            f"--hsm-pin must be {USER_PIN_MIN}..{USER_PIN_MAX} characters, got {len(raw)}; "
            "a PIN of the wrong length would be refused by the token anyway."
        )
    return raw


def from_config(config: Any) -> HsmOptions:
    """Reads and validates the options; raises ValueError with one sentence on a mistake."""
    opt = config.option
    target, readers = parse_targets(opt.hsm_target, tuple(opt.hsm_reader or ()), opt.hsm_emulator_as_real)
    serials = tuple(s.strip() for s in opt.hsm_serial or () if s.strip())
    workers = xdist_workers(config)
    faults = tuple(opt.hsm_emulator_fault)
    if faults and not target.is_emulator:
        raise ValueError("--hsm-emulator-fault only applies to an emulator target; a real token has no fault switches.")
    if opt.hsm_emulator_state and not target.as_real:
        raise ValueError("--hsm-emulator-state only applies with --hsm-emulator-as-real.")
    if opt.hsm_so_floor < 1:
        raise ValueError("--hsm-so-floor must be at least 1: at 0 SO tries the SO-PIN is blocked for good.")
    examples = opt.hsm_examples
    if examples is None:
        examples = DEFAULT_EXAMPLES if target.kind == TARGET_EMULATOR and not target.as_real else DEFAULT_EXAMPLES_SLOW
    if examples < 1 or opt.hsm_steps < 1:
        raise ValueError("--hsm-examples and --hsm-steps must be at least 1.")
    max_updates, updates_used = getattr(opt, "hsm_max_updates", None), getattr(opt, "hsm_updates_used", None)
    if max_updates is not None and max_updates < 0:
        raise ValueError("--hsm-max-updates must be 0 or more.")
    if updates_used is not None and not 0 <= updates_used <= FIRMWARE_UPDATES_WHILE_SO_BLOCKED:
        raise ValueError(f"--hsm-updates-used must be 0..{FIRMWARE_UPDATES_WHILE_SO_BLOCKED}: a token gets 5 updates for a blocked SO-PIN.")
    options = HsmOptions(
        target=target,
        serial=None,  # below: one token's serial; a fleet matches each token against `serials`
        allow_irreversible=bool(opt.hsm_allow_irreversible),
        allow_operator=bool(opt.hsm_allow_operator),
        so_pin=parse_so_pin(opt.hsm_so_pin) if opt.hsm_so_pin is not None else None,
        pin=parse_user_pin(opt.hsm_pin) if opt.hsm_pin is not None else None,
        so_floor=opt.hsm_so_floor,
        evidence=opt.hsm_evidence,
        faults=faults,
        examples=examples,
        steps=opt.hsm_steps,
        emulator_state=opt.hsm_emulator_state,
        emulator_profile=parse_profile_overrides(opt.hsm_emulator_profile, target),
        trace_secrets=bool(opt.hsm_trace_secrets),
        apdu_timeout=parse_apdu_timeout(getattr(opt, "hsm_apdu_timeout", None)),
        plan=bool(getattr(opt, "hsm_plan", False)),
        portal_socket=getattr(opt, "hsm_portal", None),
        power_rig=getattr(opt, "hsm_power_rig", None),
        persistent=bool(getattr(opt, "hsm_persistent", False)),
        examples_given=opt.hsm_examples is not None,
        max_updates=max_updates,
        updates_used=updates_used,
        option_names=str(getattr(opt, "hsm_option_names", "pytest")),
        readers=readers,
        serials=serials,
        workers=workers,
    )
    if options.power_rig and target.kind == TARGET_EMULATOR:
        raise ValueError("--hsm-power-rig needs a token served through PC/SC (pcsc:READER); the in-process emulator "
                         "cuts power with its own tear hook.")
    if options.power_rig and target.kind == TARGET_VPCD:
        raise ValueError("--hsm-power-rig is for a token you serve yourself (pcsc:READER); emulator:vpcd starts its "
                         "emulator with a power-cut rig of its own.")
    if options.persistent and target.kind != TARGET_VPCD:
        raise ValueError("--hsm-persistent only applies to --hsm-target emulator:vpcd (a real token is always persistent).")
    check_workers(options)
    if options.power_rig and options.fleet:
        raise ValueError("--hsm-power-rig cuts the power of one token: run a fleet of tokens without it, or one token with it.")
    if serials and not options.fleet:
        options = replace(options, serial=serials[0])
    return options


def parse_profile_overrides(items: list[str], target: TargetSpec) -> tuple[tuple[str, str], ...]:
    if items and not target.is_emulator:
        raise ValueError("--hsm-emulator-profile only applies to an emulator target.")
    pairs = []
    for item in items:
        name, eq, value = item.partition("=")
        if not eq or not name.strip():
            raise ValueError(f"--hsm-emulator-profile takes FIELD=VALUE (a field of emulator.Profile), got {item!r}.")
        pairs.append((name.strip(), value.strip()))
    return tuple(pairs)


def emulator_profile(overrides: tuple[tuple[str, str], ...]) -> EmulatorProfile:
    """The emulator.Profile with the overrides applied (bools as true/false)."""
    from hsm_lifecycle.emulator import Profile

    fields: dict[str, object] = {}
    for name, value in overrides:
        if name not in Profile.__dataclass_fields__:
            raise ValueError(f"--hsm-emulator-profile: emulator.Profile has no field {name!r}.")
        fields[name] = {"true": True, "false": False}.get(value.lower(), value)
    try:
        if "model" in fields and "version" not in fields:
            return Profile.for_model(str(fields.pop("model")), **fields)  # at the model's applet version
        return Profile(**fields)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"--hsm-emulator-profile: {exc}.") from None
