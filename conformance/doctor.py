"""`hsm-lifecycle doctor`: what state is my token in, and what can I still do with it?

Three parts, each usable alone:

* `read_token` reads the token WITHOUT spending anything: SELECT (FCP tag 85: options and
  version), the two status queries VERIFY 81/88 without data, ENUMERATE OBJECTS and
  EF.C_DevAut. A guard refuses any other APDU, so no PIN can ever be presented by accident.
* `diagnose` turns the reading into the model's extended state, names the abstract state and
  asks the model's oracle what each owner action would do from there (admitted or refused, the
  consequences, the rules, the cost class), including the way down the SO-PIN counter to 0.
* `check_so_pin_text` explains the SO-PIN format and the ASCII-hex trap, locally.

Nothing about the lifecycle is restated here: admitted/refused, next states and costs all come
from `model.oracle`; this module only words them and adds the tool command lines.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from hsm_lifecycle.conformance.interlocks import Apdu, apdu_cost
from hsm_lifecycle.model.cost import CostClass
from hsm_lifecycle.conformance.mapper import IdentityUnreadable, Mapper, apdu
from hsm_lifecycle.conformance.transport.base import Response, Transport, TransportError, TransportWrapper
from hsm_lifecycle import tlv
from hsm_lifecycle.protocol import (
    CLA_ISO,
    FIRMWARE_UPDATES_WHILE_SO_BLOCKED,
    OPTION_RESET_RETRY_COUNTER,
    OPTION_SESSION_PIN,
    OPTION_TRANSPORT_PIN,
    PIN_SO,
    PIN_USER,
    SO_PIN_LENGTH,
    SO_PIN_TRIES,
    SW,
    TAG_FCP_PROPRIETARY,
    USER_PIN_TRIES_DEFAULT,
    USER_PIN_TRIES_MAX,
    Ins,
    tries_from_sw,
)
from hsm_lifecycle.model import oracle
from hsm_lifecycle.model.catalog import RULES
from hsm_lifecycle.model.commands import INITIALIZE, RIGHT, WRONG, Command
from hsm_lifecycle.model.outputs import LOGIN_OK, OK, UPDATE_OK
from hsm_lifecycle.model.profiles import SMARTCARD_HSM, Profile, UnresolvedBehaviour
from hsm_lifecycle.model.states import STATE_MEANINGS, ExtState

# Historical bytes every SmartCard-HSM ATR carries ("...THSM1...", protocol digest §1).
SMARTCARD_HSM_ATR_MARK = bytes.fromhex("5448534D31")

OPTION_NAMES = {
    OPTION_RESET_RETRY_COUNTER: "User PIN reset with SO-PIN enabled",
    OPTION_TRANSPORT_PIN: "Transport-PIN mode enabled",
    OPTION_SESSION_PIN: "Session PIN enabled",
}

P11 = "pkcs11-tool --module opensc-pkcs11.so"


class DoctorRefusal(Exception):
    """doctor was about to send an APDU that is not a free read: a bug, never sent."""


# ---------------------------------------------------------------------------------------------
# Reading the token


@dataclass
class ReadOnlyTransport(TransportWrapper):
    """Passes only free APDUs (reads, status queries) and records every exchange."""

    inner: Transport
    sent: list[tuple[bytes, int]] = field(default_factory=list)

    def transmit(self, capdu: bytes) -> Response:
        parsed = Apdu.parse(capdu)
        if apdu_cost(parsed, set()) != CostClass.FREE or (parsed.ins == Ins.VERIFY and parsed.data):
            raise DoctorRefusal(f"doctor refuses to send {capdu.hex().upper()}: it only reads")
        rsp = self.inner.transmit(capdu)
        self.sent.append((capdu, rsp.sw))
        return rsp


@dataclass(frozen=True)
class Identity:
    serial: str
    device_chr: str
    dica_chr: str
    root_chr: str  # the root the chain verified against ("" if it did not)
    verified: bool
    problem: str = ""  # why it did not verify

    @property
    def genuine(self) -> bool:
        """Chained to CardContact's production root (not the project's TEST root)."""
        from hsm_lifecycle.cvc import CARDCONTACT_ROOT_CHR

        return self.verified and self.root_chr == CARDCONTACT_ROOT_CHR


@dataclass(frozen=True)
class TokenReading:
    atr: bytes
    reader: str
    select_sw: int
    version: str | None  # "M.m" from FCP tag 85
    options: int | None
    so_sw: int  # VERIFY 88 without data
    user_sw: int  # VERIFY 81 without data
    key_ids: tuple[int, ...] | None  # private keys besides CC00; None if ENUMERATE refused
    identity: Identity | None
    exchanges: tuple[tuple[bytes, int], ...]

    @property
    def applet_present(self) -> bool:
        return self.select_sw == SW.OK

    @property
    def initialized(self) -> bool:
        return self.so_sw != SW.REFERENCED_DATA_NOT_FOUND

    @property
    def so_tries(self) -> int | None:
        if self.so_sw == SW.AUTH_METHOD_BLOCKED:
            return 0
        return tries_from_sw(self.so_sw)

    @property
    def user_blocked(self) -> bool:
        return self.user_sw == SW.AUTH_METHOD_BLOCKED

    @property
    def transport_pin(self) -> bool:
        return self.user_sw == SW.REFERENCE_DATA_NOT_USABLE

    @property
    def user_tries(self) -> int | None:
        return 0 if self.user_blocked else tries_from_sw(self.user_sw)


def read_token(transport: Transport) -> TokenReading:
    """Everything doctor needs, through free APDUs only (`ReadOnlyTransport` enforces it)."""
    guard = transport if isinstance(transport, ReadOnlyTransport) else ReadOnlyTransport(transport)
    atr = guard.connect()
    mapper = Mapper(guard)
    select = mapper.select()
    version, options = _parse_fcp(select) if select.sw == SW.OK else (None, None)
    so = guard.transmit(apdu(CLA_ISO, Ins.VERIFY, 0, PIN_SO)).sw
    user = guard.transmit(apdu(CLA_ISO, Ins.VERIFY, 0, PIN_USER)).sw
    keys = mapper.key_ids() if select.sw == SW.OK else None
    identity = _read_identity(mapper) if select.sw == SW.OK else None
    return TokenReading(
        atr=atr,
        reader=guard.describe().get("reader", ""),
        select_sw=select.sw,
        version=version,
        options=options,
        so_sw=so,
        user_sw=user,
        key_ids=tuple(sorted(keys)) if keys is not None else None,
        identity=identity,
        exchanges=tuple(guard.sent),
    )


def _parse_fcp(select: Response) -> tuple[str | None, int | None]:
    """Tag 85 of the applet FCP: v1.x major, minor; v2+ options(2), type, major, minor (§1)."""
    try:
        fcp = tlv.decode_exact(select.data)
        prop = tlv.find(tlv.decode_all(fcp.value), TAG_FCP_PROPRIETARY)
    except ValueError:
        return None, None
    if prop is None or len(prop.value) < 2:
        return None, None
    value = prop.value
    version = f"{value[-2]}.{value[-1]}"
    options = int.from_bytes(value[:2], "big") if len(value) >= 5 else None
    return version, options


def _read_identity(mapper: Mapper) -> Identity | None:
    from hsm_lifecycle import cvc

    try:
        raw = mapper.read_identity()
    except IdentityUnreadable:
        return None
    problems = []
    for root in cvc.load_roots().values():
        try:
            chain = cvc.verify_c_devaut(raw, root)
        except cvc.CvcError as exc:
            problems.append(str(exc))
            continue
        return Identity(chain.serial, chain.device_chr, chain.dica_chr, chain.root_chr, True)
    # Unverified: still show what the certificates claim, so the owner can compare serials.
    try:
        device, dica = cvc.parse_cv_objects(raw)[:2]
        serial = cvc.serial_from_chr(device.chr)
        return Identity(serial, device.chr, dica.chr, "", False, problems[-1] if problems else "")
    except (cvc.CvcError, ValueError):
        return Identity("", "", "", "", False, problems[-1] if problems else "EF.C_DevAut is empty")


# ---------------------------------------------------------------------------------------------
# From the reading to the model's extended state


@dataclass(frozen=True)
class Candidate:
    """One extended state the reading is consistent with, and what it assumes beyond it."""

    state: ExtState
    assumption: str  # "" for the reading itself


def candidates(reading: TokenReading) -> list[Candidate]:
    """The extended states the reading allows. A token does not tell its identity generation
    (shipped or after a firmware update?) nor how many SO-blocked updates it had: both are
    listed where they change what the model admits."""
    if not reading.initialized:
        return [
            Candidate(ExtState.shipped(), "never updated"),
            Candidate(ExtState(identity=1), "after a firmware update"),
        ]
    so_tries = reading.so_tries if reading.so_tries is not None else SO_PIN_TRIES
    user_tries = reading.user_tries
    transport = reading.transport_pin
    if user_tries is None:  # 9000 (already verified), 6984 (transport) or unknown: not spent
        user_tries = USER_PIN_TRIES_DEFAULT
    # The maximum (tag 91) is not readable: the default, or more if more tries are left.
    user_max = min(USER_PIN_TRIES_MAX, max(user_tries, USER_PIN_TRIES_DEFAULT))
    options = reading.options if reading.options is not None else OPTION_RESET_RETRY_COUNTER
    keys = len(reading.key_ids) if reading.key_ids is not None else 1
    base = ExtState.initialized(
        so_tries=so_tries,
        user_tries=user_tries,
        user_max=user_max,
        options=options,
        transport=transport,
        keys=keys,
    )
    out = [Candidate(base, "")]
    if so_tries == 0:
        used = FIRMWARE_UPDATES_WHILE_SO_BLOCKED
        out.append(
            Candidate(
                base.but(identity=used, so_blocked_updates=used),
                f"if {used} updates were already admitted because of a blocked SO-PIN",
            )
        )
    return out


# ---------------------------------------------------------------------------------------------
# What the model says each owner action does


@dataclass(frozen=True)
class OwnerAction:
    """Something a token owner may want to do: the model commands it takes (the last one is
    decisive), the output that means success, and how to do it with the usual tools."""

    key: str
    label: str
    steps: tuple[Command, ...]
    success: str
    tool: str
    needs: str


ACTIONS: tuple[OwnerAction, ...] = (
    OwnerAction(
        "login", "Log in with the user PIN and use the keys",
        (Command.verify_user(RIGHT),), OK,
        f"{P11} --login --pin <PIN> --list-objects", "the user PIN",
    ),
    OwnerAction(
        "change-user-pin", "Change the user PIN",
        (Command.change_user_pin(RIGHT),), OK,
        f"{P11} --login --pin <OLD PIN> --change-pin --new-pin <NEW PIN>", "the user PIN",
    ),
    OwnerAction(
        "reset-user-pin", "Reset the user PIN with the SO-PIN (new PIN, counter full)",
        (Command.reset_retry_counter(RIGHT, new_pin=True),), OK,
        f"{P11} --login --login-type so --so-pin <SO-PIN as 16 hex digits> --init-pin --new-pin <NEW PIN>",
        "the SO-PIN",
    ),
    OwnerAction(
        "change-so-pin", "Change the SO-PIN",
        (Command.change_so_pin(RIGHT),), OK,
        f"{P11} --login --login-type so --so-pin <OLD SO-PIN, 16 hex> --change-pin --new-pin <NEW SO-PIN, 16 hex>",
        "the SO-PIN",
    ),
    OwnerAction(
        "initialize", "Initialize / re-initialize the token",
        (Command.initialize(RIGHT, OPTION_RESET_RETRY_COUNTER, USER_PIN_TRIES_DEFAULT),), OK,
        "sc-hsm-tool --initialize --so-pin <SO-PIN as 16 hex digits> --pin <NEW PIN> --pin-retry 3",
        "the SO-PIN (on a token never initialized: the code you choose becomes the SO-PIN)",
    ),
    OwnerAction(
        "generate-key", "Generate a key",
        (Command.verify_user(RIGHT), Command.generate_key()), OK,
        f"{P11} --login --pin <PIN> --keypairgen --key-type EC:prime256v1 --id 10 --label <LABEL>",
        "the user PIN",
    ),
    OwnerAction(
        "delete-key", "Delete a key",
        (Command.verify_user(RIGHT), Command.delete_key()), OK,
        f"{P11} --login --pin <PIN> --delete-object --type privkey --id <ID>", "the user PIN",
    ),
    OwnerAction(
        "firmware-update", "Firmware update in the PKI-as-a-Service portal",
        (Command.firmware_update(),), UPDATE_OK,
        "log into the PKI-as-a-Service portal with a working HSM, insert this token, start the firmware update",
        "a portal login with a working HSM: initialized, user PIN not blocked (a blocked HSM cannot log in)",
    ),
    OwnerAction(
        "portal-login", "Log into the update portal with this token",
        (Command.portal_login(),), LOGIN_OK,
        "PKI-as-a-Service portal: log in with this token (device authentication + user PIN)",
        "the user PIN",
    ),
)


@dataclass(frozen=True)
class Prediction:
    """What the model says an action does from one state."""

    admitted: bool
    command: Command  # the decisive step
    before: ExtState
    after: ExtState
    output: str  # what the decisive step answers (one of the model's outputs)
    rules: tuple[str, ...]
    transition: str
    cost: str
    maybe: tuple[str, ...] = ()  # further consequences that hang on an unknown open behaviour
    depends: str = ""  # that open behaviour

    @property
    def changes(self) -> tuple[str, ...]:
        return describe_changes(self.before, self.after, self.command if self.admitted else None)


def predict(state: ExtState, steps: tuple[Command, ...], success: str, profile: Profile = SMARTCARD_HSM) -> Prediction:
    """Run the steps through the oracle. Where the next state hangs on an open behaviour the
    profile leaves unknown, predict both ways: the consequences both share are certain, the
    others are reported as `maybe`, naming the behaviour."""
    try:
        outcomes = oracle.run(state, list(steps), profile)
    except UnresolvedBehaviour as exc:
        yes = predict(state, steps, success, profile.resolve({exc.behaviour: True}))
        no = predict(state, steps, success, profile.resolve({exc.behaviour: False}))
        if yes.admitted != no.admitted:
            return replace(no, maybe=("admitted",), depends=exc.behaviour)
        extra = tuple(c for c in (*yes.changes, *no.changes) if c not in yes.changes or c not in no.changes)
        if not extra:
            return no
        # Keep only the certain consequences in `after`-derived text: take the side that changes less.
        base = no if len(no.changes) <= len(yes.changes) else yes
        return replace(base, maybe=tuple(c for c in extra if c not in base.changes), depends=exc.behaviour)
    # Steps before the decisive one (logging in) must succeed for the action to be possible.
    prereq_ok = all(o.accepts(OK) for o in outcomes[:-1])
    last = outcomes[-1]
    admitted = prereq_ok and last.accepts(success)
    output = success if admitted else _refusal_output(last if prereq_ok else _first_refused(outcomes))
    return Prediction(
        admitted=admitted,
        command=steps[-1],
        before=state,
        after=last.next,
        output=output,
        rules=last.rules if prereq_ok else _first_refused(outcomes).rules,
        transition=last.transition,
        cost=last.cost,
    )


def _first_refused(outcomes: list[oracle.Outcome]) -> oracle.Outcome:
    return next(o for o in outcomes if not o.accepts(OK))


def _refusal_output(outcome: oracle.Outcome) -> str:
    outputs = sorted(o for o in outcome.outputs if o != OK)
    return " or ".join("refused" if o == "refused" else o for o in outputs) or "refused"


def describe_changes(before: ExtState, after: ExtState, command: Command | None = None) -> tuple[str, ...]:
    """The consequences of a step, in the owner's words, from the model's two states."""
    out: list[str] = []
    reinit = command is not None and command.name == INITIALIZE and before.is_initialized and after.is_initialized
    if after.abstract != before.abstract:
        out.append(f"the token becomes {after.abstract}")
    if before.so_tries != after.so_tries and after.so_tries is not None and before.so_tries is not None:
        out.append(f"SO-PIN tries {before.so_tries} → {after.so_tries}")
    elif before.so_tries is None and after.so_tries is not None:
        out.append(f"the code becomes the SO-PIN, {after.so_tries} tries")
    if after.so_tries is not None and before.so_tries is not None and after.user_tries != before.user_tries:
        # The maximum (tag 91) is not readable from outside: name it, not a guessed number.
        now = "full (the count set at initialization)" if after.user_tries == after.user_max else str(after.user_tries)
        out.append(f"user-PIN tries {before.user_tries} → {now}")
    if reinit and after.keys == 0:
        out.append(f"erases every key, certificate and data object ({before.keys} key(s) on it now)")
    elif after.keys < before.keys:
        out.append(f"keys {before.keys} → {after.keys}")
    elif after.keys > before.keys:
        out.append(f"keys {before.keys} → {after.keys}")
    if after.identity != before.identity:
        out.append("new device identity (new device key and certificate)")
    elif reinit:
        out.append("device identity kept (same device key and certificate)")
    if after.transport != before.transport:
        out.append("transport PIN ended" if before.transport else "transport PIN set")
    return tuple(out)


# ---------------------------------------------------------------------------------------------
# The diagnosis


@dataclass(frozen=True)
class ActionVerdict:
    action: OwnerAction
    prediction: Prediction
    caveat: str = ""  # where another candidate state gives a different answer

    @property
    def admitted(self) -> bool:
        return self.prediction.admitted


@dataclass(frozen=True)
class SoBudget:
    """The way down the SO-PIN counter, from the model: each wrong SO-PIN and where 0 leads."""

    tries_left: int
    cost_each: tuple[str, ...]  # changes of one wrong SO-PIN
    blocked_state: str
    after_block: tuple[ActionVerdict, ...]  # what is still admitted at 0

    @property
    def ways_back(self) -> tuple[ActionVerdict, ...]:
        """Admitted actions after which the SO-PIN is usable again (or gone: uninitialized)."""
        return tuple(v for v in self.after_block if v.admitted and v.prediction.after.so_tries != 0)


@dataclass(frozen=True)
class Diagnosis:
    reading: TokenReading
    states: tuple[str, ...]  # the abstract state(s) the reading allows
    meaning: str
    actions: tuple[ActionVerdict, ...]
    so_budget: SoBudget | None
    no_factory_reset: str  # R01, from the catalog
    warnings: tuple[str, ...]

    @property
    def can(self) -> tuple[ActionVerdict, ...]:
        return tuple(a for a in self.actions if a.admitted)

    @property
    def cannot(self) -> tuple[ActionVerdict, ...]:
        return tuple(a for a in self.actions if not a.admitted)


def diagnose(reading: TokenReading, profile: Profile = SMARTCARD_HSM) -> Diagnosis:
    if not reading.applet_present:
        raise ValueError(f"the card does not have the SmartCard-HSM applet (SELECT answered {reading.select_sw:04X})")
    cands = candidates(reading)
    primary = cands[0]
    states = tuple(dict.fromkeys(c.state.abstract for c in cands))
    actions = tuple(_judge(a, cands, profile) for a in ACTIONS)
    r01 = RULES["R01"]
    return Diagnosis(
        reading=reading,
        states=states,
        meaning=" / ".join(STATE_MEANINGS[s] for s in states),
        actions=actions,
        so_budget=_so_budget(primary.state, profile) if primary.state.so_tries else None,
        no_factory_reset=f"{r01.id} {r01.title}: {r01.statement}",
        warnings=_warnings(reading, primary.state),
    )


def _judge(action: OwnerAction, cands: list[Candidate], profile: Profile) -> ActionVerdict:
    first = predict(cands[0].state, action.steps, action.success, profile)
    caveats = []
    for other in cands[1:]:
        alt = predict(other.state, action.steps, action.success, profile)
        if alt.admitted != first.admitted:
            word = "admitted" if alt.admitted else f"refused ({alt.output}, {', '.join(alt.rules)})"
            caveats.append(f"{word} {other.assumption}")
    if cands[0].assumption and caveats:
        caveats.insert(0, f"{'admitted' if first.admitted else 'refused'} {cands[0].assumption}")
    return ActionVerdict(action, first, "; ".join(caveats))


def _so_budget(state: ExtState, profile: Profile) -> SoBudget:
    """Spend the SO tries one wrong SO-PIN at a time through the oracle, then ask what is left."""
    wrong = Command.initialize(WRONG, state.options, state.user_max)
    blocked = state
    while blocked.so_tries:
        blocked = oracle.expect(blocked, wrong, profile).next
    at_zero = []
    for key in ("firmware-update", "portal-login", "initialize", "reset-user-pin", "login"):
        action = next(a for a in ACTIONS if a.key == key)
        cands = [Candidate(blocked, "")]
        used = FIRMWARE_UPDATES_WHILE_SO_BLOCKED
        cands.append(
            Candidate(
                blocked.but(identity=max(blocked.identity, used), so_blocked_updates=used),
                f"if {used} updates were already admitted because of a blocked SO-PIN",
            )
        )
        at_zero.append(_judge(action, cands, profile))
    spent = oracle.expect(state, wrong, profile).next
    return SoBudget(
        tries_left=state.so_tries or 0,
        cost_each=describe_changes(state, spent),
        blocked_state=blocked.abstract,
        after_block=tuple(at_zero),
    )


def _warnings(reading: TokenReading, state: ExtState) -> tuple[str, ...]:
    out = [SO_PIN_TRAP]
    if state.is_initialized and state.rrc_enabled:
        out.append(UNBLOCK_PIN_TRAP)
    if reading.transport_pin:
        out.append(
            "A transport PIN is active: change it first (pkcs11-tool ... --login --pin <TRANSPORT PIN> "
            "--change-pin --new-pin <NEW PIN>); until then no key can be used."
        )
    out.append(
        "OpenSC's PKCS#11 module accepts user PINs of 6..15 characters; a 16-character PIN set with "
        "sc-hsm-tool cannot log in through it."
    )
    return tuple(out)


SO_PIN_TRAP = (
    "The SO-PIN is 8 bytes, written as 16 hex digits for the tools. The default 3537363231383830 is "
    "the hex of the ASCII text 57621880: give the tools the 16 hex digits, never the 8-character text."
)
UNBLOCK_PIN_TRAP = (
    "Do not use `pkcs15-tool --unblock-pin`: it sends the SO-PIN's 16 characters as ASCII text, so "
    "the check always fails and burns an SO-PIN try (OpenSC issue 3352). Use pkcs11-tool --init-pin."
)


# ---------------------------------------------------------------------------------------------
# The SO-PIN format, checked locally (the token never sees it)


@dataclass(frozen=True)
class SoPinAdvice:
    ok: bool
    message: str
    raw: bytes | None = None  # the 8 bytes, when the text is a well-formed SO-PIN


def check_so_pin_text(text: str) -> SoPinAdvice:
    """Explain what `text` means as an SO-PIN, with the ASCII-hex trap spelled out."""
    s = text.strip()
    hexdigits = "0123456789abcdefABCDEF"
    if len(s) == 2 * SO_PIN_LENGTH and all(c in hexdigits for c in s):
        raw = bytes.fromhex(s)
        if all(0x20 < b < 0x7F for b in raw):
            ascii_text = raw.decode("ascii")
            return SoPinAdvice(
                True,
                f"{s.upper()} is the hex of the ASCII text {ascii_text}: that is the form the tools expect "
                f"(sc-hsm-tool --so-pin {s.upper()}); if you remember your SO-PIN as {ascii_text}, this is it, "
                f"and typing {ascii_text} itself would be refused by the tools.",
                raw,
            )
        letters = " It contains the letters A-F: CardContact's own middleware encodes those differently from " \
                  "OpenSC, so use the same tool family that set it." if any(c in "abcdefABCDEF" for c in s) else ""
        return SoPinAdvice(True, f"{s.upper()} is a well-formed SO-PIN: 16 hex digits, 8 bytes.{letters}", raw)
    if len(s) == SO_PIN_LENGTH:
        as_hex = s.encode("utf-8").hex().upper()
        fix = (
            f" if {s} is your SO-PIN as text, the tools want its hex form {as_hex}"
            if len(as_hex) == 2 * SO_PIN_LENGTH
            else ""
        )
        return SoPinAdvice(
            False, f"An SO-PIN is 16 hex digits, not 8 characters:{fix or ' give the 16 hex digits.'}"
        )
    bad = sorted({c for c in s if c not in hexdigits})
    if bad:
        return SoPinAdvice(
            False,
            f"An SO-PIN is exactly 16 hex digits (0-9, A-F) that encode 8 bytes; {''.join(bad)!r} are not hex digits.",
        )
    return SoPinAdvice(False, f"An SO-PIN is exactly 16 hex digits (8 bytes), e.g. 3537363231383830; this has {len(s)}.")


# ---------------------------------------------------------------------------------------------
# Finding the token on PC/SC


def reader_atrs(readers: list[str]) -> dict[str, bytes | None]:
    """The ATR of the card in each reader (None: empty), read from pcscd's reader states,
    without connecting to any card."""
    from smartcard import scard

    rv, context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
    if rv != scard.SCARD_S_SUCCESS:
        raise TransportError("pcscd is not running: start it (sudo systemctl start pcscd) and retry")
    try:
        rv, states = scard.SCardGetStatusChange(context, 0, [(r, scard.SCARD_STATE_UNAWARE) for r in readers])
        if rv != scard.SCARD_S_SUCCESS:
            return {r: None for r in readers}
        return {r: bytes(atr) if state & scard.SCARD_STATE_PRESENT and atr else None for r, state, atr in states}
    finally:
        scard.SCardReleaseContext(context)


def choose_hsm_reader(readers: list[str], atrs: dict[str, bytes | None], wanted: str | None) -> str:
    """The reader named by `wanted` (a substring), else the first whose card has a SmartCard-HSM
    ATR. TransportError (one sentence) when there is none."""
    from hsm_lifecycle.conformance.transport.pcsc import select_reader

    if wanted:
        return select_reader(readers, wanted)
    if not readers:
        raise TransportError("no smart-card reader is connected: plug in the Nitrokey HSM 2 / SmartCard-HSM and retry")
    for reader in readers:
        atr = atrs.get(reader)
        if atr is not None and SMARTCARD_HSM_ATR_MARK in atr:
            return reader
    listed = ", ".join(f"'{r}'" for r in readers)
    raise TransportError(
        f"no reader holds a SmartCard-HSM / Nitrokey HSM 2 (the readers are {listed}): "
        "insert the token, or name its reader with --reader"
    )
