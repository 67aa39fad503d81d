"""The in-memory emulator as a learning target: every reset is a freshly manufactured token."""

from __future__ import annotations

from dataclasses import dataclass, field

from hsm_lifecycle.conformance.learn.alphabet import LearningAlphabet
from hsm_lifecycle.conformance.learn.sul import OK, LearningCost, CountingTransport, DeviceSession, LearningAborted, Target
from hsm_lifecycle.conformance.mapper import Mapper
from hsm_lifecycle.conformance.trace import TraceRecorder, TracingTransport
from hsm_lifecycle.conformance.transport.base import Transport
from hsm_lifecycle.conformance.transport.inprocess import InProcessTransport
from hsm_lifecycle.emulator import Fault, VirtualToken
from hsm_lifecycle.model.profiles import EMULATOR_DEFAULTS, Profile
from hsm_lifecycle.model.states import ExtState


@dataclass
class EmulatorTarget(Target):
    """Fresh tokens with the emulator's default profile (which the model's EMULATOR_DEFAULTS
    profile mirrors) and, for the project's own tests, fault switches."""

    faults: frozenset[Fault] = field(default_factory=frozenset)
    kind: str = "emulator"

    def open_session(self, alphabet: LearningAlphabet, cost: LearningCost, recorder: TraceRecorder | None = None) -> DeviceSession:
        token = VirtualToken.manufacture(faults=self.faults)
        transport: Transport = CountingTransport(InProcessTransport(token), cost)
        if recorder is not None:
            transport = TracingTransport(transport, recorder)
        transport.connect()
        mapper = Mapper(transport)
        # Every client selects the applet first; the learned machine starts from there.
        selected = mapper.select().sw_hex
        if selected != OK:
            raise LearningAborted(f"the emulator answered SELECT of the applet with {selected}")
        return DeviceSession(mapper=mapper, max_keys=alphabet.max_keys, uninitialized=True, recorder=recorder)

    def start_state(self) -> ExtState:
        return ExtState.shipped()

    @property
    def model_profile(self) -> Profile:
        return EMULATOR_DEFAULTS

    def describe(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "reset": "a freshly manufactured in-memory VirtualToken, applet selected",
            "faults": sorted(f.value for f in self.faults),
            "profile": EMULATOR_DEFAULTS.name,
        }
