"""The campaign on a persistent token, conformance side: from the collected tests, the token's
start state (free reads only) and the user's consent to `model.plan`'s walk, and back.

* `check_specs` turns collected tests into `CheckSpec`s: rule and cost markers, the `walk`
  marker (where a test starts and leaves the token, the firmware updates it makes) and the
  cost of each test measured on the emulator (data/check-costs.json, made by
  `python -m bench.check_costs`).
* `read_start` reads the token as `doctor` does (conformance.doctor.read_token: a guard lets
  only free APDUs through) and takes the model state the reading names.
* `LatencyTable` prices commands on a Nitrokey HSM 2 (data/latency-nitrokey-hsm2.json,
  docs/latency.md) for the duration estimate.
* `render` words the plan for a person, with the options of the command they ran.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from hsm_lifecycle.conformance.evidence.bundle import PLAN_NAME
from hsm_lifecycle.model.commands import Command
from hsm_lifecycle.model.plan import (
    NEED_IRREVERSIBLE,
    NEED_MORE_UPDATES,
    NEED_OPERATOR,
    NEED_PIN,
    NEED_POWER_RIG,
    NEED_SERIAL,
    NEED_SO_PIN,
    RENEWAL,
    START_STATES,
    UPDATE_BUDGET,
    CheckSpec,
    Plan,
    PlanConsent,
    Pricing,
)
from hsm_lifecycle.model.states import ExtState
from hsm_lifecycle.protocol import Ins

DATA = Path(__file__).resolve().parent / "data"
COSTS_EXAMPLES = 10  # stateful examples the costs file was measured with (a real token's default)
APDU_BUDGET = 1500  # a campaign on a token: the stateful test's examples are fitted to it
LATENCY_FILE = DATA / "latency-nitrokey-hsm2.json"
COSTS_FILE = DATA / "check-costs.json"

WALK_MARKER = "walk"
POWER_RIG_MARKER = "needs_power_rig"
NEED_EXAMPLES = "examples"
COUNTS_LEFT = "left"
WALK_MARKER_HELP = (
    "walk(start=..., leaves=..., updates=N, counted=N|'left', presents=..., decides=(check ids)): on a persistent token, "
    f"where the test can start ({', '.join(START_STATES)}), the lifecycle state it leaves the token in, the firmware "
    "updates it makes (and how many of them only a blocked SO-PIN admits; 'left': as many as the token has left of its 5, "
    "on top of `updates`), the token's PINs it presents ('pin', 'so-pin'; default: what its cost class needs) and the "
    "checks (model.checks) it decides (default: those it decided on the emulator, data/check-costs.json); "
    "examples=True: its APDUs scale with the stateful examples"
)
POWER_RIG_MARKER_HELP = "needs_power_rig: on a persistent token the test cuts the token's power: it runs only with a power rig"

# How the options that would allow a check are named, per command the user ran.
OPTION_WORDS: dict[str, dict[str, str]] = {
    "pytest": {
        NEED_SERIAL: "--hsm-serial SERIAL",
        NEED_IRREVERSIBLE: "--hsm-allow-irreversible",
        NEED_OPERATOR: "--hsm-allow-operator",
        NEED_PIN: "--hsm-pin PIN",
        NEED_SO_PIN: "--hsm-so-pin HEX16",
        NEED_EXAMPLES: "--hsm-examples N",
        NEED_MORE_UPDATES: "--hsm-max-updates N",
        NEED_POWER_RIG: "--hsm-power-rig SOCKET",
    },
    "run": {
        NEED_SERIAL: "--serial S",
        NEED_IRREVERSIBLE: "--allow-irreversible",
        NEED_OPERATOR: "--allow-operator",
        NEED_PIN: "--pin Y",
        NEED_SO_PIN: "--so-pin X",
        NEED_EXAMPLES: "pytest's --hsm-examples N",
        NEED_MORE_UPDATES: "--max-updates N",
        NEED_POWER_RIG: "--power-rig SOCKET",
    },
}

# The command APDUs the mapper sends for each abstract command (conformance.mapper).
COMMAND_INS: dict[str, tuple[tuple[int, bool], ...]] = {  # (INS, carries a PIN/data)
    "select": ((Ins.SELECT, True),),
    "power_cycle": ((Ins.SELECT, True),),
    "query_user": ((Ins.VERIFY, False),),
    "query_so": ((Ins.VERIFY, False),),
    "verify_user": ((Ins.VERIFY, True),),
    "initialize": ((Ins.INITIALIZE_DEVICE, True),),
    "reset_retry_counter": ((Ins.RESET_RETRY_COUNTER, True),),
    "change_user_pin": ((Ins.CHANGE_REFERENCE_DATA, True),),
    "change_so_pin": ((Ins.CHANGE_REFERENCE_DATA, True),),
    "generate_key": ((Ins.GENERATE_ASYMMETRIC_KEY_PAIR, True),),
    "sign": ((Ins.SIGN, True),),
    "delete_key": ((Ins.DELETE_FILE, True),),
    "firmware_update": (),
    "portal_login": ((Ins.VERIFY, True),),
}


# ---------------------------------------------------------------------------------------------
# Prices


@dataclass(frozen=True)
class LatencyTable:
    """Milliseconds per command APDU on the reference token, by INS (estimates unless sourced)."""

    per_ins_ms: Mapping[int, float]
    query_ms: float
    default_ms: float
    update_s: float
    sources: Mapping[int, str]

    @classmethod
    def load(cls, path: Path = LATENCY_FILE) -> LatencyTable:
        raw = json.loads(path.read_text(encoding="utf-8"))
        per_ins = {int(k, 16): float(v["ms"]) for k, v in raw["per_ins"].items()}
        sources = {int(k, 16): str(v.get("source", "estimate")) for k, v in raw["per_ins"].items()}
        query = float(raw["per_ins"]["20"].get("status_query_ms", per_ins[Ins.VERIFY]))
        return cls(per_ins, query, float(raw["default_ms"]), float(raw["operator_update_s"]["s"]), sources)

    def ms(self, ins: int, with_data: bool = True) -> float:
        if ins == Ins.VERIFY and not with_data:
            return self.query_ms
        return self.per_ins_ms.get(ins, self.default_ms)

    def command(self, cmd: Command) -> tuple[int, float]:
        sent = COMMAND_INS.get(cmd.name, ())
        return len(sent), sum(self.ms(ins, data) for ins, data in sent) / 1000.0

    def pricing(self) -> Pricing:
        return Pricing(command=self.command, renewal_seconds=self.update_s)

    @property
    def all_estimates(self) -> bool:
        return all(s == "estimate" for s in self.sources.values())


@dataclass(frozen=True)
class CheckCost:
    """What one test spent on the emulator (fresh token): APDUs by INS, tries."""

    apdus: int
    user_tries: int
    so_tries: int
    ins: Mapping[str, int]  # "A4" -> count; "20q" counts status queries (VERIFY without data)
    checks: tuple[str, ...] | None = None  # the checks it decided (None: not measured)

    def seconds(self, latency: LatencyTable) -> float:
        total = 0.0
        for key, n in self.ins.items():
            query = key.endswith("q")
            total += n * latency.ms(int(key.rstrip("q"), 16), with_data=not query)
        # A hypothesis test keeps the trace of its last example only: scale it to all its APDUs.
        traced = sum(self.ins.values())
        return total / 1000.0 * (self.apdus / traced if traced and self.apdus > traced else 1.0)


def load_costs(path: Path = COSTS_FILE) -> dict[str, CheckCost]:
    """Costs by test function name; empty if the file was never made."""
    if not path.exists():
        return {}
    raw = json.loads(path.read_text(encoding="utf-8"))
    return {
        name: CheckCost(int(c["apdus"]), int(c["user_tries"]), int(c["so_tries"]), dict(c["ins"]),
                        tuple(c["checks"]) if "checks" in c else None)
        for name, c in raw["tests"].items()
    }  # fmt: skip


def ins_histogram(trace_lines: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """Command APDUs of a trace counted by INS (status queries apart): what the costs file holds."""
    counts: dict[str, int] = {}
    for line in trace_lines:
        cmd = str(line.get("cmd", ""))
        if len(cmd) < 8:
            continue  # an event (power cut, new token, firmware install), not an APDU
        raw = bytes.fromhex(cmd)
        key = f"{raw[1]:02X}" + ("q" if raw[1] == Ins.VERIFY and len(raw) <= 5 else "")
        counts[key] = counts.get(key, 0) + 1
    return dict(sorted(counts.items()))


# ---------------------------------------------------------------------------------------------
# From collected tests


def test_name(nodeid: str) -> str:
    return nodeid.split("::")[-1].split("[")[0]


def check_spec(nodeid: str, rules: tuple[str, ...], cost: str, walk: Mapping[str, Any], costs: Mapping[str, CheckCost],
               latency: LatencyTable, needs: frozenset[str] = frozenset()) -> CheckSpec:  # fmt: skip
    from hsm_lifecycle.model.checks import unknown_check

    start = str(walk.get("start", ""))
    if start and start not in START_STATES:
        raise ValueError(f"{nodeid}: walk(start={start!r}) is none of {', '.join(START_STATES)}")
    measured = costs.get(test_name(nodeid))
    counted = walk.get("counted", 0)
    if counted != COUNTS_LEFT and not isinstance(counted, int):
        raise ValueError(f"{nodeid}: walk(counted={counted!r}) is neither a number nor {COUNTS_LEFT!r}")
    decides = walk.get("decides", measured.checks if measured else None)
    if decides is not None:
        wrong = [why for c in decides if (why := unknown_check(c))]
        if wrong:
            raise ValueError(f"{nodeid}: walk(decides=...): {'; '.join(wrong)}")
    presents = walk.get("presents")
    presents = (presents,) if isinstance(presents, str) else presents
    unknown = set(presents or ()) - {NEED_PIN, NEED_SO_PIN}
    if unknown:
        raise ValueError(f"{nodeid}: walk(presents=...) names {sorted(unknown)}; use {NEED_PIN!r} and/or {NEED_SO_PIN!r}")
    return CheckSpec(
        id=nodeid,
        rules=rules,
        cost=cost,
        start=start,
        leaves=walk.get("leaves"),
        updates=int(walk.get("updates", 0)),
        counted=0 if counted == COUNTS_LEFT else int(counted),
        counts_left=counted == COUNTS_LEFT,
        apdus=measured.apdus if measured else 0,
        # The person at the portal takes far longer than the APDUs around each update.
        # (A test that makes the updates a token has left was measured on a fresh token: all 5.)
        seconds=round((measured.seconds(latency) if measured else 0.0)
                      + (int(walk.get("updates", 0)) + (UPDATE_BUDGET if counted == COUNTS_LEFT else 0)) * latency.update_s, 3),
        user_tries=measured.user_tries if measured else 0,
        so_tries=measured.so_tries if measured else 0,
        presents=None if presents is None else frozenset(presents),
        decides=None if decides is None else frozenset(decides),
        needs=needs,
    )


def walk_marker(item: Any) -> dict[str, Any]:
    mark = item.get_closest_marker(WALK_MARKER)
    return dict(mark.kwargs) if mark is not None else {}


# ---------------------------------------------------------------------------------------------
# The token's start state, read for free


def read_start(transport: Any) -> tuple[ExtState, str | None]:
    """The model state a token is in, and its serial, from free reads only (doctor's reader:
    no PIN is presented, no counter moves). Where the reading leaves a choice (shipped or after
    an update; how many SO-blocked updates it had) the plainest reading is taken."""
    from hsm_lifecycle.conformance.doctor import candidates, read_token

    reading = read_token(transport)
    state = candidates(reading)[0].state
    return state, reading.identity.serial if reading.identity else None


def plan_consent(options: Any, serial_confirmed: bool, guarded: bool, power_rig: bool = False) -> PlanConsent:
    return PlanConsent(
        serial=serial_confirmed,
        irreversible=bool(options.allow_irreversible),
        operator=bool(options.allow_operator),
        user_pin=options.pin is not None,
        so_pin=options.so_pin is not None,
        guarded=guarded,
        max_updates=getattr(options, "max_updates", None),
        capabilities=frozenset({NEED_POWER_RIG}) if power_rig else frozenset(),
    )


def has_power_rig(target: Any, options: Any) -> bool:
    """Whether the bench can cut the token's power mid-command: the emulator in this process can,
    a token in a reader only with a power rig (the rig's option, or emulator:vpcd's own rig)."""
    return target.emulated_token() is not None or target.power_rig() is not None


@dataclass(frozen=True)
class UpdateHistory:
    used: int  # SO-blocked firmware updates the token already had (R13: 5 per token)
    source: str  # where the figure comes from


def update_history(options: Any) -> UpdateHistory:
    """How many of its 5 SO-blocked updates the token has used: the simulated portal says it (a
    free query, nothing changes); for a real token the owner may say it (no public source says
    the real portal shows the count); otherwise none is assumed, which is what a token out of
    the box has."""
    if options.portal_socket:
        from hsm_lifecycle.emulator.portal_service import ask_portal, parse_updates_used

        try:
            used = parse_updates_used(ask_portal(Path(options.portal_socket), "updates"))
        except OSError as exc:
            return UpdateHistory(0, f"assumed: the portal on {options.portal_socket} did not answer ({exc})")
        if used is not None:
            return UpdateHistory(used, "as the portal shows it")
    if getattr(options, "updates_used", None) is not None:
        return UpdateHistory(int(options.updates_used), "as given by the owner")
    return UpdateHistory(0, "assumed: nothing says otherwise; --updates-used N gives the token's count")


def with_update_history(state: ExtState, used: int) -> ExtState:
    """The read start state with the token's SO-blocked update count (each update gave it a new
    identity, so it has had at least as many)."""
    from dataclasses import replace

    return replace(state, so_blocked_updates=used, identity=max(state.identity, used))


# ---------------------------------------------------------------------------------------------
# For a person


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.1f} min"


def short(nodeid: str) -> str:
    """A node id without its folder: the file and the test say enough."""
    return nodeid.rsplit("/", 1)[-1]


def render(plan: Plan, words: str = "pytest", latency: LatencyTable | None = None, target: str = "", fresh_each: bool = False) -> str:
    """The plan as text: segments, ordered checks with their costs, what will not run and why."""
    names = OPTION_WORDS[words]
    out = [f"Campaign plan{' for ' + target if target else ''}: the token reads as {plan.start}"]
    if fresh_each:
        out[0] = f"Campaign plan{' for ' + target if target else ''}: every check on a fresh emulated token (shipped)"
    if plan.assumed:
        out.append(f"  (not yet observed, assumed as the emulator does for this estimate: {', '.join(plan.assumed)})")
    n = 0
    for seg in plan.segments:
        out.append(f"Segment {seg.index} (starts {seg.starts_in}):")
        for step in seg.steps:
            if step.check == RENEWAL:
                out.append(f"  --  {RENEWAL}: a person at the portal; leaves the token {step.leaves}")
                continue
            n += 1
            costs = [f"{step.apdus} APDUs"]
            if step.user_tries:
                costs.append(f"user tries {step.user_tries} spent+restored" if step.leaves != "user-blocked" else f"user tries {step.user_tries} spent")
            if step.so_tries:
                costs.append(f"SO tries {step.so_tries} spent" + ("" if step.so_blocks else "+restored"))
            for what, label in ((step.wipes, "wipe"), (step.so_blocks, "SO-PIN block"), (step.firmware_updates, "firmware update")):
                if what:
                    costs.append(f"{what} {label}{'s' if what > 1 else ''}")
            costs.append(f"~{_duration(step.seconds)}")
            rules = " ".join(step.rules) or "-"
            out.append(f"  {n:>2}. [{step.cost}] {short(step.check)}  ({rules})")
            way = ", ".join(step.way_in) if step.way_in else "already there"
            out.append(f"      way in ({step.way_in_cost}): {way}; leaves {step.leaves}; cost: {', '.join(costs)}")
    if plan.not_run:
        out.append("Will not run:")
        for miss in plan.not_run:
            allow = " — would run with " + " ".join(names[m] for m in miss.allowed_by) if miss.allowed_by else ""
            out.append(f"  - {short(miss.check)} ({' '.join(miss.rules) or '-'}): {miss.why}{allow}")
    placed = [c for c in plan.checks if c.test is not None]
    if plan.checks:
        out.append(f"Checks placed: {len(placed)} of {len(plan.checks)}")
        groups: dict[tuple[str, tuple[str, ...]], list[str]] = {}
        for miss in plan.unplaced:  # one line per reason: the checks a test that does not run decides
            groups.setdefault((miss.why, miss.allowed_by), []).append(miss.check)
        for (why, allowed_by), ids in groups.items():
            allow = " — would run with " + " ".join(names[m] for m in allowed_by) if allowed_by else ""
            out.append(f"  - {', '.join(ids)}: {why}{allow}")
    updates = plan.firmware_updates
    est = "estimates (no public per-command figure)" if latency is None or latency.all_estimates else "partly sourced"
    out.append(
        f"Totals: {len(plan.order)} tests, {int(plan.total('apdus'))} APDUs, "
        f"user tries {int(plan.total('user_tries'))}, SO tries {int(plan.total('so_tries'))}, "
        f"{int(plan.total('wipes'))} wipes, {int(plan.total('so_blocks'))} SO-PIN blocks, {updates} firmware updates; "
        f"rules planned {len(plan.rules_planned)}"
    )
    out.append(f"Estimated duration on a Nitrokey HSM 2: ~{_duration(plan.total('seconds'))} (per-command latencies: {est}, docs/latency.md)")
    return "\n".join(out)



# ---------------------------------------------------------------------------------------------
# In the pytest session (conformance.plugin calls these)

PLAN_FILE = PLAN_NAME  # in the bundle; summary.json carries it too


@dataclass(frozen=True)
class SessionPlan:
    plan: Plan
    text: str
    serial: str | None
    specs: Mapping[str, CheckSpec]  # by node id
    examples: int | None = None  # stateful examples fitted to the APDU budget (None: as given)
    updates_used: int = 0  # SO-blocked firmware updates the token had before the campaign


def fit_examples(plan: Plan, specs: list[CheckSpec], scaled: set[str], examples: int) -> int:
    """The stateful examples that keep the planned campaign within APDU_BUDGET (at least 1, at
    most `examples`): what the other checks leave, shared out at the measured cost per example."""
    planned = set(plan.order)
    per_example = {s.id: s.apdus / COSTS_EXAMPLES for s in specs if s.id in scaled and s.id in planned}
    if not per_example:
        return examples
    rest = sum(s.apdus for s in plan.steps if s.check not in per_example)
    room = APDU_BUDGET - rest
    return max(1, min(examples, int(room // max(1.0, sum(per_example.values())))))


def _scale(spec: CheckSpec, examples: int) -> CheckSpec:
    from dataclasses import replace

    factor = examples / COSTS_EXAMPLES
    return replace(spec, apdus=round(spec.apdus * factor), seconds=round(spec.seconds * factor, 3),
                   user_tries=round(spec.user_tries * factor), so_tries=round(spec.so_tries * factor))  # fmt: skip


def plan_for_session(target: Any, options: Any, consent: Any, items: Iterable[Any], words: str,
                     recorder: Any = None) -> SessionPlan:  # fmt: skip
    """Read the target's start state (free), then plan the collected tests on it. The target is
    opened but not prepared: nothing that costs anything has been sent when this returns. With a
    `recorder` the reads are traced (the session set-up trace)."""
    from hsm_lifecycle.conformance.plugin import marked_cost, marked_rules
    from hsm_lifecycle.model.profiles import SMARTCARD_HSM

    latency = LatencyTable.load()
    costs = load_costs()
    specs, scaled = [], set()
    for item in items:
        cost = marked_cost(item)
        walk = walk_marker(item)
        needs = frozenset({NEED_POWER_RIG}) if item.get_closest_marker(POWER_RIG_MARKER) is not None else frozenset()
        specs.append(check_spec(item.nodeid, marked_rules(item), (cost.value if cost else "free"), walk, costs, latency, needs))
        if walk.get("examples"):
            scaled.add(item.nodeid)
    if target.persistent:
        transport = target.raw_transport()
        if recorder is not None:
            from hsm_lifecycle.conformance.trace import TracingTransport

            recorder.context("read the start state for the plan (free)", "")
            transport = TracingTransport(transport, recorder)
        start, serial = read_start(transport)
        history = update_history(options)
        start = with_update_history(start, history.used)
    else:
        start, serial = ExtState.shipped(), None  # a fresh emulated token for every test
        history = UpdateHistory(0, "a fresh emulated token")
    given = getattr(consent, "serial", None)
    confirmed = bool(given and serial and given.strip().upper() == serial.strip().upper())
    if getattr(consent, "listed", None) and serial is not None:  # a fleet token: its serial among --hsm-serial
        consent.confirm_serial(serial)
        given, confirmed = None, bool(consent.serial_confirmed)
    plan_consent_ = plan_consent(options, confirmed, guarded=bool(consent.guarded), power_rig=has_power_rig(target, options))
    from hsm_lifecycle.model.plan import plan_campaign, plan_fresh_each

    profile = target.profile or SMARTCARD_HSM
    examples = None
    if target.persistent:
        plan = plan_campaign(start, specs, plan_consent_, profile, latency.pricing())
        if scaled:
            examples = options.examples if options.examples_given else fit_examples(plan, specs, scaled, options.examples)
            specs = [_scale(s, examples) if s.id in scaled else s for s in specs]
            plan = plan_campaign(start, specs, plan_consent_, profile, latency.pricing())
    else:
        plan = plan_fresh_each(specs, profile, latency.pricing())
    label = str(options.target) + (f", serial {serial}" if serial else "")
    text = render(plan, words, latency, label, fresh_each=not target.persistent)
    if target.persistent and options.allow_operator:
        text += f"\nSO-blocked firmware updates already used: {history.used} of {UPDATE_BUDGET} ({history.source})."
    if given and serial and not confirmed:
        flag = OPTION_WORDS[words][NEED_SERIAL].split()[0]
        text += f"\nNOTE: {flag} {given} does not match this token's serial {serial}: the run would stop before its first APDU."
    if examples is not None and not options.examples_given and examples < options.examples:
        text += (f"\nThe stateful test runs {examples} examples (not {options.examples}) to keep the campaign within "
                 f"{APDU_BUDGET} APDUs; {OPTION_WORDS[words][NEED_EXAMPLES]} sets them.")
    return SessionPlan(plan, text, serial, {s.id: s for s in specs}, examples, history.used)


def order_items(items: list[Any], plan: Plan) -> None:
    """Put the planned tests in the plan's order, the rest after them (pytest skips those)."""
    rank = {nodeid: i for i, nodeid in enumerate(plan.order)}
    items.sort(key=lambda item: rank.get(item.nodeid, len(rank)))


def write_plan(directory: Path, plan: Plan) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / PLAN_FILE
    path.write_text(json.dumps(plan.to_dict(), indent=1), encoding="utf-8")
    return path


# ---------------------------------------------------------------------------------------------
# Following the plan during the run (persistent targets)


def plans_the_walk(options: Any, fleet_worker: bool = False) -> bool:
    """Whether the session's target is one token for the whole run that cannot be swapped for a
    fresh one: a real token, the emulator posing as one, or a vpcd emulator kept persistent. In a
    fleet each worker plans its own token from that token's start state (the controller has none)."""
    spec = options.target
    if options.fleet and not fleet_worker:
        return False
    return spec.kind == "pcsc" or spec.as_real or (spec.kind == "emulator:vpcd" and bool(getattr(options, "persistent", False)))


def skip_reason(miss: Any, words: str) -> str:
    allow = " — would run with " + " ".join(OPTION_WORDS[words][m] for m in miss.allowed_by) if miss.allowed_by else ""
    return f"campaign plan: {miss.why}{allow}"


@dataclass
class Walker:
    """The plan in force: before each test the token's counters are read again (free), a change
    the suite did not make is recorded (the device forced a change of plan), open behaviours the
    walk had to leave unobserved while the token was uninitialized are observed, and the token
    is brought into the test's start state along the model's cheapest way."""

    planned: SessionPlan
    specs: Mapping[str, CheckSpec]
    observation_pending: bool = False
    changes: list[dict[str, str]] = field(default_factory=list)
    history_known: bool = False  # the twin carries the token's SO-blocked update count

    def before_test(self, nodeid: str, device: Any) -> None:
        spec = self.specs.get(nodeid)
        if not self.history_known:  # free reads cannot tell it: the plan's start state does
            self.history_known = True
            device.state = with_update_history(device.state, self.planned.updates_used)
            device.target.twin = device.state
        self.reread(device, nodeid)
        if spec is None:
            return
        if self.observation_pending and not spec.needs_uninitialized:
            self.observation_pending = False
            observe_now(device)
            self.reread(device, nodeid)
        walk_in(device, spec)

    def reread(self, device: Any, nodeid: str) -> None:
        """The counters, the key count and whether the token is initialized, asked of it (free
        queries); where they differ from the model twin the token's answer wins."""
        read = read_counters(device)
        believed = device.state
        if read == believed:
            return
        self.changes.append({"before": nodeid, "believed": str(believed), "read": str(read)})
        device.state = read
        device.target.twin = read

    def finish(self, directory: Path | None) -> dict[str, Any]:
        doc = self.planned.plan.to_dict()
        doc["changed_by_device"] = bool(self.changes)
        doc["changes"] = list(self.changes)  # the diff: what the device answered that the plan did not expect
        doc["updates_used_before"] = self.planned.updates_used
        if directory is not None:
            directory.mkdir(parents=True, exist_ok=True)
            (directory / PLAN_FILE).write_text(json.dumps(doc, indent=1), encoding="utf-8")
        return doc


def read_counters(device: Any) -> ExtState:
    """The extended state as far as free queries tell it, the rest (user maximum, identity,
    session) carried over from the twin."""
    from hsm_lifecycle.conformance.mapper import apdu
    from hsm_lifecycle.protocol import CLA_ISO, PIN_SO, PIN_USER, SW, USER_PIN_TRIES_DEFAULT, USER_PIN_TRIES_MAX, tries_from_sw

    mapper, twin = device.mapper, device.state
    device.recorder.context("re-read counters (free)", twin.abstract, ())
    so_sw = mapper.send(apdu(CLA_ISO, Ins.VERIFY, 0x00, PIN_SO)).sw
    if so_sw == SW.REFERENCED_DATA_NOT_FOUND:
        if not twin.is_initialized:
            return twin
        return ExtState(identity=twin.identity + 1, so_blocked_updates=twin.so_blocked_updates)
    so = 0 if so_sw == SW.AUTH_METHOD_BLOCKED else tries_from_sw(so_sw)
    user_sw = mapper.send(apdu(CLA_ISO, Ins.VERIFY, 0x00, PIN_USER)).sw
    keys = mapper.key_ids()
    transport = user_sw == SW.REFERENCE_DATA_NOT_USABLE
    user = 0 if user_sw == SW.AUTH_METHOD_BLOCKED else tries_from_sw(user_sw)
    authenticated = user_sw == SW.OK
    if so is None:
        return twin  # an answer the counters cannot be read from: the step that follows judges it
    user = None if user is None else min(user, USER_PIN_TRIES_MAX)
    base = twin if twin.is_initialized else ExtState.initialized(identity=twin.identity, user_max=max(user or 0, USER_PIN_TRIES_DEFAULT))
    user_max = max(base.user_max, user or 0)
    return base.but(
        so_tries=so,
        user_tries=base.user_tries if user is None else user,
        user_max=user_max,
        transport=transport,
        keys=base.keys if keys is None else len(keys),
        authenticated=authenticated and base.authenticated,
    )


def walk_in(device: Any, spec: CheckSpec) -> None:
    """Bring the token into a state the check can start from, along the model's cheapest way
    within the consent (never an irreversible or operator step: those are checks of their own)."""
    import pytest

    from hsm_lifecycle.model.cost import CostClass
    from hsm_lifecycle.model.plan import planning_profile, way_in

    if device.state.abstract in spec.starts:
        return
    consent = device.target.consent
    ceiling = CostClass.WIPES if not consent.guarded else min(consent.ceiling(), CostClass.WIPES)
    profile, _ = planning_profile(device.profile)
    way = way_in(device.state, spec.starts, profile, ceiling.value)
    if way is None:
        pytest.skip(f"campaign plan: the token is {device.state.abstract} and this test starts in "
                    f"{'/'.join(sorted(spec.starts))}; the model knows no way there within the consent given")  # fmt: skip
    device.setup = True
    try:
        for cmd in way.commands:
            device.step(cmd)
    finally:
        device.setup = False


def observe_now(device: Any) -> None:
    """The open behaviours the session left unobserved to keep the token uninitialized for the
    checks that needed it, observed now within the same consent as at the start."""
    from hsm_lifecycle.model.cost import CostClass
    from hsm_lifecycle.conformance.observe import Probe, observe

    target, consent = device.target, device.target.consent
    pin_known = not consent.guarded or target.options.pin is not None
    so_pin_known = not consent.guarded or target.options.so_pin is not None
    may_wipe = not consent.guarded or (consent.ceiling() >= CostClass.WIPES and (so_pin_known or not device.state.is_initialized))
    probe = Probe(device.mapper, device.recorder)
    observations, state = observe(
        probe,
        device.state,
        may_wipe=may_wipe,
        so_floor=consent.so_floor if consent.guarded else None,
        user_pin_known=pin_known,
        so_pin_known=so_pin_known,
    )
    target.observations.update(observations.seen)
    target.unknown_behaviours.update(observations.notes)
    target.profile = observations.profile(base=target.profile) if target.profile else observations.profile()
    device.profile = target.profile
    device.state = state
