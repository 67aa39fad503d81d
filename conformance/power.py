"""Power cuts in the middle of a command, on the in-process emulator's persistence hook: the
cut is written into the trace so a replay can re-arm it, and the model follows the torn step."""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

import pytest

from hsm_lifecycle.conformance.trace import EVENT_POWER_CUT, TraceRecorder
from hsm_lifecycle.model.commands import Command
from hsm_lifecycle.model.divergence import Torn
from hsm_lifecycle.model.oracle import Outcome

if TYPE_CHECKING:
    from hsm_lifecycle.conformance.device import Device

class CutRecorder:
    """Wraps a test's power-loss hook so the trace says where the power was cut: the event's
    number within the command (the `seq` of a hook installed just before it), which a replay
    on the emulator re-arms with `PowerCut(at=n)`."""

    def __init__(self, hook: Callable[..., None], recorder: TraceRecorder) -> None:
        self.hook = hook
        self.recorder = recorder
        self._line = -1  # trace length when the current command's events began
        self._seen = 0

    def __call__(self, event: object) -> None:
        if len(self.recorder.lines) != self._line:  # a new command: its events count from 0
            self._line, self._seen = len(self.recorder.lines), 0
        n = self._seen
        self._seen += 1
        try:
            self.hook(event)
        except BaseException:
            # Written before the torn command's own line, which the transport adds next.
            self.recorder.event(EVENT_POWER_CUT, bytes([min(n, 0xFF)]))
            raise


# ---------------------------------------------------------------------------------------------
# Targets


def step_with_power_cut(hsm: Device, cmd: Command, hook: Callable[..., None]) -> Outcome:
    """Run `cmd` on the in-process emulator with a power-loss hook that cuts it short.

    Valid for cuts after the PIN comparison decided: by R17 the step's persistent effect
    (the spent try) has happened, so the model's next state holds, minus the session that the
    power loss ended. The caller goes on with judged steps (power_cycle, queries)."""
    from hsm_lifecycle.emulator import PowerLoss

    token = hsm.target.emulated_token()
    if token is None:
        pytest.skip("power cuts need the in-process emulator's persistence hook (--target emulator) or a power-cut rig")
    outcome = hsm.expect(cmd)
    hsm.admit(outcome)
    hsm.recorder.context(f"{cmd} (power cut)", hsm.state.abstract, outcome.rules)
    token.set_power_loss_hook(CutRecorder(hook, hsm.recorder))
    try:
        hsm.mapper.run(cmd, uninitialized=not hsm.state.is_initialized)
    except PowerLoss:
        pass
    else:
        hsm.fail(f"{cmd}: the power cut never happened (the hook did not fire)")
    finally:
        token.set_power_loss_hook(None)
    hsm.ledger.note(outcome, None)
    hsm.history.append(Torn(outcome))  # type: ignore[arg-type]
    hsm.state = outcome.next.but(authenticated=False) if outcome.next.is_initialized else outcome.next
    return outcome
