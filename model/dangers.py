"""What would make it worse: the shortest ways from a token's extended state to a loss.

A *loss* is a step after which the owner has lost something for good (`LOSSES`): keys erased,
keys unusable for good, the SO-PIN blocked, both PINs blocked, the last of the 5 firmware
updates a blocked SO-PIN allows spent, the device identity changed. Each is a predicate on the
two extended states of one step, so the same code serves all six states: nothing here is
written per state.

The routes are found by the model's breadth-first explorer, through the oracle, so each is a
shortest one. Two kinds of step: a *mistake* presents a wrong PIN on an initialized token (the
owner did not mean it); an *action* is done on purpose (initializing or re-initializing with the
SO-PIN, a firmware update). Each loss is searched by mistakes alone, and with actions allowed;
the second is kept only when it is shorter. Key management (generate, delete) is left out: an
owner deleting a key means it.

*Imminent* (doctor says it first and exits 1): mistakes alone reach the loss, and either
  * the owner's next single mistake does, or
  * it makes the keys unusable for good through wrong user PINs alone: the user PIN is typed at
    every use, and once its counter is spent the model admits no way back to the keys (the
    SO-PIN is blocked or cannot reset the user PIN), so its tries left are the only margin.

Open behaviours the profile leaves unknown are resolved towards the worse (`worst_case`): a
danger is then at most as far as shown, never nearer than the device allows.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from itertools import groupby
from typing import Literal

from hsm_lifecycle.protocol import FIRMWARE_UPDATES_WHILE_SO_BLOCKED, USER_PIN_TRIES_DEFAULT
from hsm_lifecycle.model import oracle
from hsm_lifecycle.model.commands import DEFAULT_OPTIONS, FIRMWARE_UPDATE, INITIALIZE, RIGHT, WRONG, Command
from hsm_lifecycle.model.explorer import Bounds, explore
from hsm_lifecycle.model.outputs import LOGIN_OK, OK, UPDATE_OK
from hsm_lifecycle.model.profiles import (
    AUTH_AFTER_CHANGE,
    AUTH_AFTER_INIT,
    RETRIES_BY_PIN_LENGTH,
    RRC_DISABLED,
    SO_SUCCESS_RESTORES,
    Profile,
)
from hsm_lifecycle.model.states import BOTH_BLOCKED, ExtState

# -- the losses --------------------------------------------------------------------------------

KEYS_ERASED = "keys-erased"
KEYS_UNUSABLE = "keys-unusable"
SO_PIN_BLOCKED = "so-pin-blocked"
BOTH_PINS_BLOCKED = "both-pins-blocked"
LAST_UPDATE_SPENT = "last-update-spent"
IDENTITY_CHANGED = "identity-changed"

LIMIT = FIRMWARE_UPDATES_WHILE_SO_BLOCKED

WordForm = Literal["doing", "does"]


@dataclass(frozen=True, slots=True)
class Loss:
    """One kind of loss: its id, a title, what it means for the owner, the rules behind it, and
    two word forms for sentences ("away from losing the key for good", "erases the key"), where
    `{keys}` stands for the keys on the token ("the key", "the 2 keys"). `stuck`: the loss
    leaves the token blocked, so what is still admitted afterwards (the ways out) matters."""

    id: str
    title: str
    meaning: str
    rules: tuple[str, ...]
    doing: str
    does: str
    stuck: bool

    def words(self, form: WordForm, keys: int) -> str:
        text = self.doing if form == "doing" else self.does
        return text.format(keys="the key" if keys == 1 else f"the {keys} keys")


LOSSES: dict[str, Loss] = {
    loss.id: loss
    for loss in (
        Loss(
            KEYS_ERASED, "keys erased",
            "every private key on the token is gone: nothing encrypted to them can be decrypted again "
            "and no signature can be made with them",
            ("R07", "R14"), "losing {keys} (erased)", "erases {keys}", False,
        ),
        Loss(
            KEYS_UNUSABLE, "keys unusable for good",
            "the keys stay on the token but can never be used again: no PIN that could unlock them is left",
            ("R05", "R03", "R06"), "losing {keys} for good", "leaves {keys} unusable for good", True,
        ),
        Loss(
            SO_PIN_BLOCKED, "SO-PIN blocked",
            "the SO-PIN is blocked for good: the token can never be re-initialized, nor its user PIN reset "
            "with the SO-PIN",
            ("R02", "R03"), "blocking the SO-PIN for good", "blocks the SO-PIN for good", True,
        ),
        Loss(
            BOTH_PINS_BLOCKED, "both PINs blocked",
            "neither PIN works any more: nothing on the token itself helps, only a firmware update in the portal",
            ("R03", "R05"), "blocking both PINs", "blocks both PINs", True,
        ),
        Loss(
            LAST_UPDATE_SPENT, f"last of the {LIMIT} firmware updates spent",
            f"the last of the {LIMIT} firmware updates a blocked SO-PIN admits is used: once the SO-PIN is "
            "blocked again with keys on the token, no update is ever admitted",
            ("R13",), f"spending the last of the {LIMIT} firmware updates",
            f"spends the last of the {LIMIT} firmware updates a blocked SO-PIN admits", False,
        ),
        Loss(
            IDENTITY_CHANGED, "device identity changed",
            "the token gets a new device key and certificate: it must be registered in the portal again, and "
            "whatever trusted the old identity will not recognize it",
            ("R14",), "changing the device identity", "gives the token a new device identity", False,
        ),
    )
}  # fmt: skip


def keys_usable(state: ExtState, profile: Profile) -> bool:
    """Whether the keys on the token can still be used without erasing them: some sequence of
    correct PINs (verify, change, reset by the SO) reaches a verified session with keys."""
    return _keys_usable(state, worst_case(profile))


@lru_cache(maxsize=4096)
def _keys_usable(state: ExtState, profile: Profile) -> bool:
    if state.keys == 0:
        return False
    found = explore(profile, state, _RECOVERY, Bounds(max_keys=state.keys, max_updates=0))
    return any(s.authenticated and s.keys == state.keys for s in found.states)


_RECOVERY: tuple[Command, ...] = (
    Command.verify_user(RIGHT),
    Command.change_user_pin(RIGHT),
    Command.reset_retry_counter(RIGHT, new_pin=False),
    Command.reset_retry_counter(RIGHT, new_pin=True),
)


def losses_of(before: ExtState, after: ExtState, profile: Profile) -> tuple[str, ...]:
    """The losses one step from `before` to `after` causes, in `LOSSES` order."""
    hits: list[str] = []
    if before.keys and not after.keys:
        hits.append(KEYS_ERASED)
    if before.keys and after.keys and keys_usable(before, profile) and not keys_usable(after, profile):
        hits.append(KEYS_UNUSABLE)
    if before.so_tries and after.so_tries == 0:
        hits.append(SO_PIN_BLOCKED)
    if before.abstract != BOTH_BLOCKED and after.abstract == BOTH_BLOCKED:
        hits.append(BOTH_PINS_BLOCKED)
    if before.so_blocked_updates < LIMIT <= after.so_blocked_updates:
        hits.append(LAST_UPDATE_SPENT)
    if after.identity != before.identity:
        hits.append(IDENTITY_CHANGED)
    return tuple(hits)


def suffered(state: ExtState, profile: Profile) -> tuple[str, ...]:
    """The losses the token has already suffered, as far as its state tells."""
    out = []
    if state.keys and not keys_usable(state, profile):
        out.append(KEYS_UNUSABLE)
    if state.so_tries == 0:
        out.append(SO_PIN_BLOCKED)
    if state.abstract == BOTH_BLOCKED:
        out.append(BOTH_PINS_BLOCKED)
    if state.so_blocked_updates >= LIMIT:
        out.append(LAST_UPDATE_SPENT)
    return tuple(out)


# -- open behaviours, resolved towards the worse -------------------------------------------------

# Each unknown resolved so that routes to a loss are no longer than on the device: a wrong
# SO-PIN in a disabled RESET RETRY COUNTER spends a try, a correct SO-PIN gives none back, no
# command leaves the user logged in (a wrong user PIN ends a session), every retry count is
# accepted. Every state-affecting behaviour needs an entry (tests/model checks it).
WORST_CASE: dict[str, bool] = {
    RRC_DISABLED: True,
    SO_SUCCESS_RESTORES: False,
    AUTH_AFTER_INIT: False,
    AUTH_AFTER_CHANGE: False,
    RETRIES_BY_PIN_LENGTH: False,
    "wrong-pin-ends-session": True,
}


@lru_cache(maxsize=16)
def worst_case(profile: Profile) -> Profile:
    """`profile` with every unknown state-affecting behaviour resolved as `WORST_CASE` says."""
    if profile.is_resolved:
        return profile
    missing = [b for b in profile.unresolved if b not in WORST_CASE]
    if missing:
        raise ValueError(f"model.dangers: no worst case for open behaviour(s) {', '.join(missing)}: add it to WORST_CASE")
    return profile.resolve({b: WORST_CASE[b] for b in profile.unresolved}, name=f"{profile.name} (worst case)")


# -- steps: mistakes and actions ------------------------------------------------------------------

MISTAKE = "mistake"
ACTION = "action"

USER_PIN = "user-pin"
SO_PIN = "so-pin"


def step_kind(before: ExtState, command: Command) -> str:
    """A wrong PIN on an initialized token is a mistake (on an uninitialized one any code just
    becomes the SO-PIN); everything else in the search is done on purpose."""
    wrong = command.pin == WRONG or command.so == WRONG
    return MISTAKE if wrong and before.is_initialized else ACTION


def step_label(before: ExtState, command: Command) -> str:
    """Words for one step, shared by every step of a run of the same kind."""
    if step_kind(before, command) == MISTAKE:
        return "wrong user PIN" if command.pin == WRONG else "wrong SO-PIN"
    if command.name == INITIALIZE:
        return "re-initialization with the SO-PIN" if before.is_initialized else "initialization"
    if command.name == FIRMWARE_UPDATE:
        return "firmware update"
    return str(command)


def _mistakes(options: int) -> tuple[Command, ...]:
    # Table order breaks ties: the user PIN first (the one typed daily), INITIALIZE before the
    # other SO-PIN commands (the forum thread's way of spending SO tries).
    return (
        Command.verify_user(WRONG),
        Command.change_user_pin(WRONG),
        Command.initialize(WRONG, options, USER_PIN_TRIES_DEFAULT),
        Command.reset_retry_counter(WRONG, new_pin=False),
        Command.change_so_pin(WRONG),
    )


def _actions(options: int) -> tuple[Command, ...]:
    return (Command.initialize(RIGHT, options, USER_PIN_TRIES_DEFAULT), Command.firmware_update())


# -- routes and dangers ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Run:
    """Consecutive steps of one label, e.g. 3 wrong user PINs with 3 tries left before them."""

    label: str
    kind: str  # MISTAKE | ACTION
    count: int
    tries_left: int | None  # before the run, for mistakes; None for actions

    def __str__(self) -> str:
        plural = "s" if self.count > 1 else ""
        if self.kind == ACTION:
            article = "an" if self.label[0] in "aeiou" else "a"
            return f"{article} {self.label}" if self.count == 1 else f"{self.count} {self.label}s"
        left = "" if self.tries_left is None else f" ({self.tries_left} {'try' if self.tries_left == 1 else 'tries'} left)"
        return f"{self.count} {self.label}{plural}{left}"


@dataclass(frozen=True, slots=True)
class Route:
    """A command sequence from the token's state, with what it passes through."""

    steps: tuple[Command, ...]
    states: tuple[ExtState, ...]  # before each step, then the end state
    depends: tuple[str, ...]  # open behaviours (resolved towards the worse) a step relied on

    @property
    def end(self) -> ExtState:
        return self.states[-1]

    @property
    def kinds(self) -> tuple[str, ...]:
        return tuple(step_kind(s, c) for s, c in zip(self.states, self.steps))

    @property
    def mistakes(self) -> int:
        return self.kinds.count(MISTAKE)

    @property
    def actions(self) -> int:
        return self.kinds.count(ACTION)

    @property
    def runs(self) -> tuple[Run, ...]:
        labelled = [(step_label(s, c), step_kind(s, c), s, c) for s, c in zip(self.states, self.steps)]
        out = []
        for (label, kind), group in groupby(labelled, key=lambda x: (x[0], x[1])):
            items = list(group)
            first_state, first_cmd = items[0][2], items[0][3]
            left = None
            if kind == MISTAKE:
                left = first_state.user_tries if first_cmd.pin == WRONG else first_state.so_tries
            out.append(Run(label, kind, len(items), left))
        return tuple(out)

    @property
    def summary(self) -> str:
        """"3 wrong user PINs (3 tries left)"; long routes are counted, not told step by step."""
        runs = self.runs
        if len(runs) <= 3:
            return ", then ".join(str(r) for r in runs)
        totals: dict[str, int] = {}
        for r in runs:
            totals[r.label] = totals.get(r.label, 0) + r.count
        parts = [f"{n} {label}{'s' if n > 1 else ''}" for label, n in totals.items()]
        return f"{len(self.steps)} steps: " + ", ".join(parts)

    @property
    def user_pin_mistakes_only(self) -> bool:
        return self.actions == 0 and all(c.pin == WRONG for c in self.steps)


@dataclass(frozen=True, slots=True)
class WayOut:
    """One owner action tried in the state a loss leaves behind, as the oracle answers it."""

    key: str  # reset-user-pin | re-initialize | firmware-update | portal-login
    label: str
    command: Command
    admitted: bool
    rules: tuple[str, ...]
    losses: tuple[str, ...]  # what taking it loses in turn
    counted_update: bool  # admitted only because the SO-PIN is blocked: one of the 5


_WAYS_OUT: tuple[tuple[str, str, Command, str], ...] = (
    ("reset-user-pin", "resetting the user PIN with the SO-PIN", Command.reset_retry_counter(RIGHT, new_pin=True), OK),
    ("re-initialize", "re-initializing with the SO-PIN", Command.initialize(RIGHT, DEFAULT_OPTIONS, USER_PIN_TRIES_DEFAULT), OK),
    ("firmware-update", "a firmware update", Command.firmware_update(), UPDATE_OK),
    ("portal-login", "logging into the portal with this token", Command.portal_login(), LOGIN_OK),
)


def ways_out(state: ExtState, profile: Profile) -> tuple[WayOut, ...]:
    """What the owner could still try from `state`, each with what it would cost."""
    worst = worst_case(profile)
    out = []
    for key, label, command, success in _WAYS_OUT:
        outcome = oracle.expect(state, command, worst)
        admitted = outcome.accepts(success)
        lost = losses_of(state, outcome.next, profile) if admitted else ()
        counted = admitted and outcome.next.so_blocked_updates > state.so_blocked_updates
        out.append(WayOut(key, label, command, admitted, outcome.rules, lost, counted))
    return tuple(out)


@dataclass(frozen=True, slots=True)
class Danger:
    """The shortest route from the token's state to one loss."""

    loss: Loss
    route: Route
    by_mistakes_alone: bool
    imminent: bool
    ways_out: tuple[WayOut, ...]  # from the state the loss leaves behind

    @property
    def steps_away(self) -> int:
        return len(self.route.steps)


@dataclass(frozen=True, slots=True)
class Dangers:
    """Everything that would make the token's state worse, nearest first."""

    state: ExtState
    profile: str  # the profile the routes were computed with (worst case of the given one)
    dangers: tuple[Danger, ...]
    suffered: tuple[str, ...]  # losses already behind the token

    @property
    def imminent(self) -> tuple[Danger, ...]:
        return tuple(d for d in self.dangers if d.imminent)


def find_dangers(state: ExtState, profile: Profile) -> Dangers:
    """For `state`, the shortest route to every loss still ahead, by mistakes alone and (when
    shorter) with actions; sorted by mistakes, then steps."""
    worst = worst_case(profile)
    options = state.options if state.is_initialized else DEFAULT_OPTIONS
    bounds = Bounds(max_keys=state.keys, max_updates=max(1, LIMIT - state.so_blocked_updates))
    by_mistakes = _first_losses(state, _mistakes(options), worst, profile, bounds) if state.is_initialized else {}
    with_actions = _first_losses(state, (*_mistakes(options), *_actions(options)), worst, profile, bounds)
    already = suffered(state, profile)
    found: list[Danger] = []
    for loss_id, loss in LOSSES.items():
        if loss_id in already:
            continue  # it can happen again only after a way out: not what makes it worse now
        alone = by_mistakes.get(loss_id)
        anyhow = with_actions.get(loss_id)
        if alone is not None:
            found.append(_danger(loss, alone, True, profile))
        if anyhow is not None and (alone is None or len(anyhow.steps) < len(alone.steps)):
            found.append(_danger(loss, anyhow, False, profile))
    found.sort(key=lambda d: (not d.imminent, d.route.actions > 0, d.route.mistakes + d.route.actions, list(LOSSES).index(d.loss.id)))
    return Dangers(state, worst.name, tuple(found), already)


def _danger(loss: Loss, route: Route, alone: bool, profile: Profile) -> Danger:
    imminent = alone and (route.mistakes == 1 or (loss.id == KEYS_UNUSABLE and route.user_pin_mistakes_only))
    return Danger(loss, route, alone, imminent, ways_out(route.end, profile))


def _first_losses(
    start: ExtState, alphabet: tuple[Command, ...], worst: Profile, profile: Profile, bounds: Bounds
) -> dict[str, Route]:
    """Breadth-first, so the first step that causes a loss ends a shortest route to it."""
    hits: dict[str, oracle.Outcome] = {}

    def watch(outcome: oracle.Outcome) -> None:
        for loss in losses_of(outcome.before, outcome.next, profile):
            hits.setdefault(loss, outcome)

    found = explore(worst, start, alphabet, bounds, on_step=watch)
    return {loss: _route(start, [*found.path_to_state(o.before), o.command], worst) for loss, o in hits.items()}


def _route(start: ExtState, steps: list[Command], worst: Profile) -> Route:
    outcomes = oracle.run(start, steps, worst)
    states = (start, *(o.next for o in outcomes))
    depends = tuple(dict.fromkeys(d for o in outcomes for d in o.depends))
    return Route(tuple(steps), states, depends)

