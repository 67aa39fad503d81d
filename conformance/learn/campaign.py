"""One learning run end to end: project the model, learn the device, diff the two, and replay
the distinguishing sequence (if any) on the device with its APDUs recorded as a trace."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from hsm_lifecycle.conformance.interlocks import InterlockRefused
from hsm_lifecycle.conformance.learn.alphabet import LearningAlphabet
from hsm_lifecycle.conformance.learn.diff import Diff, Divergence, compare
from hsm_lifecycle.conformance.learn.learner import LearnResult, LearnSettings, learn
from hsm_lifecycle.conformance.learn.projection import Projection, project
from hsm_lifecycle.conformance.learn.sul import LearningCost, LearningAborted, Target
from hsm_lifecycle.conformance.learn.token_target import RealTokenTarget
from hsm_lifecycle.conformance.trace import TraceLine, TraceRecorder
from hsm_lifecycle.model.commands import Command


@dataclass(frozen=True)
class Replay:
    """The distinguishing sequence run once more on the device, every APDU recorded."""

    inputs: tuple[Command, ...]
    device: tuple[str, ...]  # what the device answered this time
    learned: tuple[str, ...]  # what the learned machine says it answers
    trace: tuple[TraceLine, ...]

    @property
    def confirmed(self) -> bool:
        """The device answers as the learned machine does, so the difference is the device's."""
        return self.device == self.learned

    def to_dict(self) -> dict[str, object]:
        return {
            "inputs": [str(c) for c in self.inputs],
            "device": list(self.device),
            "learned": list(self.learned),
            "confirmed": self.confirmed,
            "apdus": sum(1 for line in self.trace if not line.is_control),
        }


@dataclass(frozen=True)
class LearnReport:
    started: str
    target: dict[str, object]
    alphabet: LearningAlphabet
    projection: Projection
    result: LearnResult
    diff: Diff
    replay: Replay | None
    seconds: float  # the whole run: projection, learning, diff and replay

    @property
    def equivalent(self) -> bool:
        return self.diff.equivalent


def run_learning(
    target: Target,
    alphabet: LearningAlphabet,
    settings: LearnSettings = LearnSettings(),
    on_round: Callable[[str, int], None] | None = None,
    trace_path: Path | None = None,
) -> LearnReport:
    """Raises LearningAborted when the target had to stop (a real token's watchdog, or an
    interlock), LearningRefused before anything was changed on a real token."""
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    began = time.perf_counter()
    cost = LearningCost()
    try:
        if isinstance(target, RealTokenTarget):
            target.prepare(cost)
        projection = project(alphabet, target.model_profile, target.start_state())
        result = learn(target, alphabet, settings, projection=projection, on_round=on_round, cost=cost)
        diff = compare(result.machine, projection)
        replay = None
        if diff.divergence is not None:
            replay = replay_divergence(target, alphabet, projection, diff.divergence, cost, trace_path)
    except InterlockRefused as exc:
        raise LearningAborted(f"the interlock refused an APDU: {exc.reason}") from None
    finally:
        target.finish()
    return LearnReport(
        started=started,
        target=target.describe(),
        alphabet=alphabet,
        projection=projection,
        result=result,
        diff=diff,
        replay=replay,
        seconds=time.perf_counter() - began,
    )


def replay_divergence(
    target: Target,
    alphabet: LearningAlphabet,
    projection: Projection,
    divergence: Divergence,
    cost: LearningCost,
    trace_path: Path | None,
) -> Replay:
    """Run the distinguishing inputs from a fresh reset; the trace carries the model's state
    before each step and the rules of the transition the model takes there."""
    recorder = TraceRecorder(path=trace_path)
    recorder.context("reset", projection.start.abstract)
    session = target.open_session(alphabet, cost, recorder=recorder)
    answers = []
    try:
        for step in projection.run_model(divergence.inputs):
            recorder.context(str(step.command), step.before.abstract, step.rules)
            answers.append(session.execute(step.command))
    finally:
        target.close_session(session)
        recorder.flush()
    return Replay(
        inputs=divergence.inputs,
        device=tuple(answers),
        learned=divergence.observed,
        trace=tuple(recorder.lines),
    )
