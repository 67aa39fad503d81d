"""The lifecycle model of the SmartCard-HSM / Nitrokey HSM 2: the single source of truth.

    from hsm_lifecycle.model import ExtState, Command, Outcome, oracle, catalog, profiles
    out = oracle.expect(ExtState.shipped(), Command.initialize(), profile=profiles.EMULATOR_DEFAULTS)

States and extended variables (`ExtState`), the abstract alphabet (`Command`), the guarded
transitions (`TRANSITIONS`, run by a `transitions` machine), the rule catalog (`catalog.RULES`),
device profiles for the open behaviours (`profiles`), the oracle, the exhaustive explorer,
shortest/cheapest paths to a transition (`paths`) and the diagram (`model.diagram`).
"""

from hsm_lifecycle.model import catalog, oracle, paths, profiles
from hsm_lifecycle.model.catalog import RULES, Rule
from hsm_lifecycle.model.commands import Command
from hsm_lifecycle.model.explorer import Bounds, Exploration, explore
from hsm_lifecycle.model.lifecycle import BY_ID, TRANSITIONS, Transition
from hsm_lifecycle.model.machine import ModelError
from hsm_lifecycle.model.oracle import Outcome, expect
from hsm_lifecycle.model.profiles import EMULATOR_DEFAULTS, SMARTCARD_HSM, Profile, UnresolvedBehaviour
from hsm_lifecycle.model.states import STATES, ExtState, abstract_state

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
