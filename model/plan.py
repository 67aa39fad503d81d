"""A campaign on ONE persistent token: every check ordered as a single walk through the model.

A real token only moves forward: once its SO-PIN is blocked only a firmware update (a person at
the portal, at most 5 in a token's life) brings a working SO-PIN back. So the order matters, and
it is planned here, from the model, before anything is sent:

* checks that need an uninitialized token first, while the token is still uninitialized
  (those that leave it so before the one that initializes it);
* then free, tries and wipes checks; then operator checks that need a person but no update;
  then the checks that renew the token themselves (their firmware update ends a segment);
  the checks that block the SO-PIN last, so nothing that needs a working SO-PIN comes after;
* with the operator's consent, a firmware update renews a token nothing more can run on, but
  only while some rule still has no planned check: as few updates as possible, within budget.

Each step names its way in: the command sequence the model says is cheapest (lowest cost
class, then shortest) from where the previous step left the token to a state the check can
start from. What cannot run says why and which consent or credential would allow it.

The unit placed is the check of model.checks: each test run says which checks it decides, the
plan lists every check with the first test run that decides it (and what that run needs), or
why none does. Of the test runs that make firmware updates, the set that decides the most checks
within the user's bound, then with the fewest updates, is kept (R13's run makes only the
SO-blocked updates the token has left and decides R12/R14/R15's update checks on them). A bench
capability (a power rig) is data like consent: a run that needs one is placed only with it.
The planner is pure model: the conformance side reads the token and the collected tests into
`CheckSpec`s and `PlanConsent`, and prices commands (`Pricing`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from functools import lru_cache
from typing import Any, Callable, Iterable

from hsm_lifecycle.model.cost import FREE, IRREVERSIBLE, OPERATOR, TRIES, WIPES, cost_rank
from hsm_lifecycle.model.commands import RIGHT, Command
from hsm_lifecycle.model.explorer import Bounds, explore
from hsm_lifecycle.model.oracle import expect
from hsm_lifecycle.model.profiles import EMULATOR_DEFAULTS, STATE_AFFECTING, Profile
from hsm_lifecycle.model.states import (
    BOTH_BLOCKED,
    INITIALIZED,
    SHIPPED,
    SO_BLOCKED,
    STATES,
    UNINITIALIZED,
    USER_BLOCKED,
    ExtState,
)
from hsm_lifecycle.protocol import FIRMWARE_UPDATES_WHILE_SO_BLOCKED, OPTION_RESET_RETRY_COUNTER, USER_PIN_TRIES_DEFAULT

# Where a check can start: names for sets of abstract states (the `start` marker's values).
START_UNINITIALIZED = "uninitialized"
START_SO_WORKING = "so-working"  # an SO-PIN with tries left: it may be presented, or re-initialize
START_USER_WORKING = "user-working"  # a usable user PIN (the SO-PIN may be blocked)
START_ANY = "any"
START_STATES: dict[str, frozenset[str]] = {
    START_UNINITIALIZED: UNINITIALIZED,
    START_SO_WORKING: frozenset({INITIALIZED}),
    START_USER_WORKING: frozenset({INITIALIZED, SO_BLOCKED}),
    START_ANY: frozenset(STATES),
}
# The start a check of each cost class has unless it says otherwise.
DEFAULT_START: dict[str, str] = {
    FREE: START_USER_WORKING,
    TRIES: START_SO_WORKING,
    WIPES: START_SO_WORKING,
    IRREVERSIBLE: START_SO_WORKING,
    OPERATOR: START_SO_WORKING,
}

UPDATE_BUDGET = FIRMWARE_UPDATES_WHILE_SO_BLOCKED  # R13: a token's lifetime of SO-blocked updates
RENEWAL = "firmware update (renews the token)"

# Consent and credentials, named as the user grants them (the adapter words the option).
NEED_SERIAL = "serial"
NEED_IRREVERSIBLE = "allow-irreversible"
NEED_OPERATOR = "allow-operator"
NEED_PIN = "pin"
NEED_SO_PIN = "so-pin"
NEED_MORE_UPDATES = "max-updates"  # a bound on the campaign's firmware updates that allows more
# What the bench in front of the token can do (a check's `needs`, the consent's `capabilities`).
NEED_POWER_RIG = "power-rig"
CAPABILITY_WHY = {NEED_POWER_RIG: "cuts the token's power in the middle of a PIN check, which needs a power-cut rig"}

# Commands a way in may use: what provisioning does, nothing that spends a try for good.
WAY_ALPHABET: tuple[Command, ...] = (
    Command.select(),
    Command.verify_user(RIGHT),
    Command.reset_retry_counter(RIGHT, False),
    Command.initialize(RIGHT, OPTION_RESET_RETRY_COUNTER, USER_PIN_TRIES_DEFAULT),
    Command.generate_key(),
    Command.delete_key(),
)
WAY_BOUNDS = Bounds(max_keys=2, max_updates=0)


@dataclass(frozen=True)
class CheckSpec:
    """One check (a collected test) as the planner sees it."""

    id: str  # the test's node id
    rules: tuple[str, ...]
    cost: str  # cost class of its marker
    start: str = ""  # key of START_STATES; "" = DEFAULT_START of its cost class
    leaves: str | None = None  # abstract state it leaves the token in; None = as it found it
    updates: int = 0  # firmware updates the check itself makes
    counted: int = 0  # of those, admitted only because the SO-PIN was blocked (R13's 5 per token)
    apdus: int = 0  # estimated APDUs of the check itself
    seconds: float = 0.0  # estimated duration of the check itself on the reference token
    user_tries: int = 0  # user tries it spends (and restores, unless it blocks)
    so_tries: int = 0  # SO tries it spends
    # The token's PINs it presents (NEED_PIN, NEED_SO_PIN); None: what its cost class usually needs.
    presents: frozenset[str] | None = None
    # The checks (model.checks ids) this test run decides; None: unknown (placed by its rules).
    decides: frozenset[str] | None = None
    needs: frozenset[str] = frozenset()  # capabilities of the bench it needs (NEED_POWER_RIG)
    # It makes as many SO-blocked updates as the token has left of its 5 (on top of `updates`).
    counts_left: bool = False

    @property
    def starts(self) -> frozenset[str]:
        return START_STATES[self.start or DEFAULT_START[self.cost]]

    @property
    def blocks_so(self) -> bool:
        return self.leaves in (SO_BLOCKED, BOTH_BLOCKED)

    @property
    def needs_uninitialized(self) -> bool:
        return self.starts <= UNINITIALIZED


@dataclass(frozen=True)
class PlanConsent:
    """What the user allowed and which of the token's PINs the suite holds."""

    serial: bool = False  # --serial, confirmed against the token
    irreversible: bool = False
    operator: bool = False
    user_pin: bool = False
    so_pin: bool = False
    guarded: bool = True  # False: the in-process emulator (every class, fresh token per test)
    update_budget: int = UPDATE_BUDGET
    max_updates: int | None = None  # the user's bound on this campaign's firmware updates
    capabilities: frozenset[str] = frozenset()  # of the bench (NEED_POWER_RIG)

    def updates_allowed(self, done: int, more: int) -> bool:
        return self.max_updates is None or done + more <= self.max_updates

    @property
    def ceiling(self) -> str:
        """The costliest class any step may have (operator apart: it needs a person)."""
        if not self.guarded:
            return IRREVERSIBLE
        if not self.serial:
            return TRIES
        return IRREVERSIBLE if self.irreversible else WIPES

    def missing_for(self, cost: str) -> tuple[str, ...]:
        """The consent a check of `cost` still needs (empty: allowed)."""
        if not self.guarded or cost in (FREE, TRIES):
            return ()
        if cost == OPERATOR:
            return () if self.operator else (NEED_OPERATOR,)
        need = [] if self.serial else [NEED_SERIAL]
        if cost == IRREVERSIBLE and not self.irreversible:
            need.append(NEED_IRREVERSIBLE)
        return tuple(need)


@dataclass(frozen=True)
class Pricing:
    """What a command costs on the reference token: APDUs and seconds (the adapter's table)."""

    command: Callable[[Command], tuple[int, float]] = lambda c: (1, 0.0)
    renewal_seconds: float = 0.0  # a person at the portal


@dataclass(frozen=True)
class Step:
    """One check in the walk (or a renewal), with its way in and what it costs."""

    check: str  # node id, or RENEWAL
    rules: tuple[str, ...]
    cost: str
    starts_in: str  # abstract state the way in leaves the token in
    way_in: tuple[str, ...]  # commands, as the trace names them
    way_in_cost: str
    apdus: int
    seconds: float
    user_tries: int
    so_tries: int
    wipes: int
    so_blocks: int
    firmware_updates: int
    leaves: str
    so_blocked_updates: int = 0  # of its updates, counted against R13's 5 per token
    decides: tuple[str, ...] = ()  # the checks (model.checks ids) this step's test decides


@dataclass(frozen=True)
class Segment:
    """Steps between two firmware updates: one SO-PIN lifetime of the token."""

    index: int
    starts_in: str
    steps: tuple[Step, ...]


@dataclass(frozen=True)
class NotRun:
    check: str
    rules: tuple[str, ...]
    why: str
    allowed_by: tuple[str, ...]  # NEED_* names; empty: nothing the user can give helps


@dataclass(frozen=True)
class CheckPlace:
    """Where one check of the catalog is decided in the walk, or why nowhere; and what it needs,
    as the test run that decides it needs it: where it starts, its cost class, the consent,
    credentials and capabilities it takes."""

    check: str  # model.checks id
    test: str | None  # node id of the first planned test that decides it
    segment: int | None
    why: str = ""  # when it has no place
    allowed_by: tuple[str, ...] = ()
    starts: tuple[str, ...] = ()  # abstract states it can start from
    cost: str = ""  # cost class
    needs: tuple[str, ...] = ()  # NEED_* consent, credentials and capabilities


@dataclass(frozen=True)
class Plan:
    start: str  # the extended state the token was read in
    segments: tuple[Segment, ...]
    not_run: tuple[NotRun, ...]
    assumed: tuple[str, ...] = ()  # open behaviours assumed for the estimate (not yet observed)
    changed_by_device: bool = False
    checks: tuple[CheckPlace, ...] = ()  # every check of the rules in scope, placed or not

    @property
    def steps(self) -> tuple[Step, ...]:
        return tuple(s for seg in self.segments for s in seg.steps)

    @property
    def order(self) -> tuple[str, ...]:
        """Node ids in the order they run."""
        return tuple(s.check for s in self.steps if s.check != RENEWAL)

    @property
    def firmware_updates(self) -> int:
        return sum(s.firmware_updates for s in self.steps)

    def total(self, what: str) -> float:
        return sum(getattr(s, what) for s in self.steps)

    @property
    def rules_planned(self) -> frozenset[str]:
        return frozenset(r for s in self.steps for r in s.rules)

    def to_dict(self) -> dict[str, Any]:
        """summary.json's "plan" (architecture.md)."""
        return {
            "start": self.start,
            "segments": [
                {"index": seg.index, "starts_in": seg.starts_in, "steps": [asdict(s) for s in seg.steps]}
                for seg in self.segments
            ],
            "not_run": [asdict(n) for n in self.not_run],
            "firmware_updates": self.firmware_updates,
            "so_blocked_updates": sum(s.so_blocked_updates for s in self.steps),
            "totals": {k: self.total(k) for k in ("apdus", "user_tries", "so_tries", "wipes", "so_blocks", "seconds")},
            "assumed": list(self.assumed),
            "changed_by_device": self.changed_by_device,
            "checks": [asdict(c) for c in self.checks],
        }

    @property
    def unplaced(self) -> tuple[CheckPlace, ...]:
        return tuple(c for c in self.checks if c.test is None)


# ---------------------------------------------------------------------------------------------
# Ways in


@dataclass(frozen=True)
class Way:
    commands: tuple[Command, ...]
    cost: str
    end: ExtState


def planning_profile(profile: Profile) -> tuple[Profile, tuple[str, ...]]:
    """The profile with every state-affecting behaviour still open assumed as the emulator's
    defaults, and the names of those assumed: a plan made before observation is an estimate."""
    open_ = profile.unresolved
    if not open_:
        return profile, ()
    defaults = {b: EMULATOR_DEFAULTS.require(b) for b in open_ if b in STATE_AFFECTING}
    return profile.resolve(defaults), tuple(sorted(defaults))


@lru_cache(maxsize=512)
def way_in(state: ExtState, goal: frozenset[str], profile: Profile, max_cost: str) -> Way | None:
    """The cheapest command sequence (lowest cost class, then shortest) from `state` to a state
    whose abstract state is in `goal`; None if the model knows none within `max_cost`."""
    if state.abstract in goal:
        return Way((), FREE, state)
    for cost in (FREE, TRIES, WIPES):
        if cost_rank(cost) > cost_rank(max_cost):
            break
        found = explore(profile, state, WAY_ALPHABET, WAY_BOUNDS, max_cost=cost)
        for candidate in found.parents:  # breadth-first: the first one is a shortest way
            if candidate.abstract in goal:
                return Way(tuple(found.path_to_state(candidate)), cost, candidate)
    return None


def _presents(commands: Iterable[Command]) -> set[str]:
    """Which of the token's PINs these commands present."""
    need: set[str] = set()
    for c in commands:
        if c.pin == RIGHT:
            need.add(NEED_PIN)
        if c.so == RIGHT:
            need.add(NEED_SO_PIN)
    return need


# ---------------------------------------------------------------------------------------------
# The walk


@dataclass
class _Walk:
    checks: list[CheckSpec]
    consent: PlanConsent
    profile: Profile
    pricing: Pricing
    state: ExtState
    # PINs the suite set itself (it initialized the token): it holds them whatever was given.
    own_pins: bool = False
    updates: int = 0
    counted: int = 0  # updates admitted only because the SO-PIN was blocked (R13)
    segments: list[Segment] = field(default_factory=list)
    current: list[Step] = field(default_factory=list)
    segment_start: str = ""
    start_abstract: str = ""

    def held(self) -> set[str]:
        held = set()
        if self.consent.user_pin or self.own_pins or not self.consent.guarded:
            held.add(NEED_PIN)
        if self.consent.so_pin or self.own_pins or not self.consent.guarded:
            held.add(NEED_SO_PIN)
        return held

    def pins_needed(self, check: CheckSpec, way: Way) -> set[str]:
        """Credentials the way in and the check present (on an initialized token)."""
        if not self.state.is_initialized:
            return set()  # the suite initializes it: every PIN from then on is its own
        need = _presents(way.commands)
        if not way.end.is_initialized:
            return need
        by_cost = {FREE: set(), TRIES: {NEED_PIN, NEED_SO_PIN}, WIPES: {NEED_SO_PIN},
                   IRREVERSIBLE: {NEED_PIN, NEED_SO_PIN}, OPERATOR: set()}  # fmt: skip
        return need | (by_cost[check.cost] if check.presents is None else set(check.presents))

    def way_ceiling(self) -> str:
        ceiling = self.consent.ceiling
        return WIPES if cost_rank(ceiling) > cost_rank(WIPES) else ceiling

    def way_for(self, check: CheckSpec) -> Way | None:
        way = way_in(self.state, check.starts, self.profile, self.way_ceiling())
        if way is None or self.pins_needed(check, way) - self.held():
            return None
        if check.counted and self.counted + check.counted > self.consent.update_budget:
            return None
        if check.updates and not self.consent.updates_allowed(self.updates, check.updates):
            return None
        return way

    def rank(self, check: CheckSpec) -> tuple[int, int]:
        if check.needs_uninitialized:
            # Those that leave the token uninitialized before the one that initializes it; of
            # the ones that initialize it, first the one whose rules nothing else checks.
            if check.leaves is None:
                return (0, 0)
            others = sum(1 for c in self.checks if c is not check and set(c.rules) & set(check.rules))
            return (1, others)
        if check.blocks_so:
            return (7, 0)
        if check.updates:
            return (6, check.updates)
        return ({FREE: 2, TRIES: 3, WIPES: 4, OPERATOR: 5}.get(check.cost, 5), 0)

    def run(self, check: CheckSpec, way: Way) -> None:
        way_apdus = way_seconds = 0.0
        for c in way.commands:
            a, s = self.pricing.command(c)
            way_apdus, way_seconds = way_apdus + a, way_seconds + s
        wipes = sum(1 for c in way.commands if c.name == "initialize" and way.end.is_initialized)
        if check.cost == WIPES:
            wipes += 1
        if way.end.is_initialized and any(c.name == "initialize" for c in way.commands) or (
            not way.end.is_initialized and check.leaves == INITIALIZED
        ):
            self.own_pins = True  # the suite set the PINs itself
        after = self.after(check, way.end)
        self.current.append(
            Step(
                check=check.id,
                rules=check.rules,
                cost=check.cost,
                starts_in=way.end.abstract,
                way_in=tuple(str(c) for c in way.commands),
                way_in_cost=way.cost,
                apdus=int(way_apdus) + check.apdus,
                seconds=round(way_seconds + check.seconds, 3),
                user_tries=check.user_tries,
                so_tries=check.so_tries,
                wipes=wipes,
                so_blocks=1 if check.blocks_so and (way.end.so_tries or 0) > 0 else 0,
                firmware_updates=check.updates,
                so_blocked_updates=check.counted,
                leaves=after.abstract,
                decides=tuple(sorted(check.decides or ())),
            )
        )
        self.state = after
        if check.updates:
            self.updates += check.updates
            self.counted += check.counted
            self.close_segment()

    def after(self, check: CheckSpec, start: ExtState) -> ExtState:
        """A representative extended state for where the check leaves the token."""
        leaves = check.leaves
        if leaves is None or leaves == start.abstract:
            return start.but(authenticated=False) if start.is_initialized else start
        if leaves in UNINITIALIZED:
            return ExtState(identity=start.identity + max(1, check.updates))
        base = start if start.is_initialized else ExtState.initialized(identity=start.identity)
        if leaves == INITIALIZED:
            return ExtState.initialized(identity=start.identity, keys=base.keys, options=base.options, user_max=base.user_max)
        if leaves == SO_BLOCKED:
            return base.but(so_tries=0, authenticated=False)
        if leaves == BOTH_BLOCKED:
            return base.but(so_tries=0, user_tries=0, authenticated=False)
        if leaves == USER_BLOCKED:
            return base.but(user_tries=0, authenticated=False)
        raise ValueError(f"unknown state {leaves!r} in the leaves of {check.id}")

    def close_segment(self) -> None:
        if self.current:
            self.segments.append(Segment(len(self.segments) + 1, self.segment_start, tuple(self.current)))
        self.current = []
        self.segment_start = self.state.abstract

    def renew(self) -> bool:
        """A firmware update by the operator that renews the token (model: cheapest path)."""
        if not self.consent.operator:
            return False
        if self.state.keys and self.state.so_tries:
            return False  # R12: refused with keys and a working SO-PIN (a check deletes them)
        outcome = expect(self.state, Command.firmware_update(), self.profile)
        if outcome.next.is_initialized:
            return False
        counted = outcome.next.so_blocked_updates - self.state.so_blocked_updates
        if self.counted + counted > self.consent.update_budget or not self.consent.updates_allowed(self.updates, 1):
            return False
        a, s = self.pricing.command(Command.firmware_update())
        self.current.append(
            Step(RENEWAL, ("R12", "R13", "R14") if counted else ("R12", "R14"), OPERATOR, self.state.abstract, (), FREE,
                 a, round(s + self.pricing.renewal_seconds, 3), 0, 0, 0, 0, 1, outcome.next.abstract, counted)
        )  # fmt: skip
        self.state = outcome.next
        self.updates += 1
        self.counted += counted
        self.own_pins = False  # a renewed token has no PINs: the next INITIALIZE sets the suite's
        self.close_segment()
        return True


def plan_campaign(
    start: ExtState,
    checks: Iterable[CheckSpec],
    consent: PlanConsent,
    profile: Profile,
    pricing: Pricing = Pricing(),
) -> Plan:
    """Order `checks` as one walk from `start` (see the module docstring)."""
    profile, assumed = planning_profile(profile)
    left = max(0, consent.update_budget - start.so_blocked_updates)
    checks = [with_history(c, left) for c in checks]
    walk = _Walk(checks, consent, profile, pricing, start, own_pins=not start.is_initialized, segment_start=start.abstract,
                 start_abstract=start.abstract, counted=start.so_blocked_updates)
    not_run: list[NotRun] = []
    allowed: list[CheckSpec] = []
    for check in checks:
        lacking = sorted(check.needs - consent.capabilities)
        if lacking:
            not_run.append(NotRun(check.id, check.rules, "; ".join(CAPABILITY_WHY[n] for n in lacking), tuple(lacking)))
            continue
        missing = consent.missing_for(check.cost)
        if check.blocks_so:  # an operator check that blocks the SO-PIN needs both consents
            missing = tuple(dict.fromkeys(missing + consent.missing_for(IRREVERSIBLE)))
        if missing:
            not_run.append(NotRun(check.id, check.rules, f"cost class '{check.cost}' needs consent", missing))
        elif check.counted > left:
            not_run.append(NotRun(check.id, check.rules, f"needs {check.counted} firmware updates admitted for a blocked SO-PIN, "
                                  f"more than the {left} this token has left", ()))  # fmt: skip
        elif check.updates and not consent.updates_allowed(0, check.updates):
            not_run.append(NotRun(check.id, check.rules, f"needs {_updates(check)}; the campaign may make {consent.max_updates}",
                                  (NEED_MORE_UPDATES,)))  # fmt: skip
        else:
            allowed.append(check)
    pending, dropped = _fewest_updates(allowed, consent)
    not_run.extend(dropped)
    while pending:
        ready = [(walk.rank(c), i, c, w) for i, c in enumerate(pending) if (w := walk.way_for(c)) is not None]
        if ready:
            _, _, check, way = min(ready, key=lambda r: (r[0], r[1]))
            walk.run(check, way)
            pending.remove(check)
            continue
        steps = [*(s for seg in walk.segments for s in seg.steps), *walk.current]
        rules = {r for s in steps for r in s.rules}
        decided = {d for s in steps for d in s.decides}
        if any((c.decides - decided) if c.decides is not None else (set(c.rules) - rules) for c in pending) and walk.renew():
            continue
        break
    walk.close_segment()
    planned = Plan(start=str(start), segments=tuple(walk.segments), not_run=(), assumed=assumed)
    for check in pending:
        not_run.append(_why_not(check, walk, planned))
    return Plan(str(start), tuple(walk.segments), tuple(not_run), assumed, checks=place_checks(checks, planned.segments, not_run))


def with_history(check: CheckSpec, left: int) -> CheckSpec:
    """A check that makes the SO-blocked updates the token has left, priced for this token (its
    figures are those of a fresh token, which has all of them left)."""
    if not check.counts_left:
        return check
    share = (check.updates + left) / (check.updates + UPDATE_BUDGET)
    return replace(check, counted=left, updates=check.updates + left, counts_left=False, apdus=round(check.apdus * share),
                   seconds=round(check.seconds * share, 3), so_tries=round(check.so_tries * share))  # fmt: skip


def _updates(check: CheckSpec) -> str:
    counted = f" ({check.counted} admitted only for a blocked SO-PIN)" if check.counted else ""
    return f"{check.updates} firmware update{'s' if check.updates != 1 else ''}{counted}"


def _fewest_updates(checks: list[CheckSpec], consent: PlanConsent) -> tuple[list[CheckSpec], list[NotRun]]:
    """Of the checks that make firmware updates and say what they decide, the set that decides
    the most within the user's bound, then with the fewest updates; the others are dropped with
    the reason. A check that blocks the SO-PIN only to decide what those decide is dropped too:
    the SO-PIN is blocked once, at the end."""
    costly = [c for c in checks if c.updates and c.decides]
    if not costly:
        return checks, []
    best: tuple[tuple[int, int, int], tuple[CheckSpec, ...]] | None = None
    for mask in range(1 << len(costly)):
        chosen = tuple(c for i, c in enumerate(costly) if mask >> i & 1)
        updates = sum(c.updates for c in chosen)
        if not consent.updates_allowed(0, updates):
            continue
        decided = set().union(*(c.decides or () for c in chosen))
        key = (-len(decided), updates, len(chosen))
        if best is None or key < best[0]:
            best = (key, chosen)
    chosen = best[1] if best else ()
    decided: set[str] = set().union(*(c.decides or () for c in chosen))
    kept, dropped = [], []
    for c in checks:
        if c in costly and c not in chosen:
            assert c.decides is not None
            by = ", ".join(sorted(x.id.rsplit("::", 1)[-1] for x in chosen if x.decides and x.decides & c.decides)) or "none"
            if c.decides <= decided:
                why = f"every check it decides is decided by {by}, within fewer firmware updates"
                dropped.append(NotRun(c.id, c.rules, why, ()))
            else:
                bound = f"; the campaign may make {consent.max_updates}" if consent.max_updates is not None else ""
                dropped.append(NotRun(c.id, c.rules, f"needs {_updates(c)}{bound}", (NEED_MORE_UPDATES,)))
        elif c not in costly and c.decides and c.blocks_so and not c.updates and c.decides <= decided:
            by = ", ".join(sorted(x.id.rsplit("::", 1)[-1] for x in chosen if x.decides and x.decides & c.decides))
            dropped.append(NotRun(c.id, c.rules, f"every check it decides is decided by {by}; the SO-PIN is blocked once, at the end", ()))
        else:
            kept.append(c)
    return kept, dropped


def place_checks(checks: Iterable[CheckSpec], segments: Iterable[Segment], not_run: Iterable[NotRun]) -> tuple[CheckPlace, ...]:
    """Every check of the catalog for the rules the collected tests cover: the first planned test
    that decides it (a test that names no checks decides those of its rules), or why none does:
    the reason its tests do not run, or that no collected test decides it."""
    from hsm_lifecycle.model.checks import CHECKS

    checks = list(checks)
    scope = {r for c in checks for r in c.rules}
    by_id = {c.id: c for c in checks}

    def decided_by(spec: CheckSpec, check_id: str, rule: str) -> bool:
        return check_id in spec.decides if spec.decides is not None else rule in spec.rules

    def needs_of(spec: CheckSpec) -> dict[str, Any]:
        consent = {FREE: (), TRIES: (), WIPES: (NEED_SERIAL,), IRREVERSIBLE: (NEED_SERIAL, NEED_IRREVERSIBLE),
                   OPERATOR: (NEED_OPERATOR,)}[spec.cost]  # fmt: skip
        if spec.blocks_so and spec.cost == OPERATOR:
            consent = (NEED_OPERATOR, NEED_SERIAL, NEED_IRREVERSIBLE)
        if spec.updates:
            consent = (*consent, NEED_MORE_UPDATES)
        pins = sorted(spec.presents) if spec.presents is not None else []
        return {"starts": tuple(sorted(spec.starts)), "cost": spec.cost, "needs": (*consent, *pins, *sorted(spec.needs))}

    places: list[CheckPlace] = []
    misses = {m.check: m for m in not_run}
    ordered = [(seg.index, step) for seg in segments for step in seg.steps]
    for check in CHECKS:
        if check.rule not in scope:
            continue
        place = None
        for index, step in ordered:
            spec = by_id.get(step.check)
            if spec is not None and decided_by(spec, check.id, check.rule):
                place = CheckPlace(check.id, spec.id, index, **needs_of(spec))
                break
        if place is None:
            deciding = [c for c in checks if decided_by(c, check.id, check.rule) and c.id in misses]
            would = [misses[c.id] for c in deciding]
            if would:
                first = would[0]
                allowed = tuple(dict.fromkeys(a for m in would for a in m.allowed_by))
                place = CheckPlace(check.id, None, None, f"{first.check.rsplit('/', 1)[-1]} does not run: {first.why}", allowed,
                                   **needs_of(deciding[0]))  # fmt: skip
            else:
                place = CheckPlace(check.id, None, None, "no collected test decides it", ())
        places.append(place)
    return tuple(places)


def _why_not(check: CheckSpec, walk: _Walk, planned: Plan) -> NotRun:
    """Why a check found no place in the walk, and what the user could give to change that."""
    state = walk.state
    allowed = (NEED_OPERATOR,) if not walk.consent.operator and walk.consent.guarded else ()
    if check.counted and walk.counted + check.counted > walk.consent.update_budget:
        return NotRun(check.id, check.rules, f"needs {check.counted} firmware update(s) admitted for a blocked SO-PIN; "
                      f"{walk.consent.update_budget - walk.counted} left of the token's {walk.consent.update_budget}", ())  # fmt: skip
    unlimited = way_in(state, check.starts, walk.profile, WIPES)
    if unlimited is not None:
        missing = sorted(_presents(unlimited.commands) | walk.pins_needed(check, unlimited)) if state.is_initialized else []
        missing = [m for m in missing if m not in walk.held()]
        if missing:
            return NotRun(check.id, check.rules, "presents the token's PINs (to get it ready, to use its keys or to restore what it spends)", tuple(missing))
        if cost_rank(unlimited.cost) > cost_rank(walk.way_ceiling()):
            return NotRun(check.id, check.rules, f"getting the token into {'/'.join(sorted(check.starts))} "
                          f"re-initializes it ({unlimited.cost})", (NEED_SERIAL,))  # fmt: skip
    # The step after which the token never again was in a state the check starts from.
    could_have = walk.start_abstract in check.starts
    blocker = ""
    for step in planned.steps:
        if step.starts_in in check.starts or step.leaves in check.starts:
            could_have, blocker = True, ""
        if could_have and not blocker and step.leaves not in check.starts:
            blocker = step.check
    where = "/".join(sorted(check.starts))
    if check.needs_uninitialized:
        why = f"needs an uninitialized token ({where})"
    else:
        why = f"needs a token in {where}"
    if blocker:
        why += f"; the token leaves it at {blocker.rsplit('/', 1)[-1]} and is {state.abstract} at the end"
    elif not could_have:
        why += f"; the token was {walk.start_abstract} when the campaign began"
    if walk.consent.operator and walk.consent.guarded:
        why += "; every check it decides has a place in the walk already, so no further firmware update is spent on it"
        allowed = ()
    else:
        why += "; only a firmware update at the portal renews it"
    return NotRun(check.id, check.rules, why, allowed)


def plan_fresh_each(checks: Iterable[CheckSpec], profile: Profile, pricing: Pricing = Pricing()) -> Plan:
    """The in-process emulator's campaign: every check on a token of its own, fresh from the
    factory (shipped), so order never matters and nothing is ever out of reach."""
    profile, assumed = planning_profile(profile)
    unlimited = PlanConsent(guarded=False)  # a new token each time: each has its own budget
    walk = _Walk([], unlimited, profile, pricing, ExtState.shipped(), own_pins=True, segment_start=SHIPPED)
    not_run = []
    checks = [with_history(c, UPDATE_BUDGET) for c in checks]  # a fresh token has all 5 left
    for check in checks:
        walk.state, walk.updates, walk.counted = ExtState.shipped(), 0, 0
        way = walk.way_for(check)
        if way is None:
            not_run.append(NotRun(check.id, check.rules, f"no way from a fresh token to {'/'.join(sorted(check.starts))}", ()))
            continue
        walk.run(check, way)
    walk.close_segment()
    # One segment: a new token per check, not an update in between.
    steps = tuple(s for seg in walk.segments for s in seg.steps)
    segments = (Segment(1, SHIPPED, steps),) if steps else ()
    return Plan(str(ExtState.shipped()), segments, tuple(not_run), assumed, checks=place_checks(checks, segments, not_run))
