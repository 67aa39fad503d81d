"""The transition tour: a deterministic campaign that takes every model transition at least once.

Planning works on the model alone. The model's explorer enumerates the reachable extended
states (within bounds) and, through its `on_step` hook, every (state, command) -> outcome edge.
On that graph the tour is greedy: from where it stands it walks the shortest path (breadth-first,
alphabet order breaks ties) to the nearest transition not yet taken, and repeats. When nothing
untaken is reachable any more (the SO-PIN is blocked, say), it starts a new segment from a fresh
shipped token if the target can provide one (the emulator), or stops (a real token).
Greedy is not an optimal Chinese-postman tour, but it is short, deterministic and cheap to plan;
tests/conformance compares it with the sum of the model's per-transition shortest paths.

The transitions at R13's limit (updates after the fifth SO-blocked one) lie five SO-blocked
updates deep. Exploring that deep would multiply the graph (and the planning time) by the
update counts, so a last segment gets there directly: the shortest way from a fresh token to an
SO-blocked update, five times (a firmware-reset token is as shipped), then the greedy tour on
the graph around that state.

On a real token the same planner runs from the token's current state with the cost-class filter:
only transitions the user's consent allows, never an SO try below the floor, no INITIALIZE without
--hsm-serial; what it cannot take is listed with the reason.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from hsm_lifecycle.protocol import FIRMWARE_UPDATES_WHILE_SO_BLOCKED
from hsm_lifecycle.model.cost import COST_CLASSES, cost_rank
from hsm_lifecycle.model.commands import FIRMWARE_UPDATE, INITIALIZE, PORTAL_LOGIN, Command
from hsm_lifecycle.model.explorer import Bounds, explore
from hsm_lifecycle.model.lifecycle import TRANSITIONS
from hsm_lifecycle.model.oracle import Outcome, expect
from hsm_lifecycle.model.profiles import Profile
from hsm_lifecycle.model.states import FIRMWARE_RESET, ExtState

PORTAL_COMMANDS = frozenset({FIRMWARE_UPDATE, PORTAL_LOGIN})


@dataclass(frozen=True)
class TourLimits:
    """What the tour may do: the model's cost ceiling plus what the interlocks add."""

    max_cost: str = "irreversible"
    so_floor: int | None = None  # never step below this many SO tries (a real token)
    initialize: bool = True  # False: no INITIALIZE APDU at all (a real token without --hsm-serial)
    portal: bool = False  # the firmware-update portal exists
    renewable: bool = True  # a fresh shipped token can be had (emulator)
    bounds: Bounds = field(default_factory=lambda: Bounds(max_keys=1, max_updates=0))
    excluded: frozenset[str] = frozenset()  # commands (string form) that present a PIN not given
    # SO-blocked updates a last segment spends from a fresh token, to tour the transitions at
    # R13's limit; 0: no such segment (a real token: never).
    counted_updates: int = 0
    announce_dkek: bool = True  # INITIALIZE announcing DKEK shares is in the alphabet

    def alphabet(self) -> tuple[Command, ...]:
        return tuple(
            c
            for c in Command.alphabet()
            if (self.announce_dkek or c.dkek_shares is None)
            and (self.portal or c.name not in PORTAL_COMMANDS)
            and (self.initialize or c.name != INITIALIZE)
            and str(c) not in self.excluded
        )

    def allows(self, outcome: Outcome) -> bool:
        if cost_rank(outcome.cost) > cost_rank(self.max_cost):
            return False
        before, after = outcome.before.so_tries, outcome.next.so_tries
        if self.so_floor is not None and before is not None and after is not None and after < before and after < self.so_floor:
            return False
        return True


@dataclass
class TourPlan:
    start: ExtState
    segments: list[list[Command]]  # the first from `start`, the others from a fresh shipped token
    covered: list[str]  # transition ids, in the order first taken
    left_out: dict[str, str]  # transition id -> why the tour does not take it

    @property
    def steps(self) -> int:
        return sum(len(s) for s in self.segments)


class _Graph:
    def __init__(self, profile: Profile, start: ExtState, limits: TourLimits) -> None:
        self.edges: dict[ExtState, list[Outcome]] = {}
        self.seen: set[str] = set()  # every transition evaluated (allowed or not)
        self.limits = limits

        def collect(outcome: Outcome) -> None:
            self.seen.add(outcome.transition)
            if limits.allows(outcome):
                self.edges.setdefault(outcome.before, []).append(outcome)

        explore(profile, start, limits.alphabet(), limits.bounds, max_cost=limits.max_cost, on_step=collect, skip_unresolved=True)

    def nearest_untaken(self, source: ExtState, taken: set[str]) -> list[Outcome] | None:
        """Shortest edge path from `source` whose last edge takes an untaken transition."""
        return self.nearest(source, lambda edge: edge.transition not in taken)

    def nearest(self, source: ExtState, wanted: Callable[[Outcome], bool]) -> list[Outcome] | None:
        """Shortest edge path from `source` whose last edge is `wanted`."""
        parents: dict[ExtState, tuple[ExtState, Outcome] | None] = {source: None}
        queue = deque([source])
        while queue:
            state = queue.popleft()
            for edge in self.edges.get(state, ()):
                if wanted(edge):
                    path = [edge]
                    link = parents[state]
                    while link is not None:
                        path.append(link[1])
                        link = parents[link[0]]
                    return path[::-1]
                if edge.next not in parents:
                    parents[edge.next] = (state, edge)
                    queue.append(edge.next)
        return None


def plan_tour(profile: Profile, start: ExtState | None = None, limits: TourLimits = TourLimits()) -> TourPlan:
    start = ExtState.shipped() if start is None else start
    graph = _Graph(profile, start, limits)
    shipped_graph = graph if start == ExtState.shipped() else None
    taken: set[str] = set()
    order: list[str] = []
    segments: list[list[Command]] = []
    segment = _walk(graph, start, taken, order)[0]
    while True:
        if segment:
            segments.append(segment)
        if not limits.renewable:
            break
        if shipped_graph is None:
            shipped_graph = _Graph(profile, ExtState.shipped(), limits)
        segment = _walk(shipped_graph, ExtState.shipped(), taken, order)[0]
        if not segment:
            break
    seen = graph.seen | (shipped_graph.seen if shipped_graph else set())
    if limits.counted_updates and shipped_graph is not None:
        at_limit, at_limit_seen = _at_the_limit(profile, shipped_graph, limits, taken, order)
        segments.extend(at_limit)
        seen |= at_limit_seen
    left_out = {t.id: _why_not(t.id, t.source, t.command, t.cost, seen, limits) for t in TRANSITIONS if t.id not in taken}
    return TourPlan(start, segments, order, left_out)


def _walk(graph: _Graph, state: ExtState, taken: set[str], order: list[str]) -> tuple[list[Command], ExtState]:
    """Greedy from `state`: the nearest untaken transition, again and again, while any is reachable."""
    segment: list[Command] = []
    while (path := graph.nearest_untaken(state, taken)) is not None:
        for edge in path:
            segment.append(edge.command)
            if edge.transition not in taken:
                taken.add(edge.transition)
                order.append(edge.transition)
        state = path[-1].next
    return segment, state


def _at_the_limit(
    profile: Profile, shipped_graph: _Graph, limits: TourLimits, taken: set[str], order: list[str]
) -> tuple[list[list[Command]], set[str]]:
    """Segments from a fresh token that spend `limits.counted_updates` SO-blocked updates, then
    tour what is reachable only there; another such segment while the last one ended in a
    dead end (keys on a blocked token at the limit) before taking everything."""
    one = shipped_graph.nearest(ExtState.shipped(), lambda e: e.next.so_blocked_updates > e.before.so_blocked_updates)
    if one is None:
        return [], set()
    prefix: list[Command] = []
    state = ExtState.shipped()
    for _ in range(limits.counted_updates):
        for edge in one:  # judged again from the real state: the path must still count here
            outcome = expect(state, edge.command, profile)
            if not limits.allows(outcome):
                return [], set()
            prefix.append(edge.command)
            state = outcome.next
    if state.so_blocked_updates < limits.counted_updates:
        return [], set()
    # The key backup was toured from a fresh token. Here no DKEK is announced, so the DKEK
    # commands are refused and the DKEK variables never move: they would multiply the graph
    # around the limit for nothing.
    graph = _Graph(profile, state, replace(limits, announce_dkek=False))
    segments: list[list[Command]] = []
    # The prefix takes only transitions the earlier segments took (updates below the limit).
    while rest := _walk(graph, state, taken, order)[0]:
        segments.append(prefix + rest)
    return segments, graph.seen


def _why_not(tid: str, source: str, command: str, cost: str, seen: set[str], limits: TourLimits) -> str:
    name = command.split("(")[0]
    if name in PORTAL_COMMANDS and not limits.portal:
        return "needs the firmware-update portal"
    if source == FIRMWARE_RESET and not limits.portal:
        return "starts in firmware-reset, which only a firmware update (the portal) reaches"
    if name == INITIALIZE and not limits.initialize:
        return "INITIALIZE is never sent to a real token without --hsm-serial"
    if name in {c.split("(")[0] for c in limits.excluded}:
        return f"{name} is left out on this token (it would present a PIN not given, or reach the owner's keys)"
    if cost_rank(cost) > cost_rank(limits.max_cost):
        return f"costs '{cost}', above this run's ceiling '{limits.max_cost}'"
    if tid not in seen:
        return "not reachable with this device profile within the tour's bounds"
    return "reachable only through steps the interlocks refuse (SO floor) or from states out of reach"


def ceiling_name(rank: int) -> str:
    return COST_CLASSES[rank]


def limits_for(device: "Device") -> TourLimits:  # noqa: F821 - conformance.device.Device
    """What the tour may take on this device: everything on a renewable emulator; on a real
    token the consent's ceiling (never blocking the SO-PIN: nothing could renew the token),
    the SO floor, and only the PINs the owner gave."""
    from hsm_lifecycle.model.cost import CostClass

    target = device.target
    consent = target.consent
    portal = device.mapper.portal is not None
    bounds = Bounds(max_keys=max(1, device.state.keys + 1), max_updates=1 if portal else 0)
    if not consent.guarded and not target.can_renew:
        # One emulated token kept for the whole run (--hsm-persistent): the tour never blocks it
        # nor updates it; the campaign plan puts those checks last.
        return TourLimits(max_cost="wipes", portal=False, renewable=False, bounds=Bounds(max_keys=bounds.max_keys, max_updates=0))
    if not consent.guarded:
        top = "operator" if portal else "irreversible"
        # With the portal and fresh tokens, a last segment reaches R13's limit (O30, O31, B17, B18).
        counted = FIRMWARE_UPDATES_WHILE_SO_BLOCKED if portal and target.can_renew else 0
        return TourLimits(max_cost=top, portal=portal, renewable=target.can_renew, bounds=bounds, counted_updates=counted)
    ceiling = min(consent.ceiling(), CostClass.WIPES)
    needs = {
        RIGHT_USER: target.options.pin is None,
        RIGHT_SO: target.options.so_pin is None,
    }
    excluded = {str(c) for c in Command.alphabet() if any(needs[k] and _presents(c, k) for k in needs)}
    if ceiling < CostClass.WIPES:
        # DELETE reaches the owner's keys unless the suite made the newest key itself, which
        # the planner (model only) cannot know: the APDU guard would refuse it mid-tour.
        excluded.add(str(Command.delete_key()))
    return TourLimits(
        max_cost=ceiling.value,
        so_floor=consent.so_floor,
        initialize=ceiling >= CostClass.WIPES,
        portal=False,
        renewable=False,
        bounds=bounds,
        excluded=frozenset(excluded),
    )


RIGHT_USER = "user"
RIGHT_SO = "so"


def _presents(cmd: Command, which: str) -> bool:
    # as conformance.admission.check_credentials: wrong-length variants carry the right PIN too
    if which == RIGHT_USER:
        return (cmd.name == "verify_user" and cmd.pin == "right") or (cmd.name == "change_user_pin" and cmd.pin != "wrong") or cmd.name == PORTAL_LOGIN
    return cmd.name in (INITIALIZE, "reset_retry_counter", "change_so_pin") and cmd.so != "wrong"
