"""Cost classes (rules.md "Cost classes"): what a step or a test can do to a real token.

The one definition: the model's catalog and paths, the suite's interlocks and markers and the
evidence records all use `CostClass`. A member is its lowercase name as a string, so it goes
into JSON, markers and messages as `free`, `tries`, ...; it compares by harm, cheapest first,
and a path costs the most expensive step it takes. `operator` ranks last: it needs a person,
not consent.
"""

from __future__ import annotations

from enum import StrEnum


class CostClass(StrEnum):
    FREE = "free"
    TRIES = "tries"
    WIPES = "wipes"
    IRREVERSIBLE = "irreversible"
    OPERATOR = "operator"

    @classmethod
    def parse(cls, name: str) -> CostClass:
        """A cost class from its name in any case; ValueError names the choices."""
        try:
            return cls(name.lower())
        except ValueError:
            raise ValueError(f"unknown cost class {name!r}: use free, tries, wipes, irreversible or operator") from None

    @property
    def rank(self) -> int:
        """0 for free up to 4 for operator."""
        return COST_CLASSES.index(self)

    # Ordered by harm, not alphabetically as the str base would; only against another class.
    def __lt__(self, other: object) -> bool:
        return self.rank < _cost(other).rank

    def __le__(self, other: object) -> bool:
        return self.rank <= _cost(other).rank

    def __gt__(self, other: object) -> bool:
        return self.rank > _cost(other).rank

    def __ge__(self, other: object) -> bool:
        return self.rank >= _cost(other).rank


def _cost(other: object) -> CostClass:
    if not isinstance(other, CostClass):
        raise TypeError(f"a cost class compares only with a cost class, not {other!r}")
    return other


# The members under short names, for the model's tables of rules and transitions.
FREE = CostClass.FREE
TRIES = CostClass.TRIES
WIPES = CostClass.WIPES
IRREVERSIBLE = CostClass.IRREVERSIBLE
OPERATOR = CostClass.OPERATOR

COST_CLASSES: tuple[CostClass, ...] = tuple(CostClass)  # cheapest first
COST_MEANINGS: dict[CostClass, str] = {
    FREE: "reads and status queries only",
    TRIES: "spends user or SO tries but restores them; never lets SO tries drop below a floor (default 5 left)",
    WIPES: "re-initializes the token: every key on it is lost",
    IRREVERSIBLE: "blocks the SO-PIN (recovery costs one of the 5 firmware updates)",
    OPERATOR: "needs a person: a firmware update in the portal",
}
COST_ALLOWED: dict[CostClass, str] = {
    FREE: "always",
    TRIES: "always; the floor is an option",
    WIPES: "only with --hsm-serial naming that token's serial",
    IRREVERSIBLE: "only with --hsm-serial and --hsm-allow-irreversible",
    OPERATOR: "only interactively, with the steps printed and the outcome verified",
}


def cost_rank(cost: str) -> int:
    """The rank of a cost class given as a member or its name (ValueError otherwise)."""
    return CostClass(cost).rank
