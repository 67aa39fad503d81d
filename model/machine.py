"""The lifecycle as a `transitions` state machine over the six abstract states.

Every row of `model.lifecycle.TRANSITIONS` becomes one guarded transition: its guard is the
machine's condition, its effect runs as the `before` callback and writes the extended
variables onto the model object. The oracle fires the command's trigger on a throwaway model
object and reads the result, so the machine is the thing that decides.
"""

from __future__ import annotations

from functools import cache

from transitions import EventData, Machine

from hsm_lifecycle.model.commands import COMMAND_NAMES, Command
from hsm_lifecycle.model.lifecycle import TRANSITIONS, Step, Transition
from hsm_lifecycle.model.profiles import Profile
from hsm_lifecycle.model.states import STATES, ExtState


class ModelError(Exception):
    """The model contradicts itself (no transition fires, or a destination disagrees)."""


class Run:
    """The object the machine drives for one step: the abstract state plus the step's inputs."""

    __slots__ = ("state", "before", "command", "profile", "taken", "step")

    def __init__(self, before: ExtState, command: Command, profile: Profile) -> None:
        self.state = before.abstract  # the machine's model attribute
        self.before = before
        self.command = command
        self.profile = profile
        self.taken: Transition | None = None
        self.step: Step | None = None


def _condition(t: Transition):  # noqa: ANN202 - a transitions callback
    test = t.test

    def condition(ev: EventData) -> bool:
        run: Run = ev.model
        return test(run.before, run.command, run.profile)

    return condition


def _effect(t: Transition):  # noqa: ANN202 - a transitions callback
    effect = t.effect

    def before(ev: EventData) -> None:
        run: Run = ev.model
        run.taken = t
        run.step = effect(run.before, run.command, run.profile)

    return before


@cache
def lifecycle_machine() -> Machine:
    """Built once per process: ~130 guarded transitions, one trigger per command name."""
    machine = Machine(
        model=None,
        states=list(STATES),
        initial=STATES[0],
        auto_transitions=False,
        send_event=True,
        ignore_invalid_triggers=False,
    )
    for t in TRANSITIONS:
        machine.add_transition(t.trigger, t.source, t.dest, conditions=[_condition(t)], before=[_effect(t)])
    missing = [(s, c) for s in STATES for c in COMMAND_NAMES if s not in machine.events[c].transitions]
    if missing:
        raise ModelError(f"the model is not total: no transition for {missing}")
    return machine


def fire(before: ExtState, command: Command, profile: Profile) -> tuple[Transition, Step]:
    """Fire `command` from `before` on the machine; the transition taken and its step."""
    run = Run(before, command, profile)
    lifecycle_machine().events[command.name].trigger(run)
    if run.taken is None or run.step is None:
        raise ModelError(f"no transition fires for {command} in {before}")
    if run.state != run.step.next.abstract:
        raise ModelError(
            f"{run.taken.id} ends in {run.state!r} but its effect leads to {run.step.next.abstract!r} ({run.step.next})"
        )
    return run.taken, run.step
