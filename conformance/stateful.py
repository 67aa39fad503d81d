"""Random command sequences judged by the model: a hypothesis `RuleBasedStateMachine`.

Its one rule draws a command from the model's own alphabet (`Command.alphabet()`) and runs it
through `Device.step`, so the oracle judges every answer. After every step the invariants check
what is free to read: the user and SO status queries (judged by the oracle like any step), the
device identity (EF.C_DevAut bytes unchanged unless the model took a firmware update) and the key
count (ENUMERATE OBJECTS against the model's). A failure shrinks to a minimal sequence; its APDU
trace is in the failure message and in the test report.

On the in-process emulator each example gets a fresh token and every step is allowed. On a
persistent device each example starts from a provisioned token (re-initialized when needed,
which needs consent), and steps the interlocks refuse (SO floor, irreversible steps on a token
that cannot be renewed) are skipped, not sent.
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from hsm_lifecycle.conformance.interlocks import InterlockRefused
from hsm_lifecycle.conformance.admission import CostExceeded
from hsm_lifecycle.model.cost import CostClass
from hsm_lifecycle.conformance.tour import PORTAL_COMMANDS
from hsm_lifecycle.model.commands import Command
from hsm_lifecycle.model.oracle import Outcome
from hsm_lifecycle.model.profiles import UnresolvedBehaviour
from hsm_lifecycle.model.oracle import expect


def make_machine(run: Any, alphabet: tuple[Command, ...]) -> type[RuleBasedStateMachine]:
    """A state machine class bound to one test's `TestRun` (conformance.plugin)."""

    class LifecycleMachine(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.device = run.open_device()
            if self.device.target.can_renew:
                # Fresh tokens are free here: the emulator runs every cost class, every time.
                self.device.declared = CostClass.IRREVERSIBLE
            if self.device.target.persistent:
                self.device.provision()
            self.identity: bytes | None = None
            self.identity_generation = self.device.state.identity

        def admitted(self, cmd: Command) -> Outcome | None:
            """The oracle's outcome if the step may be sent on this target, else None."""
            if cmd.name in PORTAL_COMMANDS and self.device.mapper.portal is None:
                return None
            try:
                outcome = expect(self.device.state, cmd, self.device.profile)
            except UnresolvedBehaviour:
                return None  # the profile cannot predict it on this device: not sent
            try:
                self.device.check_credentials(cmd)
                self.device.admit(outcome)
            except (InterlockRefused, CostExceeded):  # above the consent, or above the test's class on one kept token
                return None
            return outcome

        @rule(cmd=st.sampled_from(alphabet))
        def step(self, cmd: Command) -> None:
            if self.admitted(cmd) is not None:
                try:
                    self.device.step(cmd)
                except InterlockRefused:
                    pass  # the token's custody kept the APDU back (nothing sent): as if not drawn

        @invariant()
        def status_queries_match_the_model(self) -> None:
            self.device.step(Command.query_user())
            self.device.step(Command.query_so())

        @invariant()
        def identity_unchanged_without_update(self) -> None:
            current = self.device.identity()
            same_generation = self.identity is not None and self.device.state.identity == self.identity_generation
            if same_generation and current != self.identity:  # a failure only: a walk decides no R08 pass
                self.device.fail(
                    "EF.C_DevAut changed although no firmware update was taken (R08: identity survives INITIALIZE)",
                    ("R08.c-devaut-unchanged",),
                )
            self.identity, self.identity_generation = current, self.device.state.identity

        @invariant()
        def key_count_matches_the_model(self) -> None:
            self.device.check_keys()

    return LifecycleMachine


def run_stateful(run: Any, *, examples: int, steps: int) -> None:
    machine = make_machine(run, Command.alphabet())
    run_state_machine_as_test(
        machine,
        settings=settings(
            max_examples=examples,
            stateful_step_count=steps,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
            print_blob=True,
            database=None,  # no .hypothesis folder left in the user's directory: examples are per device, not kept
        ),
    )
