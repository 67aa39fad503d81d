"""What the evidence bundle needs from the model, as plain data.

The bundle and the report read the rule catalog, the transitions and the states through this
one view, so the report is indexed by the model's own IDs (nothing restated by hand) and the
bundle's tests can build a small view without the whole model.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

# rules.md: the report must say that the SFR column is a proposal; the model carries the wording.
from hsm_lifecycle.model.catalog import SFR_CAVEAT

# Renders the state diagram to `path` with the given transition ids marked as covered.
DiagramRenderer = Callable[[Path, set[str]], None]


@dataclass(frozen=True)
class RuleInfo:
    id: str
    title: str
    statement: str
    authority: str
    source: str
    sfrs: tuple[str, ...]
    cost: str


@dataclass(frozen=True)
class TransitionInfo:
    id: str
    source: str
    dest: str
    command: str
    rules: tuple[str, ...]
    cost: str


@dataclass(frozen=True)
class ModelView:
    rules: tuple[RuleInfo, ...]
    transitions: tuple[TransitionInfo, ...]
    states: tuple[str, ...]
    render_diagram: DiagramRenderer | None = None
    sfr_caveat: str = SFR_CAVEAT


    def rule(self, rule_id: str) -> RuleInfo | None:
        return next((r for r in self.rules if r.id == rule_id), None)

    def transitions_for(self, rule_id: str) -> tuple[TransitionInfo, ...]:
        return tuple(t for t in self.transitions if rule_id in t.rules)

    @classmethod
    def load(cls) -> "ModelView":
        """The view of the project's model (model.RULES, TRANSITIONS, STATES, model.diagram)."""
        from hsm_lifecycle.model import RULES, STATES, TRANSITIONS, diagram

        def render(path: Path, covered: set[str]) -> None:
            diagram.render(path, covered=covered)

        return cls(
            rules=tuple(_rule_info(r) for r in RULES.values()),
            transitions=tuple(_transition_info(t) for t in TRANSITIONS),
            states=tuple(str(s) for s in STATES),
            render_diagram=render,
        )


def _text(value: object) -> str:
    # Enum members (states, authorities, cost classes) print as their value.
    return str(getattr(value, "value", value))


def _rule_info(rule: object) -> RuleInfo:
    return RuleInfo(
        id=str(getattr(rule, "id")),
        title=str(getattr(rule, "title")),
        statement=str(getattr(rule, "statement", "")),
        authority=_text(getattr(rule, "authority", "")),
        source=str(getattr(rule, "source", "")),
        sfrs=tuple(str(s) for s in getattr(rule, "sfrs", ())),
        cost=_text(getattr(rule, "cost", "")),
    )


def _transition_info(transition: object) -> TransitionInfo:
    return TransitionInfo(
        id=str(getattr(transition, "id")),
        source=_text(getattr(transition, "source")),
        dest=_text(getattr(transition, "dest")),
        command=_text(getattr(transition, "command", "")),
        rules=tuple(str(r) for r in getattr(transition, "rules", ())),
        cost=_text(getattr(transition, "cost", "")),
    )
