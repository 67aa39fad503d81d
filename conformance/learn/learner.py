"""Active learning of the device with AALpy: L# (or KV) with caching, and an equivalence
oracle that follows the EMV studies' practice (prior-art.md §1): a random walk first, and once
it finds nothing, the Wp-method bounded by the size the walk suggests (plus a slack).

Optionally the model proposes counterexamples first: the shortest sequence on which the
hypothesis and the model's projection disagree is run on the device. If the device answers
differently from the hypothesis, that is a counterexample like any other; if it answers as the
hypothesis says, the device provably differs from the model on that sequence (a confirmed
divergence) and, with `fail_fast`, learning stops there. The model only proposes: every
answer comes from the device, and a run that does not stop early ends with the same walk and
Wp check either way.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from typing import Callable

from aalpy.base import Automaton, Oracle, SUL
from aalpy.learning_algs import run_KV, run_Lsharp
from aalpy.oracles import RandomWalkEqOracle, WpMethodEqOracle

from hsm_lifecycle.conformance.learn.alphabet import LearningAlphabet
from hsm_lifecycle.conformance.learn.diff import Divergence, compare
from hsm_lifecycle.conformance.learn.machine import LearnedMachine
from hsm_lifecycle.conformance.learn.projection import Projection
from hsm_lifecycle.conformance.learn.sul import LearningCost, DeviceSUL, Target
from hsm_lifecycle.model.commands import Command

ALGORITHMS = ("lsharp", "kv")


@dataclass(frozen=True)
class LearnSettings:
    algorithm: str = "lsharp"
    walk_steps: int = 3000  # random-walk steps per equivalence query (restarted after a counterexample)
    walk_reset: float = 0.09  # AALpy's default reset probability per step
    extra_states: int = 1  # Wp bound = states of the hypothesis the walk could not refute + this
    seed: int = 1
    guided: bool = True  # the model proposes counterexamples first
    fail_fast: bool = False  # stop at the first divergence the device confirms (needs guided)

    def __post_init__(self) -> None:
        if self.algorithm not in ALGORITHMS:
            raise ValueError(f"unknown algorithm {self.algorithm!r}: use {' or '.join(ALGORITHMS)}")
        if self.walk_steps < 0 or self.extra_states < 0 or not 0 < self.walk_reset < 1:
            raise ValueError("walk steps and extra states must be >= 0, the reset probability in (0, 1)")
        if self.fail_fast and not self.guided:
            raise ValueError("fail_fast needs guided: only the model's proposals can stop learning early")

    def to_dict(self) -> dict[str, object]:
        return {
            "algorithm": self.algorithm,
            "walk_steps": self.walk_steps,
            "walk_reset": self.walk_reset,
            "wp_extra_states": self.extra_states,
            "seed": self.seed,
            "model_guided": self.guided,
            "fail_fast": self.fail_fast,
        }


@dataclass
class OracleLog:
    """What the equivalence oracle did, round by round."""

    model_proposals: int = 0  # distinguishing sequences hypothesis/model run on the device
    model_counterexamples: int = 0  # ... on which the device contradicted the hypothesis
    confirmed: list[Divergence] = field(default_factory=list)  # ... on which it did not
    stopped_early: bool = False
    walk_counterexamples: int = 0
    wp_counterexamples: int = 0
    wp_bounds: list[int] = field(default_factory=list)  # the state bound of each Wp run
    walk_steps: int = 0
    wp_steps: int = 0

    def to_dict(self) -> dict[str, object]:
        return {
            "model_proposals": self.model_proposals,
            "model_counterexamples": self.model_counterexamples,
            "confirmed_divergences": len(self.confirmed),
            "stopped_early": self.stopped_early,
            "walk_counterexamples": self.walk_counterexamples,
            "wp_counterexamples": self.wp_counterexamples,
            "wp_bounds": list(self.wp_bounds),
            "walk_steps": self.walk_steps,
            "wp_steps": self.wp_steps,
        }


class ConformanceOracle(Oracle):
    """Model proposals (optional), random walk, then Wp with the walk's estimate as the bound.
    The inner oracles are built per query so they use whatever SUL the algorithm put in front
    (AALpy's cache wrapper)."""

    def __init__(
        self,
        alphabet: list,
        sul: SUL,
        settings: LearnSettings,
        log: OracleLog,
        projection: Projection | None,
        commands: tuple[Command, ...],
        on_round: Callable[[str, int], None] | None,
    ) -> None:
        super().__init__(alphabet, sul)
        self.settings = settings
        self.log = log
        self.projection = projection
        self.commands = commands
        self.on_round = on_round

    def find_cex(self, hypothesis: Automaton) -> tuple | list | None:
        if self.projection is not None:
            if self.on_round:
                self.on_round("model", hypothesis.size)
            cex = self._model_proposal(hypothesis)
            if cex is not None or self.log.stopped_early:
                return cex
        if self.on_round:
            self.on_round("walk", hypothesis.size)
        walk = RandomWalkEqOracle(self.alphabet, self.sul, num_steps=self.settings.walk_steps, reset_prob=self.settings.walk_reset)
        cex = walk.find_cex(hypothesis) if self.settings.walk_steps else None
        self._account(walk, "walk_steps")
        if cex is not None:
            self.log.walk_counterexamples += 1
            return cex
        bound = hypothesis.size + self.settings.extra_states
        self.log.wp_bounds.append(bound)
        if self.on_round:
            self.on_round("wp", hypothesis.size)
        wp = WpMethodEqOracle(self.alphabet, self.sul, max_number_of_states=bound)
        cex = wp.find_cex(hypothesis)
        self._account(wp, "wp_steps")
        if cex is not None:
            self.log.wp_counterexamples += 1
        return cex

    def _model_proposal(self, hypothesis: Automaton) -> list | None:
        diff = compare(LearnedMachine.from_aalpy(hypothesis, self.commands), self.projection)  # type: ignore[arg-type]
        if diff.divergence is None:
            return None
        inputs = [str(c) for c in diff.divergence.inputs]
        if any(c.inputs == diff.divergence.inputs for c in self.log.confirmed):
            return None  # already confirmed on the device; the walk and Wp go on
        self.log.model_proposals += 1
        answered = self.sul.query(inputs)
        self.num_queries += 1
        self.num_steps += len(inputs)
        for k, (device, hypothesised) in enumerate(zip(answered, diff.divergence.observed)):
            if device != hypothesised:
                self.log.model_counterexamples += 1
                return inputs[: k + 1]
        self.log.confirmed.append(diff.divergence)
        self.log.stopped_early = self.settings.fail_fast
        return None

    def _account(self, inner: Oracle, field_name: str) -> None:
        self.num_queries += inner.num_queries
        self.num_steps += inner.num_steps
        setattr(self.log, field_name, getattr(self.log, field_name) + inner.num_steps)


@dataclass(frozen=True)
class LearnResult:
    machine: LearnedMachine
    seconds: float
    cost: dict[str, int]  # device resets, steps, APDUs, cached queries (sul.LearningCost)
    aalpy: dict[str, object]  # AALpy's return_data (its own query/step counts, rounds, times)
    oracle: dict[str, object]
    settings: LearnSettings
    confirmed: tuple[Divergence, ...] = ()  # divergences the device confirmed while learning
    stopped_early: bool = False  # fail_fast stopped at the first one: the machine is partial

    @property
    def states(self) -> int:
        return self.machine.size


def learn(
    target: Target,
    alphabet: LearningAlphabet,
    settings: LearnSettings = LearnSettings(),
    projection: Projection | None = None,
    on_round: Callable[[str, int], None] | None = None,
    cost: LearningCost | None = None,
) -> LearnResult:
    """Learn the target's Mealy machine over the alphabet; `projection` is needed when the
    settings are model-guided. AALpy's random walk draws from the module-level `random`, so
    it is seeded here for reproducible runs."""
    if settings.guided and projection is None:
        raise ValueError("model-guided learning needs the model's projection")
    random.seed(settings.seed)
    sul = DeviceSUL(target, alphabet, cost)
    letters = sul.letters
    log = OracleLog()
    oracle = ConformanceOracle(letters, sul, settings, log, projection if settings.guided else None, alphabet.commands, on_round)
    run = run_Lsharp if settings.algorithm == "lsharp" else run_KV
    began = time.perf_counter()
    model, info = run(letters, sul, oracle, automaton_type="mealy", cache_and_non_det_check=True, return_data=True, print_level=0)
    seconds = time.perf_counter() - began
    return LearnResult(
        machine=LearnedMachine.from_aalpy(model, alphabet.commands),
        seconds=seconds,
        cost=sul.cost.to_dict(),
        aalpy={k: v for k, v in info.items() if k != "characterization_set"},
        oracle=log.to_dict(),
        settings=settings,
        confirmed=tuple(log.confirmed),
        stopped_early=log.stopped_early,
    )
