"""Start states for fuzzing, reached the way the conformance suite reaches them.

The model's shortest path to a transition out of the wanted state, sent through the
conformance mapper and judged by the oracle step by step (a start that diverges from the model
is itself a finding), then raw APDUs for objects the alphabet cannot make. A `Campaign` pairs
an emulator profile with the model profile that predicts it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from hsm_lifecycle import cvc, tlv
from hsm_lifecycle.conformance.fuzz.grammar import (
    SELECT_APPLET,
    VERIFY_DEFAULT,
    encode,
    init_apdu,
    write_apdu,
)
from hsm_lifecycle.conformance.mapper import Mapper
from hsm_lifecycle.conformance.transport.inprocess import InProcessTransport
from hsm_lifecycle.emulator import Profile, VirtualToken
from hsm_lifecycle.model import Bounds, Command, EMULATOR_DEFAULTS, Exploration, ExtState, explore
from hsm_lifecycle.model import Profile as ModelProfile
from hsm_lifecycle.model.oracle import expect
from hsm_lifecycle.protocol import (
    CLA_ISO,
    FIRMWARE_UPDATES_WHILE_SO_BLOCKED,
    Ins,
    OID_TA_RSA_V1_5_SHA256,
    PIN_USER,
    SW,
)

class Diverged(Exception):
    """The token answered a start path's step differently from the model."""


class PortalStandIn:
    """What the update portal does to a token, as design.md's firmware_update / portal_login
    rows say, for reaching states only (the real portal is another issue's; device
    authentication is left out: it writes nothing)."""

    def __init__(self, token: VirtualToken) -> None:
        self.token = token

    def firmware_update(self, mapper: Mapper) -> str:
        status = self.token.status()
        blocked = status.initialized and status.so_tries == 0
        if blocked and status.so_blocked_updates < FIRMWARE_UPDATES_WHILE_SO_BLOCKED:
            counted = True
        elif status.user_keys == 0:
            counted = False
        else:
            return "update-refused-limit" if blocked else "update-refused-keys"
        self.token.firmware_update(counted=counted)
        mapper.keys.clear()
        # The updated token comes back deselected; the host reconnects and selects the applet,
        # as the model's states are those of the selected applet.
        mapper.transport.power_cycle()
        mapper.select()
        return "update-ok"

    def login(self, mapper: Mapper) -> str:
        query = mapper.send(bytes([CLA_ISO, Ins.VERIFY, 0, PIN_USER])).sw
        if query != SW.OK and not (query & 0xFFF0 == 0x63C0 and query & 0x0F):
            return "login-refused"
        pin = mapper.pins.user_pin
        answer = mapper.send(bytes([CLA_ISO, Ins.VERIFY, 0, PIN_USER, len(pin)]) + pin).sw
        return "login-ok" if answer == SW.OK else "login-refused"


class ModelDriver:
    """Runs model commands on a token through the conformance mapper; the oracle judges each."""

    def __init__(self, token: VirtualToken, profile: ModelProfile) -> None:
        self.token = token
        self.profile = profile
        self.mapper = Mapper(InProcessTransport(token))
        self.mapper.portal = PortalStandIn(token)
        self.state = ExtState.shipped()
        self.mapper.transport.connect()
        self.mapper.select()  # the model's states are those of the selected applet

    def run(self, cmd: Command) -> str:
        outcome = expect(self.state, cmd, self.profile)
        output = self.mapper.run(cmd, uninitialized=not self.state.is_initialized)
        if not outcome.accepts(output):
            raise Diverged(f"{outcome.describe()}, but the token answered {output}")
        self.state = outcome.next
        return output


@dataclass(frozen=True)
class Start:
    """A state to fuzz from: a model path, then raw APDUs for objects the alphabet cannot make."""

    name: str
    commands: tuple[Command, ...]
    extra: tuple[bytes, ...] = ()


# (name, the transition whose source state is the start, raw APDUs after the path)
START_WITNESSES: tuple[tuple[str, str, tuple[bytes, ...]], ...] = (
    ("shipped", "S01", ()),
    ("initialized", "I01", ()),
    ("logged in, key and files", "I33", (write_apdu(0xC401, b"prkd"), write_apdu(0xCD01, b"secret"), write_apdu(0xCF01, b"open"))),
    ("transport PIN", "I03", ()),
    ("RRC off", "I15", ()),
    ("user-blocked", "U01", ()),
    ("so-blocked, logged in, key", "O21", ()),
    ("both-blocked", "B01", ()),
    ("firmware-reset", "F01", ()),
)
RAW_STARTS: tuple[tuple[str, tuple[bytes, ...]], ...] = (
    ("DKEK shares outstanding", (SELECT_APPLET, init_apdu(tlv.encode(0x92, b"\x02")), VERIFY_DEFAULT)),
    ("random DKEK, logged in", (SELECT_APPLET, init_apdu(tlv.encode(0x92, b"\x00")), VERIFY_DEFAULT)),
)


# An RSA key makes DECIPHER and the RSA SIGN algorithms reachable; generating one costs
# ~0.1 s a start, so only the long run (Grammar.rsa) has it.
RSA_START = ("logged in, RSA-2048 key",
             (SELECT_APPLET, init_apdu(b""), VERIFY_DEFAULT,
              encode(bytes([CLA_ISO, Ins.GENERATE_ASYMMETRIC_KEY_PAIR, 1, 0]),
                     tlv.encode(0x5F29, b"\x00") + tlv.encode(0x42, b"UTCA00001") + tlv.encode(0x7F49, tlv.encode(
                         0x06, cvc.encode_oid(OID_TA_RSA_V1_5_SHA256)) + tlv.encode(0x82, b"\x01\x00\x01")
                         + tlv.encode(0x02, (2048).to_bytes(2, "big"))), 0, extended=True)))
START_BOUNDS = Bounds(max_keys=1, max_updates=1)


def plan_starts(profile: ModelProfile, found: Exploration | None = None, rsa: bool = False) -> tuple[Start, ...]:
    """The start states, from one breadth-first exploration of the model within START_BOUNDS
    (~1 s; pass `found` to share one)."""
    found = found or explore(profile, bounds=START_BOUNDS)
    starts = [Start(name, tuple(found.path_to_transition(tid)[:-1]), extra) for name, tid, extra in START_WITNESSES]
    starts += [Start(name, (), extra) for name, extra in (*RAW_STARTS, *((RSA_START,) if rsa else ()))]
    return tuple(starts)


@dataclass(frozen=True)
class Campaign:
    """An emulator profile, the model profile that predicts it, and the starts for both."""

    name: str
    emulator: Profile
    model: ModelProfile
    starts: tuple[Start, ...]

    @classmethod
    def default(cls, found: Exploration | None = None, rsa: bool = False) -> Campaign:
        return cls("emulator defaults", Profile(), EMULATOR_DEFAULTS, plan_starts(EMULATOR_DEFAULTS, found, rsa))

    @classmethod
    def contrary(cls, rsa: bool = False) -> Campaign:
        """Every open behaviour the other way round, so other code paths answer."""
        emulator = Profile(last_wrong_try_sw="6983", wrong_length_pin_sw="63Cx", rrc_disabled_sw="6982",
                           rrc_disabled_spends_so_try=True, so_success_restores=False, retries_by_pin_length=True,
                           auth_after_init=True, auth_after_change=True, init_wrong_so_sw="6982")
        model = replace(EMULATOR_DEFAULTS, name="emulator contrary", init_wrong_so_sw=frozenset({"6982"}),
                        last_wrong_try_sw=frozenset({"6983"}), wrong_length_pin_sw=frozenset({"63Cx"}),
                        rrc_disabled_sw=frozenset({"6982"}), rrc_disabled_spends_so_try=True,
                        so_success_restores=False, retries_by_pin_length=True, auth_after_init=True,
                        auth_after_change=True)
        return cls("open behaviours reversed", emulator, model, plan_starts(model, rsa=rsa))
