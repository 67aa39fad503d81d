"""Learned machine against the model's projection: a breadth-first walk of their product.

Every reachable pair (learned state, projected state) and every input is checked: the learned
output must be one the model admits there. Breadth-first order makes the first failure a
shortest distinguishing input sequence. With no failure the device's learned behaviour is
within the model's; the pairing then also says whether the two machines are the same up to
renaming (one projected state per learned state and back), or the device resolved some of the
model's open output sets identically in states the model keeps apart.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from hsm_lifecycle.conformance.learn.alphabet import KEY_BOUND
from hsm_lifecycle.conformance.learn.machine import LearnedMachine
from hsm_lifecycle.conformance.learn.projection import Projection, output_label
from hsm_lifecycle.model.commands import Command
from hsm_lifecycle.protocol import describe_sw


@dataclass(frozen=True)
class Divergence:
    """The shortest input sequence on which the learned machine leaves the model."""

    inputs: tuple[Command, ...]
    observed: tuple[str, ...]  # the learned machine's outputs, step by step
    admitted: tuple[frozenset[str], ...]  # what the model admits, step by step
    model_states: tuple[str, ...]  # the model's extended state before each step
    transitions: tuple[str, ...]  # the model transition each step takes
    rules: tuple[str, ...]  # rules of the step that diverges

    @property
    def last(self) -> int:
        return len(self.inputs) - 1

    def to_dict(self) -> dict[str, object]:
        return {
            "inputs": [str(c) for c in self.inputs],
            "observed": list(self.observed),
            "expected": [output_label(a) for a in self.admitted],
            "model_states": list(self.model_states),
            "transitions": list(self.transitions),
            "rules": list(self.rules),
            "explanation": self.explain(),
        }

    def explain(self) -> str:
        command = self.inputs[self.last]
        text = (
            f"after {len(self.inputs) - 1} inputs the device answers {command} with {describe_sw(self.observed[self.last])}; "
            f"the model ({self.transitions[self.last]}, rules {' '.join(self.rules) or '-'}) admits "
            f"{output_label(self.admitted[self.last])} in {self.model_states[self.last]}"
        )
        if KEY_BOUND in (self.observed[self.last], *self.admitted[self.last]):
            text += f" ({KEY_BOUND}: the key bound was reached, so generate_key was not sent; the device's count is its own ENUMERATE OBJECTS)"
        return text


@dataclass(frozen=True)
class Diff:
    divergence: Divergence | None
    pairs: frozenset[tuple[int, int]]  # reachable (learned, projected) state pairs
    learned_states: int
    projected_states: int

    @property
    def equivalent(self) -> bool:
        """No input sequence on which the learned machine answers what the model does not admit."""
        return self.divergence is None

    @property
    def isomorphic(self) -> bool:
        """Equivalent and the pairing is one-to-one and onto both machines."""
        if not self.equivalent:
            return False
        left = {l for l, _ in self.pairs}
        right = {p for _, p in self.pairs}
        return len(self.pairs) == len(left) == len(right) == self.learned_states == self.projected_states

    def model_states_of(self, learned: int) -> list[int]:
        return sorted(p for l, p in self.pairs if l == learned)

    def to_dict(self) -> dict[str, object]:
        return {
            "verdict": "equivalent" if self.equivalent else "differs",
            "isomorphic": self.isomorphic,
            "learned_states": self.learned_states,
            "projected_states": self.projected_states,
            "product_pairs": len(self.pairs),
            "divergence": None if self.divergence is None else self.divergence.to_dict(),
        }


def compare(learned: LearnedMachine, projection: Projection) -> Diff:
    if learned.alphabet != projection.alphabet:
        raise ValueError("the learned machine and the projection are over different alphabets")
    start = (0, 0)
    parent: dict[tuple[int, int], tuple[tuple[int, int], int] | None] = {start: None}
    queue = deque([start])
    while queue:
        pair = queue.popleft()
        l, p = pair
        for i, command in enumerate(learned.alphabet):
            edge = projection.edges[p][i]
            if not edge.admits(learned.outputs[l][i]):
                return Diff(_divergence(learned, projection, parent, pair, i), frozenset(parent), learned.size, projection.size)
            nxt = (learned.targets[l][i], edge.target)
            if nxt not in parent:
                parent[nxt] = (pair, i)
                queue.append(nxt)
    return Diff(None, frozenset(parent), learned.size, projection.size)


def _divergence(
    learned: LearnedMachine,
    projection: Projection,
    parent: dict[tuple[int, int], tuple[tuple[int, int], int] | None],
    pair: tuple[int, int],
    last: int,
) -> Divergence:
    indices = [last]
    link = parent[pair]
    while link is not None:
        pair, i = link
        indices.append(i)
        link = parent[pair]
    inputs = tuple(learned.alphabet[i] for i in reversed(indices))
    steps = projection.run_model(inputs)
    return Divergence(
        inputs=inputs,
        observed=tuple(learned.run(inputs)),
        admitted=tuple(s.outputs for s in steps),
        model_states=tuple(str(s.before) for s in steps),
        transitions=tuple(s.transition for s in steps),
        rules=steps[-1].rules,
    )
