"""The SmartCard-HSM applet: command dispatch, applet selection, the card session.

Order of checks for every command (as a Java Card applet would do them): CLA (6E00), then
CLA+INS (6D00), then the APDU framing (6700), then the command's own P1/P2 and data checks.
Before the applet is selected the card behaves like a card manager that knows only SELECT:
SELECT of anything but our AID is 6A82, every other instruction 6D00.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import replace

from hsm_lifecycle.emulator import apdu, files, keyops
from hsm_lifecycle.emulator.apdu import ApduError, Command
from hsm_lifecycle.emulator.card import Session
from hsm_lifecycle.emulator.initialize import initialize_device
from hsm_lifecycle.emulator.keys import StoredKey
from hsm_lifecycle.emulator.objects import KeyCache, serial_of
from hsm_lifecycle.emulator.pins import change_reference_data, reset_retry_counter, verify
from hsm_lifecycle.emulator.profile import Fault, Profile
from hsm_lifecycle.emulator.state import CardState, StateFileError
from hsm_lifecycle.emulator.store import Persistence, PersistencePoint, PowerLoss
from hsm_lifecycle import protocol, tlv
from hsm_lifecycle.protocol import SW, Ins

Handler = Callable[["Applet", Command], tuple[bytes, int]]
Reidentify = Callable[[CardState], CardState]

SUPPORTED_CLA = frozenset({protocol.CLA_ISO, protocol.CLA_PROPRIETARY})
V2 = 2  # applet major version from which tag 85 carries options and type (§1)
V1_DESCRIPTOR = 0x78  # the v1.2 card's tag 82 (OpenSC#2432)


class _Answer(Exception):
    """A fault switch answers this status word instead of the command's own."""

    def __init__(self, sw: int) -> None:
        self.sw = sw
APPLET_SELECT_P2 = frozenset(
    {protocol.SELECT_P2_FCI, protocol.SELECT_P2_FCP, protocol.SELECT_P2_NO_RESPONSE}
)


class Applet:
    """One SmartCard-HSM applet instance working on a durable `CardState`.

    It is the `CardContext` the command modules work on, and it alone holds the card session."""

    def __init__(
        self,
        persistence: Persistence,
        faults: frozenset[Fault],
        reidentify: Reidentify,
    ) -> None:
        self.persistence = persistence
        self.keys = KeyCache()
        self.state: CardState = self._load()
        self.faults = faults
        self.reidentify = reidentify
        self.session = Session()
        iso, proprietary = protocol.CLA_ISO, protocol.CLA_PROPRIETARY
        self.handlers: dict[tuple[int, int], Handler] = {
            (iso, Ins.SELECT): select,
            (iso, Ins.VERIFY): verify,
            (iso, Ins.CHANGE_REFERENCE_DATA): change_reference_data,
            (iso, Ins.RESET_RETRY_COUNTER): reset_retry_counter,
            (proprietary, Ins.INITIALIZE_DEVICE): initialize_device,
            (proprietary, Ins.ENUMERATE_OBJECTS): files.enumerate_objects,
            (iso, Ins.READ_BINARY_ODD): files.read_binary,
            (iso, Ins.UPDATE_BINARY_ODD): files.update_binary,
            (iso, Ins.DELETE_FILE): files.delete_file,
            (iso, Ins.GET_CHALLENGE): keyops.get_challenge,
            (proprietary, Ins.IMPORT_DKEK_SHARE): keyops.dkek,
            (iso, Ins.GENERATE_ASYMMETRIC_KEY_PAIR): keyops.generate_key_pair,
            (proprietary, Ins.SIGN): keyops.sign,
            (proprietary, Ins.DECIPHER): keyops.decipher,
            (proprietary, Ins.WRAP_KEY): keyops.wrap_key,
            (proprietary, Ins.UNWRAP_KEY): keyops.unwrap_key,
        }

    @property
    def profile(self) -> Profile:
        return self.state.profile

    @property
    def serial(self) -> str:
        return serial_of(self.state)

    # --- the card session (R10): kept in `Session`, changed only through these ---------------------

    @property
    def authenticated(self) -> bool:
        return self.session.authenticated

    def login(self) -> None:
        self.session.login()

    def logout(self) -> None:
        self.session.logout()

    @property
    def current_ef(self) -> int | None:
        return self.session.current_ef

    def set_current_ef(self, fid: int | None) -> None:
        self.session.current_ef = fid

    # --- gates shared by the object and key commands ----------------------------------------------

    def require_user(self) -> None:
        """Initialized (else 6A88, R20) and the user PIN verified in this session (else 6982,
        R10); the SO-PIN never counts (R09)."""
        if not self.state.initialized:
            if Fault.UNINITIALIZED_KEY_USE_6982 in self.faults:
                raise ApduError(SW.SECURITY_STATUS_NOT_SATISFIED, "not initialized (answered as not logged in)")
            raise ApduError(SW.REFERENCED_DATA_NOT_FOUND, "not initialized")
        blocked_open = Fault.BLOCKED_USER_KEY_USE in self.faults and self.state.user_tries == 0
        if not self.session.authenticated and Fault.KEY_USE_WITHOUT_LOGIN not in self.faults and not blocked_open:
            raise ApduError(SW.SECURITY_STATUS_NOT_SATISFIED, "user PIN not verified")

    def require_room(self, state: CardState) -> None:
        """6A84 if `state` would not fit the storage budget; checked before anything changes."""
        if self.keys.storage_used(state) > self.profile.storage_bytes:
            raise ApduError(SW.NOT_ENOUGH_MEMORY, "storage full")

    def stored_key(self, fid: int) -> StoredKey | None:
        blob = self.state.keys.get(fid)
        return None if blob is None else self.keys.get(fid, blob)

    # --- persistence ---------------------------------------------------------------------------

    def commit(self, state: CardState, point: PersistencePoint) -> None:
        """Make `state` durable, then current. The in-memory state never runs ahead of storage."""
        try:
            self.persistence.commit(state, point)
        except PowerLoss:
            raise  # the token reloads from the store at the next power-on
        except Exception:
            # A save can fail after the new file is in place (the directory fsync): carry on
            # from what the store holds, not from what the failed save left in memory.
            with contextlib.suppress(Exception):
                self.state = self._load()
            raise
        self.state = state

    def instant(self, point: PersistencePoint) -> None:
        self.persistence.instant(point)

    def reload(self) -> None:
        """Drop everything volatile and continue from what the store holds (power loss)."""
        self.state = self._load()
        self.session.end()

    def _load(self) -> CardState:
        """The durable state with its identity and keys checked; a refusal names the file."""
        state = self.persistence.store.load()
        try:
            return self.keys.check(state)
        except StateFileError as exc:
            where = getattr(self.persistence.store, "path", None)
            raise StateFileError(f"{where}: {exc}" if where is not None else str(exc)) from exc

    def end_session(self) -> None:
        """Reset / power-off: deselect, forget authentication and the current EF."""
        self.session.end()

    # --- dispatch ------------------------------------------------------------------------------

    def process(self, capdu: bytes) -> bytes:
        """One command APDU in, response APDU out. Raises only what the power-loss hook raises."""
        pending, self.session.pending = self.session.pending, b""
        try:
            cla, ins, _, _ = apdu.header(capdu)
            if cla not in SUPPORTED_CLA:
                if Fault.UNKNOWN_CLA_ACCEPTED in self.faults and self.session.selected:
                    return apdu.reply(b"", SW.OK)
                raise ApduError(SW.CLA_NOT_SUPPORTED, f"CLA {cla:02X}")
            if (cla, ins) == (protocol.CLA_ISO, Ins.GET_RESPONSE):
                return self._get_response(apdu.parse(capdu), pending)
            handler = self.handlers.get((cla, ins))
            if handler is None and self.session.selected:
                self._unknown_ins_faults()
            if handler is None or (not self.session.selected and handler is not select):
                raise ApduError(SW.INS_NOT_SUPPORTED, f"INS {ins:02X}")
            cmd = self._parse(capdu)
            data, sw = handler(self, cmd)
        except ApduError as refused:
            return apdu.reply(b"", refused.sw)
        except _Answer as answer:
            return apdu.reply(b"", answer.sw)
        return self._deliver(data, sw, cmd.ne)

    def _unknown_ins_faults(self) -> None:
        """Fault switches for R22 on an INS the applet does not know (none: 6D00 follows)."""
        if Fault.UNKNOWN_INS_ACCEPTED in self.faults:
            raise _Answer(SW.OK)
        if Fault.SLOW_ON_UNKNOWN_INS in self.faults:
            time.sleep(2.5)
        if Fault.UNKNOWN_INS_SPENDS_TRY in self.faults and self.state.initialized and self.state.user_tries:
            self.commit(replace(self.state, user_tries=self.state.user_tries - 1), PersistencePoint.USER_TRY_SPENT)

    def _parse(self, capdu: bytes) -> apdu.Command:
        try:
            return apdu.parse(capdu)
        except ApduError:
            body = capdu[4:]
            if len(body) < 2 or body[0] == 0:
                raise
            cla, ins, p1, p2 = apdu.header(capdu)
            if Fault.LC_MISMATCH_ACCEPTED in self.faults and body[0] > len(body) - 1:
                return apdu.Command(cla, ins, p1, p2, body[1:], None, False)  # takes what came
            if Fault.LC_SHORT_ACCEPTED in self.faults and body[0] < len(body) - 1:
                return apdu.Command(cla, ins, p1, p2, body[1 : 1 + body[0]], None, False)  # ignores the rest
            raise

    def _deliver(self, data: bytes, sw: int, ne: int | None) -> bytes:
        """Cut a long answer to Ne and keep the rest for GET RESPONSE (61xx)."""
        if ne is None or len(data) <= ne or sw != SW.OK:
            return apdu.reply(data, sw)
        head, self.session.pending = data[:ne], data[ne:]
        more = min(len(self.session.pending), 0xFF)
        return apdu.reply(head, protocol.SW1_MORE_DATA << 8 | more)

    def _get_response(self, cmd: Command, pending: bytes) -> bytes:
        if cmd.p1p2 != 0x0000:
            raise ApduError(SW.INCORRECT_P1P2, "GET RESPONSE P1P2 must be 0000")
        if not pending:
            raise ApduError(SW.CONDITIONS_NOT_SATISFIED, "no response data waiting")
        if cmd.data:
            raise ApduError(SW.WRONG_LENGTH, "GET RESPONSE carries no data")
        return self._deliver(pending, SW.OK, cmd.ne if cmd.ne is not None else len(pending))

    # --- answers shared by several commands ------------------------------------------------------

    def applet_fcp(self) -> bytes:
        """FCP of the applet: tag 85 = options, type FF, version (§1). Applet versions before
        2.0 answer the FCI a v1.2 card sent in OpenSC#2432: 6F {82 01 78, 85 02 major minor}."""
        major, minor = self.profile.version
        if major < V2:
            return tlv.encode(
                protocol.TAG_FCI,
                tlv.encode(protocol.TAG_FCP_DESCRIPTOR, bytes([V1_DESCRIPTOR]))
                + tlv.encode(protocol.TAG_FCP_PROPRIETARY, bytes([major, minor])),
            )
        proprietary = self.state.options.to_bytes(2, "big") + bytes(
            [protocol.APPLET_TYPE_SMARTCARD_HSM, major, minor]
        )
        return tlv.encode(
            protocol.TAG_FCP,
            tlv.encode(protocol.TAG_FCP_DESCRIPTOR, bytes([protocol.FCP_DESCRIPTOR_DF]))
            + tlv.encode(protocol.TAG_FCP_DF_NAME, protocol.AID)
            + tlv.encode(protocol.TAG_FCP_PROPRIETARY, proprietary),
        )


def select(applet: Applet, cmd: Command) -> tuple[bytes, int]:
    """SELECT: the applet by AID; EFs by FID once the applet is selected."""
    if cmd.p1 != protocol.SELECT_P1_BY_NAME:
        if not applet.session.selected:
            raise ApduError(SW.FILE_NOT_FOUND, "no applet selected")
        return files.select_ef(applet, cmd)
    if cmd.data != protocol.AID:
        # Foreign AIDs (coolkey, muscle, ...) must not be mistaken for theirs; a failed SELECT
        # leaves the current selection as it was.
        raise ApduError(SW.FILE_NOT_FOUND, "no applet with this AID")
    if cmd.p2 not in APPLET_SELECT_P2:
        raise ApduError(SW.INCORRECT_P1P2, f"SELECT P2 {cmd.p2:02X}")
    keep_login = applet.session.selected and Fault.SESSION_SURVIVES_RESELECT in applet.faults
    applet.session.reselect(keep_login)
    if cmd.p2 == protocol.SELECT_P2_NO_RESPONSE:
        return b"", SW.OK
    return applet.applet_fcp(), SW.OK
