"""One token at a start state: it takes fuzzed actions and collects the invariants they break.

A file-backed token also checks after every write that its state file loads and equals the
live state.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from hsm_lifecycle.conformance.fuzz.grammar import Action, Power, SELECT_APPLET, describe
from hsm_lifecycle.conformance.fuzz.invariants import Invariants, durable
from hsm_lifecycle.conformance.fuzz.starts import Campaign, Diverged, ModelDriver, Start
from hsm_lifecycle.emulator import Fault, PowerCut, PowerLoss, StateFileError, VirtualToken
from hsm_lifecycle.protocol import CLA_ISO, CLA_PROPRIETARY

@dataclass(frozen=True)
class Finding:
    campaign: str
    start: str
    problem: str
    actions: tuple[str, ...]  # the actions from the start up to the one that broke it

    def to_json(self) -> dict[str, object]:
        return {"campaign": self.campaign, "start": self.start, "problem": self.problem, "actions": list(self.actions)}


@dataclass
class FuzzedToken:
    """One token at a start state; `apply` sends actions and collects broken invariants."""

    campaign: Campaign
    start: Start
    path: Path | None = None  # file-backed when given: then the state file is checked too
    faults: frozenset[Fault] = frozenset()  # only to show the invariants catch a broken token
    token: VirtualToken = field(init=False)
    findings: list[Finding] = field(default_factory=list)
    log: list[str] = field(default_factory=list)
    sws: Counter[str] = field(default_factory=Counter)
    answers: Counter[tuple[int, str]] = field(default_factory=Counter)  # (INS, SW) of the applet's own CLAs
    apdus: int = 0
    cuts: int = 0
    file_checks: int = 0

    def __post_init__(self) -> None:
        self.token = VirtualToken.manufacture(state_path=self.path, profile=self.campaign.emulator, faults=self.faults)
        driver = ModelDriver(self.token, self.campaign.model)
        for cmd in self.start.commands:
            driver.run(cmd)
        for capdu in self.start.extra:
            answer = self.token.transmit(capdu)
            if answer[-2:] != b"\x90\x00":
                raise Diverged(f"start {self.start.name!r}: {capdu.hex().upper()} answered {answer.hex().upper()}")
        self.invariants = Invariants(self.campaign.emulator)

    def apply(self, act: Action, cut_at: int | None = None) -> None:
        self.log.append(describe(act))
        if isinstance(act, Power):
            if act.kind == "reset":
                self.token.reset()
            else:
                self.token.power_off()
                self.token.power_on()
            self._expect(["a session survived a reset"] if self.token.status().authenticated else [])
            return
        self._send(act, cut_at)

    def _send(self, capdu: bytes, cut_at: int | None) -> None:
        before, writes = self.token.status(), self.token.writes
        hook = PowerCut(at=cut_at)
        self.token.set_power_loss_hook(hook)
        self.apdus += 1
        try:
            rapdu = self.token.transmit(capdu)
        except PowerLoss:
            self.cuts += 1
            self.token.set_power_loss_hook(None)
            self.token.power_on()
            self._expect(self.invariants.check_cut(before, self.token.status(), hook.events))
            self.log.append("(power cut)")
            self.token.transmit(SELECT_APPLET)
        else:
            self.token.set_power_loss_hook(None)
            sw = rapdu[-2:].hex().upper()
            self.sws[sw] += 1
            if len(capdu) >= 4 and capdu[0] in (CLA_ISO, CLA_PROPRIETARY):
                self.answers[(capdu[1], sw)] += 1
            self._expect(self.invariants.check(capdu, rapdu, before, self.token.status(), hook.events))
        error = self.token.last_internal_error
        if error is not None:
            self.token.last_internal_error = None
            self._expect([f"internal error (6F00): {error!r}"])
        if self.path is not None and self.token.writes != writes:
            self._expect(self._file_loads())

    def _file_loads(self) -> list[str]:
        """The state file opens and holds exactly the live durable state."""
        assert self.path is not None
        self.file_checks += 1
        try:
            stored = VirtualToken.open(self.path).status()
        except StateFileError as exc:
            return [f"the state file no longer loads: {exc}"]
        if durable(stored) != durable(self.token.status()):
            return ["the state file differs from the live token's durable state"]
        return []

    def _expect(self, problems: list[str]) -> None:
        for problem in problems:
            self.findings.append(Finding(self.campaign.name, self.start.name, problem, tuple(self.log)))
