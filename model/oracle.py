"""The oracle: given an extended state and an abstract command, what must the device answer
and where does it end up. It runs the `transitions` machine of `model.machine`.

    out = expect(state, Command.verify_user("wrong"), profile)
    out.accepts("63C2"); out.next; out.rules; out.transition; out.open
"""

from __future__ import annotations

from dataclasses import dataclass

from hsm_lifecycle.model.commands import Command
from hsm_lifecycle.model.machine import fire
from hsm_lifecycle.model.outputs import accepts as _accepts
from hsm_lifecycle.model.outputs import is_status_word
from hsm_lifecycle.model.profiles import REFUSED, SMARTCARD_HSM, Profile
from hsm_lifecycle.model.states import ExtState


@dataclass(frozen=True, slots=True)
class Outcome:
    command: Command
    before: ExtState
    outputs: frozenset[str]  # acceptable outputs; REFUSED ("refused") admits any SW but 9000
    next: ExtState
    rules: tuple[str, ...]
    transition: str  # id of the model transition taken ("I08")
    open: str | None  # open behaviour deciding the output (recorded, not judged), or None
    depends: tuple[str, ...] = ()  # state-affecting open behaviours the next state relied on
    cost: str = "free"  # cost class of the transition taken

    def accepts(self, output: str) -> bool:
        """Whether the device's output (an SW as 4 hex digits, or a portal verdict) is allowed."""
        return _accepts(self.outputs, output)

    @property
    def sws(self) -> frozenset[int]:
        """The acceptable status words as integers (empty for portal steps and `refused`)."""
        return frozenset(int(o, 16) for o in self.outputs if is_status_word(o))

    @property
    def refused_any(self) -> bool:
        """True when the rule only says "refused": any SW other than 9000 passes."""
        return REFUSED in self.outputs

    def describe(self) -> str:
        """One line for failure messages and traces."""
        allowed = " | ".join(sorted("any SW but 9000" if o == REFUSED else o for o in self.outputs))
        open_ = f", open {self.open}" if self.open else ""
        return f"{self.command} in {self.before.abstract}: expect {allowed} ({self.transition}, {' '.join(self.rules)}{open_}) -> {self.next.abstract}"


def expect(state: ExtState, command: Command, profile: Profile = SMARTCARD_HSM) -> Outcome:
    """The expected outcome of `command` in `state` on a device described by `profile`.

    Raises `model.profiles.UnresolvedBehaviour` when the next state depends on an open
    behaviour the profile leaves unknown (resolve it by observation first).
    """
    transition, step = fire(state, command, profile)
    return Outcome(
        command=command,
        before=state,
        outputs=step.outputs,
        next=step.next,
        rules=transition.rules,
        transition=transition.id,
        open=step.open,
        depends=step.depends,
        cost=transition.cost,
    )


def run(start: ExtState, commands: list[Command] | tuple[Command, ...], profile: Profile = SMARTCARD_HSM) -> list[Outcome]:
    """The outcomes of a command sequence from `start`, each step from the previous `next`."""
    outcomes: list[Outcome] = []
    state = start
    for command in commands:
        outcome = expect(state, command, profile)
        outcomes.append(outcome)
        state = outcome.next
    return outcomes
