"""Power cuts in the middle of a command, and the model following the torn step.

Two ways to cut: on the in-process emulator its persistence hook (the cut is written into the
trace so a replay can re-arm it); on a token reached over PC/SC a power-cut rig
(conformance.power_rig), armed before the command: the command gets no answer, the token leaves
the reader and comes back powered on, and the suite connects to it again. Either way the
verdict comes from the device's answers after power-on (the test's free queries)."""

from __future__ import annotations

from contextlib import nullcontext
from typing import TYPE_CHECKING, Callable

import pytest

from hsm_lifecycle.conformance.power_rig import CutMoment, PowerRig, RigError
from hsm_lifecycle.conformance.trace import EVENT_POWER_CUT, EVENT_RIG_CUT, RIG_MOMENTS, TraceRecorder
from hsm_lifecycle.conformance.transport.base import TransportError
from hsm_lifecycle.model.commands import WRONG, Command
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

REINSERT_TIMEOUT_S = 15.0  # a token back from a power cut re-enumerates (a USB token: seconds)


def require_power_cut(hsm: Device) -> None:
    """Skip (before anything is spent) unless this target can cut the power mid-command."""
    if hsm.target.emulated_token() is None and hsm.target.power_rig() is None:
        pytest.skip(hsm.target.power_rig_missing())


def step_with_power_cut(hsm: Device, cmd: Command, moment: CutMoment = CutMoment.PIN_CHECK) -> Outcome:
    """Run `cmd` with the power cut at `moment` (the in-process emulator's hook, or the rig).

    Valid for cuts after the PIN comparison decided: by R17 the step's persistent effect
    (the spent try) has happened, so the model's next state holds, minus the session that the
    power loss ended. The caller goes on with judged steps (power_cycle, queries)."""
    if moment is CutMoment.APDU:
        raise ValueError("a cut before the command runs leaves the model's state where it was: not a torn step")
    token = hsm.target.emulated_token()
    rig = None if token is not None else hsm.target.power_rig()
    if token is None and rig is None:
        pytest.skip(hsm.target.power_rig_missing())
    outcome = hsm.expect(cmd)
    hsm.admit(outcome)
    if rig is not None:
        hsm.recorder.context(f"{cmd} (power cut by the rig: {moment.value})", hsm.state.abstract, outcome.rules)
        _cut_by_rig(hsm, cmd, rig, moment)
    else:
        hsm.recorder.context(f"{cmd} (power cut)", hsm.state.abstract, outcome.rules)
        _cut_in_process(hsm, cmd, token, moment)
    hsm.ledger.note(outcome, None)
    hsm.history.append(Torn(outcome))  # type: ignore[arg-type]
    hsm.state = outcome.next.but(authenticated=False) if outcome.next.is_initialized else outcome.next
    return outcome


def moment_hook(moment: CutMoment) -> Callable[[object], None]:
    """An in-process power-loss hook that cuts where a rig armed for `moment` would (the
    emulator's persistence events; also how a replay redoes a rig's cut)."""
    from hsm_lifecycle.emulator import PersistencePoint, PowerLoss, Stage

    if moment is CutMoment.APDU:
        raise ValueError("the in-process tear hook cuts at persistence events; a cut before the APDU is a rig's")
    spent = (PersistencePoint.USER_TRY_SPENT, PersistencePoint.SO_TRY_SPENT)

    def hook(event: object) -> None:
        point, stage = getattr(event, "point"), getattr(event, "stage")
        if (moment is CutMoment.PIN_CHECK and point == PersistencePoint.PIN_COMPARED) or (
            moment is CutMoment.TRY_SPENT and point in spent and stage == Stage.AFTER
        ):
            raise PowerLoss(f"power cut at {point.value} ({stage.value})")

    return hook


def _cut_in_process(hsm: Device, cmd: Command, token: object, moment: CutMoment) -> None:
    from hsm_lifecycle.emulator import PowerLoss

    token.set_power_loss_hook(CutRecorder(moment_hook(moment), hsm.recorder))  # type: ignore[attr-defined]
    try:
        hsm.mapper.run(cmd, uninitialized=not hsm.state.is_initialized)
    except PowerLoss:
        pass
    else:
        hsm.fail(f"{cmd}: the power cut never happened (the hook did not fire)")
    finally:
        token.set_power_loss_hook(None)  # type: ignore[attr-defined]


def _cut_by_rig(hsm: Device, cmd: Command, rig: PowerRig, moment: CutMoment) -> None:
    """Arm the rig, send the command, see the token go and come back, connect to it again.
    A rig that cuts nothing, or cuts elsewhere, is a tool error (RigError), never a verdict."""
    custody = hsm.target.custody
    if custody is not None and cmd.so is not None:  # prove the SO-PIN now: an armed cut must hit `cmd`
        custody.admit_so(cmd.so == WRONG, f"{cmd} (power cut by the rig)")
    rig.arm(moment)
    hsm.recorder.event(EVENT_RIG_CUT, bytes([RIG_MOMENTS.index(moment.value)]))  # a replay redoes the cut here
    try:
        with custody.power_cut() if custody is not None else nullcontext():
            try:
                sw = hsm.mapper.run(cmd, uninitialized=not hsm.state.is_initialized)
            except TransportError:
                sw = None
    finally:
        status = rig.status()
        if status.cut_at is not moment:
            rig.disarm()
    if sw is not None:
        raise RigError(f"{cmd}: the token answered {sw} although the power-cut rig was armed for '{moment.value}' "
                       f"(rig: {status.state.value}): the rig cut nothing, so the step decides nothing")
    if status.cut_at is not moment:
        raise RigError(f"{cmd}: the token stopped answering but the power-cut rig says '{status.state.value}', not "
                       f"a cut at '{moment.value}': something else took the token away")
    hsm.mapper.transport.reinsert(REINSERT_TIMEOUT_S)
