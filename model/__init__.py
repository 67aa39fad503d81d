"""The lifecycle model of the SmartCard-HSM / Nitrokey HSM 2: the single source of truth.

    from model import ExtState, Command, Outcome, oracle, catalog, profiles
    out = oracle.expect(ExtState.shipped(), Command.initialize(), profile=profiles.EMULATOR_DEFAULTS)

States and extended variables (`ExtState`), the abstract alphabet (`Command`), the guarded
transitions (`TRANSITIONS`, run by a `transitions` machine), the rule catalog (`catalog.RULES`),
device profiles for the open behaviours (`profiles`), the oracle, the exhaustive explorer,
shortest/cheapest paths to a transition (`paths`) and the diagram (`model.diagram`).
"""

from model import catalog, oracle, paths, profiles
from model.catalog import RULES, Rule
from model.commands import Command
from model.explorer import Bounds, Exploration, explore
from model.lifecycle import BY_ID, TRANSITIONS, Transition
from model.machine import ModelError
from model.oracle import Outcome, expect
from model.profiles import EMULATOR_DEFAULTS, SMARTCARD_HSM, Profile, UnresolvedBehaviour
from model.states import STATES, ExtState, abstract_state

__all__ = [
    "BY_ID",
    "Bounds",
    "Command",
    "EMULATOR_DEFAULTS",
    "Exploration",
    "ExtState",
    "ModelError",
    "Outcome",
    "Profile",
    "RULES",
    "Rule",
    "SMARTCARD_HSM",
    "STATES",
    "TRANSITIONS",
    "Transition",
    "UnresolvedBehaviour",
    "abstract_state",
    "catalog",
    "expect",
    "explore",
    "oracle",
    "paths",
    "profiles",
]
