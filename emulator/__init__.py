"""The emulated SmartCard-HSM / Nitrokey HSM 2 (an independent implementation of the protocol).

Public API (docs/design.md, docs/emulator.md):

    VirtualToken.manufacture(state_path=None | Path, profile=Profile(), faults=frozenset())
    VirtualToken.open(state_path, faults=frozenset())
    token.power_on() / token.power_off() / token.reset() / token.transmit(capdu) / token.serial

The emulator never imports `model` or `conformance`.
"""

from hsm_lifecycle.emulator.profile import Fault, Profile, parse_faults
from hsm_lifecycle.emulator.state import StateFileError
from hsm_lifecycle.emulator.store import PersistencePoint, PowerCut, PowerEvent, PowerLoss, Stage
from hsm_lifecycle.emulator.token import TokenStatus, VirtualToken

__all__ = [
    "Fault",
    "PersistencePoint",
    "PowerCut",
    "PowerEvent",
    "PowerLoss",
    "Profile",
    "Stage",
    "StateFileError",
    "TokenStatus",
    "VirtualToken",
    "parse_faults",
]
