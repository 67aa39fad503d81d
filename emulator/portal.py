"""A simulated firmware-update portal, after CardContact's PKI-as-a-Service (rules R12–R15).

What the device maker says (shared/story, the forum thread; docs/firmware-update.md):

* Login needs a working HSM: device authentication plus user authentication on that HSM. "You
  can not use a blocked HSM to log into the portal" (R15). No password is stored: the device
  *is* the credential, so an account is found by the HSM that logs in.
* A logged-in account may update the HSM plugged into the PC, or another HSM registered with
  the account (a remote device).
* An update is admitted if "the device does not contain any keys" or "the SO-PIN is blocked";
  the second is "limited to 5 firmware updates" (R12, R13). A blocked user PIN does not matter.
* Afterwards the device is as shipped, with a new identity (R14), so its old registration goes.

The portal sees a token only as a real portal could: APDUs (2F02, the PIN status queries,
ENUMERATE OBJECTS, VERIFY, SIGN with the device key) through a `CardLink`. The update itself
goes through the device's `FirmwareLoader` (for the emulator, `VirtualToken.firmware_update`),
which also keeps the device's count of SO-blocked updates: the record the real portal keeps per
device lineage (its CA issued every identity), kept with the device here so that it survives
portal instances. The admission rule is written from the story, independently of `model/`.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Protocol

from hsm_lifecycle.emulator.identity import verify_challenge
from hsm_lifecycle.emulator.profile import Fault
from hsm_lifecycle import cvc, protocol, tlv
from hsm_lifecycle.protocol import SW, Ins

if TYPE_CHECKING:
    from hsm_lifecycle.emulator.token import VirtualToken

CardLink = Callable[[bytes], bytes]  # command APDU in, data||SW1SW2 out (VirtualToken.transmit)

UPDATE_LIMIT = protocol.FIRMWARE_UPDATES_WHILE_SO_BLOCKED
CHALLENGE_BYTES = 32
READ_CHUNK = 256  # short Le 00
C_DEVAUT_MAX = 8192  # two CVCs are ~500 bytes; anything this large is not EF.C_DevAut
GET_RESPONSE_LIMIT = 64
MSG_CONTAINS_KEYS = "Smartcard-HSM contains keys. Please remove keys first"  # NK-3431


class PortalFault(Enum):
    """Fault switches of the portal: each breaks one rule, so the project's tests can prove the
    conformance check of that rule fails when it should. Off unless a test turns one on."""

    UPDATE_WITH_KEYS = "update-with-keys"  # R12: keys do not stop an update (SO-PIN working)
    UNLIMITED_UPDATES = "unlimited-updates"  # R13: a blocked SO-PIN admits updates forever
    IDENTITY_KEPT_ON_UPDATE = "identity-kept-on-update"  # R14: the loader keeps CC00 and 2F02
    BLOCKED_HSM_LOGS_IN = "blocked-hsm-logs-in"  # R15: a blocked user PIN counts as verified
    SO_BLOCK_NOT_ADMITTED = "so-block-not-admitted"  # R12: a blocked SO-PIN does not admit a token with keys
    USER_BLOCKED_NOT_ADMITTED = "user-blocked-not-admitted"  # R12: the gate refuses a token whose user PIN is blocked
    EMPTY_UPDATE_COUNTED = "empty-update-counted"  # R13: past the 5, a keyless SO-blocked token is refused too
    UNINITIALIZED_LOGS_IN = "uninitialized-logs-in"  # R15: a shipped HSM logs in on its certificate alone
    BLOCKED_DEVICE_NEEDS_OWN_LOGIN = "blocked-device-needs-own-login"  # R15: an account cannot update another, user-blocked HSM
    FOUR_UPDATES_ONLY = "four-updates-only"  # R13: the limit for a blocked SO-PIN is reached after 4
    TRANSPORT_HSM_LOGS_IN = "transport-hsm-logs-in"  # R15: the transport PIN's 6984 counts as verified
    SO_BLOCKED_HSM_REFUSED = "so-blocked-hsm-refused"  # R15: an HSM with a blocked SO-PIN cannot log in


def split_faults(names: Iterable[str | Fault | PortalFault]) -> tuple[frozenset[Fault], frozenset[PortalFault]]:
    """Token faults and portal faults from one list of switches (`--hsm-emulator-fault`).
    An unknown name raises ValueError naming both sets."""
    token: set[Fault] = set()
    portal: set[PortalFault] = set()
    for name in names:
        if isinstance(name, Fault):
            token.add(name)
        elif isinstance(name, PortalFault):
            portal.add(name)
        elif name in _PORTAL_FAULT_NAMES:
            portal.add(PortalFault(name))
        elif name in _TOKEN_FAULT_NAMES:
            token.add(Fault(name))
        else:
            known = sorted(_TOKEN_FAULT_NAMES | _PORTAL_FAULT_NAMES)
            raise ValueError(f"unknown emulator fault {name!r}; known: {', '.join(known)}")
    return frozenset(token), frozenset(portal)


_PORTAL_FAULT_NAMES = frozenset(f.value for f in PortalFault)
_TOKEN_FAULT_NAMES = frozenset(f.value for f in Fault)


class LoginVerdict(str, Enum):
    OK = "login-ok"
    REFUSED = "login-refused"


class UpdateVerdict(str, Enum):
    OK = "update-ok"
    REFUSED_KEYS = "update-refused-keys"
    REFUSED_LIMIT = "update-refused-limit"
    REFUSED_DEVICE = "update-refused-device"  # not genuine, or it answered nonsense
    # Only a faulty portal answers these (PortalFault): no rule refuses an update for them.
    REFUSED_USER_BLOCKED = "update-refused-user-blocked"  # the gate asked about the user PIN
    REFUSED_ACCOUNT = "update-refused-account"  # the account may not update that device


class LoginRefusal(str, Enum):
    """Why a login was refused, in the portal's words."""

    NOT_GENUINE = "device authentication failed: EF.C_DevAut does not chain to the portal's root"
    UNKNOWN_DEVICE = "this HSM belongs to no account: give an e-mail address to sign up"
    OTHER_ACCOUNT = "this HSM logs into another account"
    NOT_INITIALIZED = "the HSM is not initialized"
    PIN_BLOCKED = "the user PIN of this HSM is blocked"
    TRANSPORT_PIN = "the HSM still has its transport PIN: change it first"
    WRONG_PIN = "wrong user PIN"
    DEVICE_AUTH_FAILED = "device authentication failed: the challenge signature does not verify"
    DEVICE_ERROR = "the HSM answered something unexpected"


class DeviceError(Exception):
    """The device answered in a way no SmartCard-HSM does (or not at all)."""


# -- the portal's card client: APDUs only ---------------------------------------------------


@dataclass(frozen=True)
class Rapdu:
    data: bytes
    sw: int


def command(cla: int, ins: int, p1: int, p2: int, data: bytes = b"", le: bool = False) -> bytes:
    """A short ISO 7816-4 command (every APDU the portal sends fits in short length)."""
    if len(data) > 255:
        raise ValueError("the portal only sends short APDUs")
    body = (bytes([len(data)]) + data if data else b"") + (b"\x00" if le else b"")
    return bytes([cla, ins, p1, p2]) + body


@dataclass
class CardClient:
    """What the portal's client sends to the token (as the Smart Card Shell would)."""

    link: CardLink

    def send(self, capdu: bytes) -> Rapdu:
        answer = self._exchange(capdu)
        chunks = [answer.data]
        for _ in range(GET_RESPONSE_LIMIT):
            if answer.sw >> 8 != 0x61:
                return Rapdu(b"".join(chunks), answer.sw)
            answer = self._exchange(command(protocol.CLA_ISO, Ins.GET_RESPONSE, 0, 0) + bytes([answer.sw & 0xFF]))
            chunks.append(answer.data)
        raise DeviceError("the token keeps answering 61xx")

    def _exchange(self, capdu: bytes) -> Rapdu:
        rapdu = self.link(capdu)
        if len(rapdu) < 2:
            raise DeviceError(f"{len(rapdu)}-byte answer, no status word")
        return Rapdu(rapdu[:-2], int.from_bytes(rapdu[-2:], "big"))

    def so_status(self) -> Rapdu:
        return self.send(command(protocol.CLA_ISO, Ins.VERIFY, 0, protocol.PIN_SO))

    def ensure_selected(self) -> None:
        """Select the applet only if the card manager answers (6D00): a client that finds the
        applet selected reads through it and leaves the card session alone."""
        if self.so_status().sw != SW.INS_NOT_SUPPORTED:
            return
        rsp = self.send(command(protocol.CLA_ISO, Ins.SELECT, 0x04, protocol.SELECT_P2_FCP, protocol.AID, le=True))
        if rsp.sw != SW.OK:
            raise DeviceError(f"SELECT of the SmartCard-HSM applet answered {rsp.sw:04X}")

    def so_tries(self) -> int | None:
        """SO tries left, 0 when blocked, None when no SO-PIN was ever set (uninitialized)."""
        sw = self.so_status().sw
        if sw == SW.REFERENCED_DATA_NOT_FOUND:
            return None
        if sw == SW.AUTH_METHOD_BLOCKED:
            return 0
        tries = protocol.tries_from_sw(sw)
        if tries is None:
            raise DeviceError(f"SO-PIN status query answered {sw:04X}")
        return tries

    def c_devaut(self) -> bytes:
        """EF.C_DevAut (2F02), read with READ BINARY (odd INS) in 256-byte steps."""
        out = b""
        while len(out) <= C_DEVAUT_MAX:
            offset = tlv.encode(protocol.TAG_OFFSET, len(out).to_bytes(2, "big"))
            fid = protocol.FID_C_DEVAUT
            rsp = self.send(command(protocol.CLA_ISO, Ins.READ_BINARY_ODD, fid >> 8, fid & 0xFF, offset, le=True))
            if rsp.sw == SW.WRONG_P1P2 and out:  # the file ended exactly at a chunk boundary
                return out
            if rsp.sw not in (SW.OK, SW.END_OF_FILE):
                raise DeviceError(f"READ BINARY of EF.C_DevAut answered {rsp.sw:04X}")
            out += rsp.data
            if rsp.sw == SW.END_OF_FILE or len(rsp.data) < READ_CHUNK:
                return out
        raise DeviceError("EF.C_DevAut is too large to be a device certificate chain")

    def key_count(self, initialized: bool) -> int:
        """Private keys other than the device key (CC00), from ENUMERATE OBJECTS."""
        rsp = self.send(command(protocol.CLA_PROPRIETARY, Ins.ENUMERATE_OBJECTS, 0, 0, le=True))
        if rsp.sw != SW.OK:
            if not initialized:
                return 0  # an uninitialized token holds no keys, whatever it lets us list
            raise DeviceError(f"ENUMERATE OBJECTS answered {rsp.sw:04X}")
        if len(rsp.data) % 2:
            raise DeviceError("ENUMERATE OBJECTS answered an odd number of bytes")
        fids = (int.from_bytes(rsp.data[i : i + 2], "big") for i in range(0, len(rsp.data), 2))
        return sum(1 for fid in fids if fid >> 8 == protocol.FID_PREFIX_PRIVATE_KEY and fid != protocol.FID_DEVICE_KEY)

    def user_blocked(self) -> bool:
        return self.send(command(protocol.CLA_ISO, Ins.VERIFY, 0, protocol.PIN_USER)).sw == SW.AUTH_METHOD_BLOCKED

    def verify_user(self, pin: bytes) -> int:
        return self.send(command(protocol.CLA_ISO, Ins.VERIFY, 0, protocol.PIN_USER, pin)).sw

    def sign_with_device_key(self, challenge: bytes) -> Rapdu:
        """SIGN with key 00, ECDSA over SHA-256 of the challenge (the token hashes)."""
        key_id = protocol.FID_DEVICE_KEY & 0xFF
        return self.send(command(protocol.CLA_PROPRIETARY, Ins.SIGN, key_id, protocol.ALGO_ECDSA_SHA256, challenge, le=True))


# -- the device side: what the portal reaches ------------------------------------------------


class FirmwareLoader(Protocol):
    """The device's firmware-update channel: installs an image, keeps the update history."""

    def so_blocked_updates(self) -> int:
        """Updates this device (across identities) got only because its SO-PIN was blocked."""
        ...

    def install(self, *, counted: bool, keep_identity: bool) -> None:
        """Install the firmware: as shipped, with a new identity unless `keep_identity` (a
        faulty loader). `counted`: admitted only because the SO-PIN is blocked."""
        ...


@dataclass(frozen=True)
class TokenLoader:
    """The emulator's firmware loader: the token's own hook (docs/emulator.md)."""

    token: VirtualToken

    def so_blocked_updates(self) -> int:
        return self.token.status().so_blocked_updates

    def install(self, *, counted: bool, keep_identity: bool) -> None:
        self.token.firmware_update(counted=counted, keep_identity=keep_identity)


@dataclass(frozen=True)
class PluggedDevice:
    """A token the portal can reach: its card link and its firmware loader."""

    card: CardLink
    loader: FirmwareLoader

    @classmethod
    def of(cls, token: VirtualToken) -> PluggedDevice:
        return cls(token.transmit, TokenLoader(token))


@dataclass(frozen=True)
class DeviceView:
    """What the portal read from a device before deciding on an update."""

    device_chr: str
    so_tries: int | None  # None: no SO-PIN set (uninitialized)
    keys: int
    so_blocked_updates: int
    user_blocked: bool = False  # read only by a faulty portal: the rules never ask about it


@dataclass(frozen=True)
class Admission:
    verdict: UpdateVerdict
    counted: bool
    message: str


def decide(view: DeviceView, faults: frozenset[PortalFault] = frozenset()) -> Admission:
    """The update gate. Condition 2 (SO-PIN blocked) first, because it is the one that counts:
    while fewer than 5 such updates were done it admits (and counts) whatever the keys; after
    that condition 1 (no keys) still admits, uncounted. A blocked user PIN is never asked about."""
    if view.so_tries == 0 and not (PortalFault.SO_BLOCK_NOT_ADMITTED in faults and view.keys):
        limit = UPDATE_LIMIT - 1 if PortalFault.FOUR_UPDATES_ONLY in faults else UPDATE_LIMIT
        if view.so_blocked_updates < limit or PortalFault.UNLIMITED_UPDATES in faults:
            left = UPDATE_LIMIT - view.so_blocked_updates - 1
            return Admission(UpdateVerdict.OK, True, f"SO-PIN blocked: update admitted ({max(left, 0)} such updates left)")
        if view.keys == 0 and PortalFault.EMPTY_UPDATE_COUNTED not in faults:
            return Admission(UpdateVerdict.OK, False, "no keys on the device: update admitted")
        return Admission(
            UpdateVerdict.REFUSED_LIMIT,
            False,
            f"the SO-PIN is blocked, but this device had its {UPDATE_LIMIT} updates for a blocked SO-PIN; "
            "remove the keys first",
        )
    if view.user_blocked and PortalFault.USER_BLOCKED_NOT_ADMITTED in faults:
        return Admission(UpdateVerdict.REFUSED_USER_BLOCKED, False, "the user PIN of this HSM is blocked")
    if view.keys == 0 or PortalFault.UPDATE_WITH_KEYS in faults:
        return Admission(UpdateVerdict.OK, False, "no keys on the device: update admitted")
    return Admission(UpdateVerdict.REFUSED_KEYS, False, MSG_CONTAINS_KEYS)


# -- the portal ----------------------------------------------------------------------------


@dataclass(frozen=True)
class UpdateResult:
    verdict: UpdateVerdict
    message: str
    old_chr: str | None = None
    new_chr: str | None = None  # the identity the device has now (None if refused)
    counted: bool = False


@dataclass
class Account:
    email: str
    login_devices: set[str] = field(default_factory=set)  # CHRs of HSMs that log in here
    registered: dict[str, PluggedDevice] = field(default_factory=dict)  # CHR -> remote device


@dataclass(frozen=True)
class LoginResult:
    verdict: LoginVerdict
    session: PortalSession | None = None
    refusal: LoginRefusal | None = None

    @classmethod
    def refused(cls, why: LoginRefusal) -> LoginResult:
        return cls(LoginVerdict.REFUSED, None, why)


_PIN_ANSWERS = {
    SW.REFERENCED_DATA_NOT_FOUND: LoginRefusal.NOT_INITIALIZED,
    SW.AUTH_METHOD_BLOCKED: LoginRefusal.PIN_BLOCKED,
    SW.REFERENCE_DATA_NOT_USABLE: LoginRefusal.TRANSPORT_PIN,
}


@dataclass
class Portal:
    """The portal's server side: trust anchor, accounts, the update gate."""

    root: cvc.CVCertificate = field(default_factory=cvc.load_test_root)
    faults: frozenset[PortalFault] = frozenset()
    accounts: dict[str, Account] = field(default_factory=dict)
    owners: dict[str, str] = field(default_factory=dict)  # login device CHR -> e-mail

    # -- login (R15) ---------------------------------------------------------------------------

    def login(self, device: PluggedDevice, user_pin: bytes, email: str | None = None) -> LoginResult:
        """Device authentication plus the user PIN on that HSM. An HSM that belongs to no account
        signs up with `email` in the same flow (as the forum describes: PIN, e-mail, code)."""
        client = CardClient(device.card)
        try:
            client.ensure_selected()
            chain = cvc.verify_c_devaut(client.c_devaut(), self.root)
        except cvc.ChainError:
            return LoginResult.refused(LoginRefusal.NOT_GENUINE)
        except DeviceError:
            return LoginResult.refused(LoginRefusal.DEVICE_ERROR)
        # The account is known from the certificate, before any PIN is presented.
        owner = self.owners.get(chain.device_chr)
        name = owner or email
        if name is None:
            return LoginResult.refused(LoginRefusal.UNKNOWN_DEVICE)
        if email is not None and name != email:
            return LoginResult.refused(LoginRefusal.OTHER_ACCOUNT)
        refusal = self._authenticate(client, chain, user_pin)
        if refusal is not None:
            return LoginResult.refused(refusal)
        account = self.accounts.setdefault(name, Account(name))
        account.login_devices.add(chain.device_chr)
        self.owners[chain.device_chr] = account.email
        return LoginResult(LoginVerdict.OK, PortalSession(self, account, chain.device_chr))

    def _authenticate(self, client: CardClient, chain: cvc.DeviceChain, user_pin: bytes) -> LoginRefusal | None:
        """User PIN first (the device key signs only in a verified session), then the device
        signs the portal's own fresh challenge with CC00, checked with the 2F02 key."""
        try:
            sw = client.verify_user(user_pin)
            if sw == SW.AUTH_METHOD_BLOCKED and PortalFault.BLOCKED_HSM_LOGS_IN in self.faults:
                return None  # the fault: blocked counts as verified, the certificate as proof
            if sw == SW.REFERENCED_DATA_NOT_FOUND and PortalFault.UNINITIALIZED_LOGS_IN in self.faults:
                return None  # the fault: no PIN to check counts as checked
            if sw == SW.REFERENCE_DATA_NOT_USABLE and PortalFault.TRANSPORT_HSM_LOGS_IN in self.faults:
                return None  # the fault: "PIN not usable yet" read as verified, the certificate as proof
            if sw == SW.OK and PortalFault.SO_BLOCKED_HSM_REFUSED in self.faults and client.so_tries() == 0:
                return LoginRefusal.DEVICE_ERROR  # the fault: a blocked SO-PIN taken for a broken HSM
            if sw != SW.OK:
                if protocol.tries_from_sw(sw) is not None:
                    return LoginRefusal.WRONG_PIN
                return _PIN_ANSWERS.get(sw, LoginRefusal.DEVICE_ERROR)
            challenge = secrets.token_bytes(CHALLENGE_BYTES)
            rsp = client.sign_with_device_key(challenge)
        except DeviceError:
            return LoginRefusal.DEVICE_ERROR
        if rsp.sw != SW.OK or not verify_challenge(chain.device_public_key, challenge, rsp.data):
            return LoginRefusal.DEVICE_AUTH_FAILED
        return None

    # -- update (R12–R14) ------------------------------------------------------------------

    def update(self, device: PluggedDevice, by: str | None = None) -> UpdateResult:
        """Read the device, apply the gate, install through its loader. Only a logged-in
        session calls this (PortalSession.update / update_registered); `by` is the CHR of the
        HSM that session logged in with."""
        client = CardClient(device.card)
        try:
            client.ensure_selected()
            chain = cvc.verify_c_devaut(client.c_devaut(), self.root)
            so_tries = client.so_tries()
            faulty = {PortalFault.USER_BLOCKED_NOT_ADMITTED, PortalFault.BLOCKED_DEVICE_NEEDS_OWN_LOGIN} & self.faults
            user_blocked = bool(faulty) and so_tries is not None and client.user_blocked()
            view = DeviceView(chain.device_chr, so_tries, client.key_count(so_tries is not None), device.loader.so_blocked_updates(), user_blocked)
        except cvc.ChainError as exc:
            return UpdateResult(UpdateVerdict.REFUSED_DEVICE, f"not a genuine device: {exc}")
        except DeviceError as exc:
            return UpdateResult(UpdateVerdict.REFUSED_DEVICE, f"the device cannot be read: {exc}")
        if PortalFault.BLOCKED_DEVICE_NEEDS_OWN_LOGIN in self.faults and view.user_blocked and by != view.device_chr:
            return UpdateResult(UpdateVerdict.REFUSED_ACCOUNT, "a blocked HSM can only be updated by logging in with it", view.device_chr)
        admission = decide(view, self.faults)
        if admission.verdict is not UpdateVerdict.OK:
            return UpdateResult(admission.verdict, admission.message, view.device_chr)
        device.loader.install(counted=admission.counted, keep_identity=PortalFault.IDENTITY_KEPT_ON_UPDATE in self.faults)
        new_chr = self._installed_identity(client)
        self._forget(view.device_chr)
        return UpdateResult(UpdateVerdict.OK, admission.message, view.device_chr, new_chr, admission.counted)

    def _installed_identity(self, client: CardClient) -> str | None:
        """The identity the portal's CA issued during the update, as the device now shows it
        (None if it does not chain to the portal's root: a faulty firmware loader's)."""
        client.ensure_selected()
        try:
            return cvc.verify_c_devaut(client.c_devaut(), self.root).device_chr
        except cvc.ChainError:
            return None

    def _forget(self, device_chr: str) -> None:
        """The old identity is gone: "repeat the registration process and associate the new id"."""
        email = self.owners.pop(device_chr, None)
        if email is not None:
            self.accounts[email].login_devices.discard(device_chr)
        for account in self.accounts.values():
            account.registered.pop(device_chr, None)


@dataclass
class PortalSession:
    """A logged-in account."""

    portal: Portal
    account: Account
    device_chr: str  # the HSM that logged in

    def update(self, device: PluggedDevice) -> UpdateResult:
        """Update the HSM plugged into this PC: it need not be registered."""
        return self.portal.update(device, self.device_chr)

    def register(self, device: PluggedDevice) -> str:
        """Register a device with the account for remote updates; returns its CHR. Its
        certificate chain is all that is read: a blocked device can be registered."""
        client = CardClient(device.card)
        client.ensure_selected()
        chain = cvc.verify_c_devaut(client.c_devaut(), self.portal.root)
        self.account.registered[chain.device_chr] = device
        return chain.device_chr

    def update_registered(self, device_chr: str) -> UpdateResult:
        """Update a device registered with this account (when it next connects)."""
        device = self.account.registered.get(device_chr)
        if device is None:
            raise KeyError(f"{device_chr} is not registered with {self.account.email}")
        return self.portal.update(device, self.device_chr)


def working_hsm(user_pin: bytes, so_pin: bytes = protocol.DEFAULT_SO_PIN, retries: int = protocol.USER_PIN_TRIES_DEFAULT) -> VirtualToken:
    """A fresh emulated HSM initialized over APDUs: the working HSM an account logs in with."""
    from hsm_lifecycle.emulator.token import VirtualToken

    token = VirtualToken.manufacture()
    data = b"".join(
        [
            tlv.encode(protocol.TAG_INIT_OPTIONS, protocol.OPTION_RESET_RETRY_COUNTER.to_bytes(2, "big")),
            tlv.encode(protocol.TAG_INIT_USER_PIN, user_pin),
            tlv.encode(protocol.TAG_INIT_SO_PIN, so_pin),
            tlv.encode(protocol.TAG_INIT_USER_PIN_RETRY, bytes([retries])),
        ]
    )
    client = CardClient(token.transmit)
    client.ensure_selected()
    sw = client.send(command(protocol.CLA_PROPRIETARY, Ins.INITIALIZE_DEVICE, 0, 0, data)).sw
    if sw != SW.OK:
        raise DeviceError(f"INITIALIZE DEVICE of a fresh emulated token answered {sw:04X}")
    return token
