"""What would make a token's state worse, in the owner's words: doctor's danger lines.

The routes, the losses and what is admitted after them all come from `model.dangers`; this
module only groups dangers that share a route and words them (the first line doctor prints
when a loss is one mistake away, and the "then:" line of the dangers list).
"""

from __future__ import annotations

from dataclasses import dataclass

from hsm_lifecycle.model.catalog import RULES
from hsm_lifecycle.model.commands import Command
from hsm_lifecycle.model.dangers import KEYS_ERASED, LAST_UPDATE_SPENT, LOSSES, Danger, Dangers, Route, WordForm
from hsm_lifecycle.protocol import FIRMWARE_UPDATES_WHILE_SO_BLOCKED


@dataclass(frozen=True)
class DangerGroup:
    """Dangers that share one route: one line for the owner, several losses at its end."""

    route: Route
    dangers: tuple[Danger, ...]

    @property
    def imminent(self) -> bool:
        return any(d.imminent for d in self.dangers)

    @property
    def by_mistakes_alone(self) -> bool:
        return self.dangers[0].by_mistakes_alone

    @property
    def stuck(self) -> bool:
        """The route leaves the token blocked: what is still admitted there is worth saying."""
        return any(d.loss.stuck for d in self.dangers)

    @property
    def how(self) -> str:
        actions = self.route.actions
        if not actions:
            return "by mistakes alone"
        return f"with {actions} deliberate step{'s' if actions > 1 else ''}"


def group_dangers(ahead: Dangers) -> tuple[DangerGroup, ...]:
    groups: dict[tuple[Command, ...], list[Danger]] = {}
    for danger in ahead.dangers:
        groups.setdefault(danger.route.steps, []).append(danger)
    return tuple(DangerGroup(found[0].route, tuple(found)) for found in groups.values())


def losses_text(group: DangerGroup, keys: int, form: WordForm) -> str:
    """"losing the key for good and blocking both PINs" (form "doing"), or the "does" form."""
    return _join([d.loss.words(form, keys) for d in group.dangers])


def ways_out_text(group: DangerGroup, keys: int) -> str:
    """What is left once the route has been taken: the owner actions the model refuses there,
    and those it admits with what they cost in turn."""
    ways = group.dangers[0].ways_out
    refused = [w for w in ways if not w.admitted and w.key in ("reset-user-pin", "re-initialize")]
    parts = []
    by_rules: dict[tuple[str, ...], list[str]] = {}
    for way in refused:
        by_rules.setdefault(way.rules, []).append(way.label)
    for rules, labels in by_rules.items():
        verb = "is" if len(labels) == 1 else "are"
        parts.append(f"{' and '.join(labels)} {verb} then refused ({rule_words(rules)})")
    admitted = [w for w in ways if w.admitted and w.key in ("re-initialize", "firmware-update")]
    login = next((w for w in ways if w.key == "portal-login"), None)
    outs: list[tuple[str, str]] = []
    for way in admitted:
        costs = [LOSSES[loss].words("does", keys) for loss in way.losses if loss in LOSSES]
        if way.counted_update and LAST_UPDATE_SPENT not in way.losses:
            costs.append(f"uses one of the {FIRMWARE_UPDATES_WHILE_SO_BLOCKED} updates a blocked SO-PIN admits")
        if way.key == "firmware-update" and login is not None and not login.admitted:
            costs.append(f"needs another working HSM to log into the portal ({rule_words(login.rules)})")
        outs.append((way.label, _join(costs) if costs else ""))
    outs_text = [f"{label}, {cost}" if cost else label for label, cost in outs]
    if len(outs) == 1:
        parts.append(f"the only way out, {outs_text[0]}")
    elif outs:
        parts.append(f"the ways out: {'; '.join(f'{label} ({cost})' if cost else label for label, cost in outs)}")
    else:
        parts.append("nothing gets the token out of that state")
    return "; ".join(parts)


def warning_line(group: DangerGroup, ahead: Dangers) -> str:
    """One line, said first: how near the loss is, what it takes away, and what is left after."""
    keys = ahead.state.keys
    line = f"DANGER: you are {group.route.summary} away from {losses_text(group, keys, 'doing')}"
    line += f": {ways_out_text(group, keys)}." if group.stuck else "."
    # The way out may already erase the keys today: say so, it is what the owner would try.
    outs = {w.command.name for w in group.dangers[0].ways_out if w.admitted}
    erasing = next(
        (
            d for d in ahead.dangers
            if d.loss.id == KEYS_ERASED and len(d.route.steps) == 1 and d.route.actions == 1
            and d.route.steps[0].name in outs
        ),
        None,
    )  # fmt: skip
    if erasing is not None:
        line += f" Even now, {erasing.route.summary} {erasing.loss.words('does', keys)}."
    return line


def _join(words: list[str]) -> str:
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} and {words[-1]}"


def rule_words(ids: tuple[str, ...]) -> str:
    return ", ".join(f"{r} {RULES[r].title}" if r in RULES else r for r in ids)
