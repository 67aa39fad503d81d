"""Abstract commands -> APDUs -> abstract outputs (docs/design.md, the normative table).

The mapper is the only place that knows bytes. It tracks what it set on the device from the
device's own answers (never from the model's predictions: the oracle judges, the mapper only
drives): the current user PIN and SO-PIN of the two alternates, the keys it generated, the
data object it writes (a CDxx file) and the device key CC00 it compares (R08).
Helper reads (EF.C_DevAut, ENUMERATE OBJECTS, the FCP) are free and exist for the invariants.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass, field, replace
from typing import Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from hsm_lifecycle.conformance.transport.base import Response, Transport
from hsm_lifecycle import tlv
from hsm_lifecycle.protocol import (
    AID,
    ALGO_ECDH,
    ALGO_ECDSA_SHA256,
    CLA_ISO,
    CLA_PROPRIETARY,
    DEFAULT_SO_PIN,
    DEFAULT_USER_PIN,
    FID_C_DEVAUT,
    FID_DEVICE_KEY,
    FID_PREFIX_PRIVATE_KEY,
    FID_PREFIX_PROTECTED_DATA,
    PIN_SO,
    PIN_USER,
    RRC_COUNTER_ONLY,
    RRC_NEW_PIN,
    SW,
    TAG_DISCRETIONARY_DATA,
    TAG_FCP_PROPRIETARY,
    TAG_INIT_DKEK_SHARES,
    TAG_INIT_OPTIONS,
    TAG_INIT_SO_PIN,
    TAG_INIT_USER_PIN,
    TAG_INIT_USER_PIN_RETRY,
    TAG_OFFSET,
    Ins,
)
from hsm_lifecycle.model.commands import INITIALIZE, OVER_LONG, RIGHT, TAMPERED, WRONG, WRONG_LENGTH, Command
from hsm_lifecycle.model.outputs import dkek_status as dkek_status_output
from hsm_lifecycle.model.outputs import DATA_DIFFERS, DEVICE_KEY_DIFFERS, UPDATE_OK

# design.md, "PINs the mapper uses".
ALT_USER_PIN = b"12345678"
ALT_SO_PIN = bytes.fromhex("3132333435363738")
WRONG_USER_PIN = b"000000"
WRONG_LENGTH_USER_PIN = b"12345"
WRONG_SO_PIN = bytes(8)
SIGN_HASH = bytes(range(32))  # any 32 bytes: the device signs a hash, it does not check it
OVER_LONG_USER_PIN = b"12345678901234567"  # 17 bytes: one more than a user PIN may have
# The suite's PIN-protected data object (a CDxx file, R09) and what it writes into it.
DATA_CONTENT = b"hsm-lifecycle: only the user PIN reads this"


# DKEK key backup (R23). The suite's two DKEK shares, "right" (A) and "wrong" (B): test values,
# never an owner's (a token R23 runs on ends re-initialized without a DKEK).
DKEK_SHARES: dict[str, bytes] = {
    variant: hashlib.sha256(f"hsm-lifecycle DKEK share {name}".encode()).digest() for variant, name in ((RIGHT, "A"), (WRONG, "B"))
}
WRAP_P2 = 0x92
UNWRAP_P2 = 0x93
# What UNWRAP is given when no blob is held: no key check value any DKEK has.
NO_BLOB = bytes(64)


@dataclass(frozen=True, slots=True)
class DkekStatus:
    """The DKEK status query's answer: [shares][outstanding][key check value (8)]."""

    shares: int
    outstanding: int
    kcv: bytes

    @classmethod
    def parse(cls, data: bytes) -> "DkekStatus | None":
        return cls(data[0], data[1], data[2:10]) if len(data) >= 10 else None


def tampered(blob: bytes) -> bytes:
    """The blob with one bit flipped in its encrypted part: the key check value still names the
    DKEK, the CMAC no longer verifies."""
    at = len(blob) // 2
    return blob[:at] + bytes([blob[at] ^ 0x01]) + blob[at + 1 :]


class PortalUnavailable(Exception):
    """firmware_update / portal_login asked of a target that has no portal."""


class PortalLink(Protocol):
    """Who works the firmware-update portal (conformance.operator): the simulated portal on the
    emulator, a person on a real token. Each returns the abstract output ("update-ok", ...)."""

    def firmware_update(self, mapper: "Mapper") -> str: ...

    def login(self, mapper: "Mapper") -> str: ...


def _other(first: bytes, default_alt: bytes, fallback_alt: bytes) -> bytes:
    return default_alt if first != default_alt else fallback_alt


@dataclass
class PinBook:
    """Two alternates per PIN; CHANGE / RRC with a new PIN toggle between them."""

    user: tuple[bytes, bytes]
    so: tuple[bytes, bytes]
    user_idx: int = 0
    so_idx: int = 0
    wrong_user: bytes = WRONG_USER_PIN
    wrong_so: bytes = WRONG_SO_PIN
    wrong_user_exact: bytes | None = None  # a former PIN the token must now refuse (R07)

    @classmethod
    def create(cls, user_pin: bytes | None = None, so_pin: bytes | None = None) -> "PinBook":
        user = user_pin or DEFAULT_USER_PIN
        so = so_pin or DEFAULT_SO_PIN
        book = cls(
            user=(user, _other(user, ALT_USER_PIN, DEFAULT_USER_PIN)),
            so=(so, _other(so, ALT_SO_PIN, DEFAULT_SO_PIN)),
        )
        # A user whose real PIN is "000000" must not be "wrong" by accident.
        if WRONG_USER_PIN in book.user:
            book.wrong_user = b"999999" if b"999999" not in book.user else b"999998"
        if WRONG_SO_PIN in book.so:
            book.wrong_so = bytes([0xFF] * 8)
        return book

    @property
    def user_pin(self) -> bytes:
        return self.user[self.user_idx]

    @property
    def wrong_user_pin(self) -> bytes:
        """Wrong, but as long as the current PIN: CHANGE 81 splits old||new by the stored PIN's
        length, so a shorter wrong PIN would turn into a malformed new PIN (6A80), not a wrong one."""
        if self.wrong_user_exact is not None:
            return self.wrong_user_exact
        wrong = self.wrong_user[:1] * len(self.user_pin)
        return wrong if wrong not in self.user else bytes([self.wrong_user[0] ^ 1]) * len(self.user_pin)

    @property
    def next_user_pin(self) -> bytes:
        return self.user[1 - self.user_idx]

    @property
    def so_pin(self) -> bytes:
        return self.so[self.so_idx]

    @property
    def next_so_pin(self) -> bytes:
        return self.so[1 - self.so_idx]

    @property
    def at_origin(self) -> bool:
        """Both PINs are the ones the suite started with (on a real token: the user's own)."""
        return self.user_idx == 0 and self.so_idx == 0


def apdu(cla: int, ins: int, p1: int, p2: int, data: bytes = b"", le: int | None = None, extended: bool = False) -> bytes:
    """ISO 7816-4 command encoding: short unless `extended` (or the data needs it)."""
    head = bytes([cla, ins, p1, p2])
    ext = extended or len(data) > 255 or (le is not None and le > 256)
    body = b""
    if data:
        body += (b"\x00" + len(data).to_bytes(2, "big")) if ext else bytes([len(data)])
        body += data
    if le is not None:
        if ext:
            body += (b"" if data else b"\x00") + (le % 65536).to_bytes(2, "big")
        else:
            body += bytes([le % 256])
    return head + body


def _gakp_body() -> bytes:
    """GENERATE ASYMMETRIC KEY PAIR data: the content of a CV body for an EC P-256 key (§4)."""
    from hsm_lifecycle.cvc import CURVES, encode_oid
    from hsm_lifecycle.protocol import OID_TA_ECDSA_SHA256, TAG_CV_CAR, TAG_CV_CHR, TAG_CV_CPI, TAG_CV_PUBLIC_KEY, TAG_OID

    d = CURVES["secp256r1"]
    size = d.field_bytes
    key = tlv.encode_constructed(
        TAG_CV_PUBLIC_KEY,
        [
            tlv.encode(TAG_OID, encode_oid(OID_TA_ECDSA_SHA256)),
            tlv.encode(0x81, d.p.to_bytes(size, "big")),
            tlv.encode(0x82, d.a.to_bytes(size, "big")),
            tlv.encode(0x83, d.b.to_bytes(size, "big")),
            tlv.encode(0x84, d.generator),
            tlv.encode(0x85, d.n.to_bytes(d.order_bytes, "big")),
            tlv.encode(0x87, bytes([d.h])),
        ],
    )
    return b"".join(
        [
            tlv.encode(TAG_CV_CPI, b"\x00"),
            tlv.encode(TAG_CV_CAR, b"UTCA00001"),
            key,
            tlv.encode(TAG_CV_CHR, b"UTCTSUITE00001"),
        ]
    )


@dataclass
class Mapper:
    transport: Transport
    pins: PinBook = field(default_factory=PinBook.create)
    keys: list[int] = field(default_factory=list)  # key ids present, oldest first, as believed
    portal: PortalLink | None = None  # set by the target (conformance.operator), else None
    blob: bytes | None = None  # the key blob the last successful WRAP KEY answered (R23)
    objects: list[int] = field(default_factory=list)  # [the CDxx file write_data writes], shared like keys
    device_key: object | None = None  # CC00's public key, from 2F02, kept until a firmware update
    _gakp: bytes = field(default_factory=_gakp_body, repr=False)

    # -- the abstract alphabet -----------------------------------------------------------------

    def as_sent(self, cmd: Command) -> Command:
        """`cmd` with what the model needs to know of the bytes it becomes: the length of the
        user PIN INITIALIZE sets (a device may cap tag 91 by it: retries-by-pin-length)."""
        if cmd.name == INITIALIZE and cmd.pin_length != len(self.pins.user[0]):
            return replace(cmd, pin_length=len(self.pins.user[0]))
        return cmd

    def run(self, cmd: Command, *, uninitialized: bool) -> str:
        """Send the command's APDUs; return the decisive SW as four hex digits (or a portal word).

        `uninitialized` is the model's belief that the device has no SO-PIN yet: it decides
        what INITIALIZE's initialization code means (design.md: R21)."""
        handler = getattr(self, f"_do_{cmd.name}")
        return handler(cmd, uninitialized)

    def _do_select(self, cmd: Command, uninit: bool) -> str:
        return self.select().sw_hex

    def _do_power_cycle(self, cmd: Command, uninit: bool) -> str:
        self.transport.power_cycle()
        return self.select().sw_hex

    def _do_query_user(self, cmd: Command, uninit: bool) -> str:
        return self.send(apdu(CLA_ISO, Ins.VERIFY, 0, PIN_USER)).sw_hex

    def _do_query_so(self, cmd: Command, uninit: bool) -> str:
        return self.send(apdu(CLA_ISO, Ins.VERIFY, 0, PIN_SO)).sw_hex

    def _do_verify_user(self, cmd: Command, uninit: bool) -> str:
        pin = {
            RIGHT: self.pins.user_pin, WRONG: self.pins.wrong_user_pin, WRONG_LENGTH: WRONG_LENGTH_USER_PIN, OVER_LONG: OVER_LONG_USER_PIN,
        }[cmd.pin]  # type: ignore[index]
        return self.send(apdu(CLA_ISO, Ins.VERIFY, 0, PIN_USER, pin)).sw_hex

    def _do_initialize(self, cmd: Command, uninit: bool) -> str:
        if cmd.so in _BAD_LENGTHS:
            code_idx = 0 if uninit else self.pins.so_idx
            code = _sized(self.pins.so[code_idx], cmd.so)  # type: ignore[arg-type]
        elif uninit:
            # Any code is taken (R21): "right" sends the primary SO-PIN, "wrong" the alternate.
            code_idx = 0 if cmd.so == RIGHT else 1
            code = self.pins.so[code_idx]
        else:
            code_idx = self.pins.so_idx
            code = self.pins.so_pin if cmd.so == RIGHT else self.pins.wrong_so
        user_pin = self.pins.user[0]
        data = b"".join(
            [
                tlv.encode(TAG_INIT_OPTIONS, (cmd.options or 0).to_bytes(2, "big")),
                tlv.encode(TAG_INIT_USER_PIN, user_pin),
                tlv.encode(TAG_INIT_SO_PIN, code),
                tlv.encode(TAG_INIT_USER_PIN_RETRY, bytes([cmd.retries or 0])),
            ]
        )
        if cmd.dkek_shares is not None:
            data += tlv.encode(TAG_INIT_DKEK_SHARES, bytes([cmd.dkek_shares]))
        rsp = self.send(apdu(CLA_PROPRIETARY, Ins.INITIALIZE_DEVICE, 0, 0, data))
        if rsp.sw == SW.OK:
            self.pins.user_idx = 0
            if uninit:
                self.pins.so_idx = code_idx
            self.keys.clear()
        return rsp.sw_hex

    def _do_reset_retry_counter(self, cmd: Command, uninit: bool) -> str:
        if cmd.so in _BAD_LENGTHS:
            # With a new PIN the new user PIN has the wrong length, else the SO-PIN (R16).
            if cmd.new_pin:
                new = _USER_PIN_OF[cmd.so]  # type: ignore[index]
                return self.send(apdu(CLA_ISO, Ins.RESET_RETRY_COUNTER, RRC_NEW_PIN, PIN_USER, self.pins.so_pin + new)).sw_hex
            so = _sized(self.pins.so_pin, cmd.so)  # type: ignore[arg-type]
            return self.send(apdu(CLA_ISO, Ins.RESET_RETRY_COUNTER, RRC_COUNTER_ONLY, PIN_USER, so)).sw_hex
        so = self.pins.so_pin if cmd.so == RIGHT else self.pins.wrong_so
        if cmd.new_pin:
            rsp = self.send(apdu(CLA_ISO, Ins.RESET_RETRY_COUNTER, RRC_NEW_PIN, PIN_USER, so + self.pins.next_user_pin))
            if rsp.sw == SW.OK:
                self.pins.user_idx = 1 - self.pins.user_idx
        else:
            rsp = self.send(apdu(CLA_ISO, Ins.RESET_RETRY_COUNTER, RRC_COUNTER_ONLY, PIN_USER, so))
        return rsp.sw_hex

    def _do_change_user_pin(self, cmd: Command, uninit: bool) -> str:
        if cmd.pin in _BAD_LENGTHS:  # the right old PIN, a new one of the wrong length (R16)
            new = _USER_PIN_OF[cmd.pin]  # type: ignore[index]
            return self.send(apdu(CLA_ISO, Ins.CHANGE_REFERENCE_DATA, 0, PIN_USER, self.pins.user_pin + new)).sw_hex
        old = self.pins.user_pin if cmd.pin == RIGHT else self.pins.wrong_user_pin
        rsp = self.send(apdu(CLA_ISO, Ins.CHANGE_REFERENCE_DATA, 0, PIN_USER, old + self.pins.next_user_pin))
        if rsp.sw == SW.OK:
            self.pins.user_idx = 1 - self.pins.user_idx
        return rsp.sw_hex

    def _do_change_so_pin(self, cmd: Command, uninit: bool) -> str:
        if cmd.so in _BAD_LENGTHS:  # an old SO-PIN of 7 or 9 bytes (R16)
            old = _sized(self.pins.so_pin, cmd.so)  # type: ignore[arg-type]
            return self.send(apdu(CLA_ISO, Ins.CHANGE_REFERENCE_DATA, 0, PIN_SO, old + self.pins.next_so_pin)).sw_hex
        old = self.pins.so_pin if cmd.so == RIGHT else self.pins.wrong_so
        rsp = self.send(apdu(CLA_ISO, Ins.CHANGE_REFERENCE_DATA, 0, PIN_SO, old + self.pins.next_so_pin))
        if rsp.sw == SW.OK:
            self.pins.so_idx = 1 - self.pins.so_idx
        return rsp.sw_hex

    def _do_generate_key(self, cmd: Command, uninit: bool) -> str:
        key_id = self._free_key_id()
        rsp = self.send(apdu(CLA_ISO, Ins.GENERATE_ASYMMETRIC_KEY_PAIR, key_id, 0, self._gakp, le=0, extended=True))
        return self._key_made(key_id, rsp)

    def _free_key_id(self) -> int:
        present = self.key_ids()
        return next(i for i in range(1, 256) if i not in present) if present else 1

    def _key_made(self, key_id: int, rsp: Response) -> str:
        """A key the command made: the mapper tracks it, and the custody deletes it afterwards."""
        if rsp.sw == SW.OK:
            self.keys.append(key_id)
            note = getattr(self.transport, "note_generated", None)
            if note is not None:
                note(key_id)
        return rsp.sw_hex

    @property
    def newest_key(self) -> int:
        return self.keys[-1] if self.keys else 1

    def _do_sign(self, cmd: Command, uninit: bool) -> str:
        return self.send(apdu(CLA_PROPRIETARY, Ins.SIGN, self.newest_key, ALGO_ECDSA_SHA256, SIGN_HASH, le=0, extended=True)).sw_hex

    def _do_delete_key(self, cmd: Command, uninit: bool) -> str:
        key_id = self.newest_key
        fid = bytes([FID_PREFIX_PRIVATE_KEY, key_id])
        rsp = self.send(apdu(CLA_ISO, Ins.DELETE_FILE, 0x02, 0x00, fid))
        if rsp.sw == SW.OK and key_id in self.keys:
            self.keys.remove(key_id)
            note = getattr(self.transport, "note_deleted", None)
            if note is not None:
                note(key_id)
        return rsp.sw_hex

    def _do_firmware_update(self, cmd: Command, uninit: bool) -> str:
        output = self._portal(cmd).firmware_update(self)
        if output == UPDATE_OK:
            self.device_key = None  # a new device identity (R14): CC00 is compared anew
            # As shipped now: the keys the mapper tracked are gone (the PINs go with the next
            # INITIALIZE, which on an uninitialized token takes any code).
            note = getattr(self.transport, "note_deleted", None)
            for key_id in self.keys:
                if note is not None:
                    note(key_id)
            self.keys.clear()
        return output

    def _do_portal_login(self, cmd: Command, uninit: bool) -> str:
        return self._portal(cmd).login(self)

    # -- DKEK key backup (R23), as sc-hsm-tool sends it (OpenSC's sc-hsm driver) ---------------

    def _do_dkek_status(self, cmd: Command, uninit: bool) -> str:
        rsp, status = self.dkek_status()
        return dkek_status_output(status.shares, status.outstanding) if status is not None else rsp.sw_hex

    def _do_import_dkek_share(self, cmd: Command, uninit: bool) -> str:
        return self.import_dkek_share(DKEK_SHARES[cmd.share or RIGHT]).sw_hex

    def _do_wrap_key(self, cmd: Command, uninit: bool) -> str:
        rsp = self.wrap_key(self.newest_key)
        if rsp.sw == SW.OK:
            self.blob = rsp.data
        return rsp.sw_hex

    def _do_unwrap_key(self, cmd: Command, uninit: bool) -> str:
        blob = self.blob if self.blob is not None else NO_BLOB
        key_id = self._free_key_id()
        return self._key_made(key_id, self.unwrap_key(key_id, tampered(blob) if cmd.blob == TAMPERED else blob))

    def dkek_status(self) -> tuple[Response, DkekStatus | None]:
        """`80 52 00 00 00`: free, no PIN (sc-hsm-tool shows it on every run)."""
        rsp = self.send(apdu(CLA_PROPRIETARY, Ins.IMPORT_DKEK_SHARE, 0, 0, le=0))
        return rsp, DkekStatus.parse(rsp.data) if rsp.sw == SW.OK else None

    def import_dkek_share(self, share: bytes) -> Response:
        """`80 52 00 00 20 <share> 00` (case 4)."""
        return self.send(apdu(CLA_PROPRIETARY, Ins.IMPORT_DKEK_SHARE, 0, 0, share, le=0))

    def wrap_key(self, key_id: int) -> Response:
        """`80 72 <id> 92 00 00 00` (case 2, extended)."""
        return self.send(apdu(CLA_PROPRIETARY, Ins.WRAP_KEY, key_id, WRAP_P2, le=0, extended=True))

    def unwrap_key(self, key_id: int, blob: bytes) -> Response:
        """`80 74 <id> 93 00 <LL LL> <blob>` (case 3, extended), as sc-hsm-tool 0.23 sends it
        (seen over pcscd with OPENSC_DEBUG; it does not go through EF 2F10)."""
        return self.send(apdu(CLA_PROPRIETARY, Ins.UNWRAP_KEY, key_id, UNWRAP_P2, blob, extended=True))

    # -- the widened alphabet ------------------------------------------------------------------

    def _do_decipher(self, cmd: Command, uninit: bool) -> str:
        """ECDH (80 62, algorithm 80) of the newest key with a point of its curve (P-256's G)."""
        return self.send(apdu(CLA_PROPRIETARY, Ins.DECIPHER, self.newest_key, ALGO_ECDH, _PEER_POINT, le=0, extended=True)).sw_hex

    def _do_write_data(self, cmd: Command, uninit: bool) -> str:
        """UPDATE BINARY (odd INS) of the suite's CDxx file at offset 0: creates it (§4)."""
        fid = self.object_fid()
        body = tlv.encode(TAG_OFFSET, b"\x00\x00") + tlv.encode(TAG_DISCRETIONARY_DATA, DATA_CONTENT)
        return self.send(apdu(CLA_ISO, Ins.UPDATE_BINARY_ODD, fid >> 8, fid & 0xFF, body)).sw_hex

    def _do_read_protected(self, cmd: Command, uninit: bool) -> str:
        """READ BINARY (odd INS) of that file, Le = what was written: 9000 only with that content."""
        fid = self.object_fid()
        offset = tlv.encode(TAG_OFFSET, b"\x00\x00")
        rsp = self.send(apdu(CLA_ISO, Ins.READ_BINARY_ODD, fid >> 8, fid & 0xFF, offset, le=len(DATA_CONTENT)))
        if rsp.sw in (SW.OK, SW.END_OF_FILE) and rsp.data != DATA_CONTENT:
            return DATA_DIFFERS
        return rsp.sw_hex

    def _do_warm_reset(self, cmd: Command, uninit: bool) -> str:
        self.transport.reset()
        return self.select().sw_hex

    def _do_device_sign(self, cmd: Command, uninit: bool) -> str:
        """SIGN with CC00 over a fresh challenge; a 9000 whose signature does not verify under the
        device key of EF.C_DevAut, as read at the first device_sign since the last firmware
        update (whatever that one answered), is `device-key-differs` (R08: INITIALIZE keeps CC00)."""
        known = self.device_key
        if known is None:
            try:
                known = self.device_key = device_public_key(self.read_identity())
            except (IdentityUnreadable, ValueError) as exc:
                raise IdentityUnreadable(f"device_sign needs the device certificate: {exc}") from exc
        challenge = secrets.token_bytes(32)
        rsp = self.send(apdu(CLA_PROPRIETARY, Ins.SIGN, FID_DEVICE_KEY & 0xFF, ALGO_ECDSA_SHA256, challenge, le=0, extended=True))
        if rsp.sw != SW.OK:
            return rsp.sw_hex
        try:
            known.verify(rsp.data, challenge, ec.ECDSA(hashes.SHA256()))  # type: ignore[attr-defined]
        except (InvalidSignature, ValueError):
            return DEVICE_KEY_DIFFERS
        return rsp.sw_hex

    @property
    def data_fid(self) -> int | None:
        return self.objects[0] if self.objects else None

    def object_fid(self) -> int:
        """The CDxx file of the suite: the first one ENUMERATE does not list, chosen once per
        token (the list is the target's, so the tests of one persistent token share it)."""
        if not self.objects:
            listed = set(self.enumerate_objects() or ())
            prefix = FID_PREFIX_PROTECTED_DATA << 8
            self.objects.append(next(prefix | i for i in range(1, 256) if prefix | i not in listed))
        return self.objects[0]

    def _portal(self, cmd: Command) -> PortalLink:
        if self.portal is None:
            raise PortalUnavailable(f"{cmd.name} needs the firmware-update portal, which this target does not have")
        return self.portal

    # -- free helper reads ------------------------------------------------------------------------

    def send(self, capdu: bytes) -> Response:
        return self.transport.transmit(capdu)

    def select(self) -> Response:
        return self.send(apdu(CLA_ISO, Ins.SELECT, 0x04, 0x00, AID, le=0))

    def fcp_proprietary(self) -> bytes | None:
        """Tag 85 of the applet's FCP (v2+: options(2), type, major, minor), from a SELECT."""
        rsp = self.select()
        if rsp.sw != SW.OK:
            return None
        try:
            fcp = tlv.decode_exact(rsp.data)
            prop = tlv.find(tlv.decode_all(fcp.value), TAG_FCP_PROPRIETARY)
        except ValueError:
            return None
        return prop.value if prop is not None else None

    def options_from_fcp(self) -> int | None:
        prop = self.fcp_proprietary()
        return int.from_bytes(prop[:2], "big") if prop is not None and len(prop) >= 5 else None

    def version_from_fcp(self) -> str | None:
        """The applet version "M.m" (OpenSC takes the last two bytes of tag 85)."""
        prop = self.fcp_proprietary()
        return f"{prop[-2]}.{prop[-1]}" if prop is not None and len(prop) >= 2 else None

    def enumerate_objects(self) -> list[int] | None:
        """FIDs from ENUMERATE OBJECTS, or None if the device refuses (e.g. uninitialized)."""
        rsp = self.send(apdu(CLA_PROPRIETARY, Ins.ENUMERATE_OBJECTS, 0, 0, le=0, extended=True))
        if rsp.sw != SW.OK:
            return None
        return [int.from_bytes(rsp.data[i : i + 2], "big") for i in range(0, len(rsp.data) - 1, 2)]

    def key_ids(self) -> set[int] | None:
        """Private-key ids (CCxx) other than the device key CC00."""
        fids = self.enumerate_objects()
        if fids is None:
            return None
        return {fid & 0xFF for fid in fids if fid >> 8 == FID_PREFIX_PRIVATE_KEY and fid & 0xFF}

    def read_identity(self) -> bytes:
        """EF.C_DevAut (2F02), read in chunks with READ BINARY (odd INS) until end of file."""
        out = b""
        while True:
            offset = tlv.encode(TAG_OFFSET, len(out).to_bytes(2, "big"))
            rsp = self.send(apdu(CLA_ISO, Ins.READ_BINARY_ODD, FID_C_DEVAUT >> 8, FID_C_DEVAUT & 0xFF, offset, le=0, extended=True))
            if rsp.sw not in (SW.OK, SW.END_OF_FILE):
                raise IdentityUnreadable(f"reading EF.C_DevAut at offset {len(out)} answered {rsp.sw_hex}")
            out += rsp.data
            # Ne was 65536: anything shorter, or end of file, is the whole rest of the file.
            if rsp.sw == SW.END_OF_FILE or len(rsp.data) < 65536:
                return out
            if len(out) > 0x8000:
                raise IdentityUnreadable("EF.C_DevAut is larger than 32 KB: not a device certificate chain")


class IdentityUnreadable(Exception):
    pass


def device_public_key(ef_2f02: bytes) -> ec.EllipticCurvePublicKey:
    """The device key (CC00) the device certificate in EF.C_DevAut names, its curve taken from
    the DICA or the root the DICA names. Signatures are not verified here: whether the chain
    holds is R18's to judge; comparing CC00 (R08) only needs the key."""
    from hsm_lifecycle.cvc import CVCertificate, CvcError, load_roots, parse_cv_objects

    try:
        device, dica = parse_cv_objects(ef_2f02)[:2]
        root = load_roots().get(dica.car if isinstance(dica, CVCertificate) else "")
        inherited = root.public_key.domain if root is not None else None
        key = device.public_key.to_cryptography(dica.public_key.resolve_domain(inherited))  # type: ignore[union-attr]
    except (CvcError, AttributeError, ValueError) as exc:
        raise ValueError(f"EF.C_DevAut names no usable device key: {exc}") from exc
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise ValueError("EF.C_DevAut names no EC device key")
    return key


_BAD_LENGTHS = (WRONG_LENGTH, OVER_LONG)
_USER_PIN_OF = {WRONG_LENGTH: WRONG_LENGTH_USER_PIN, OVER_LONG: OVER_LONG_USER_PIN}


def _sized(so_pin: bytes, variant: str) -> bytes:
    """An SO-PIN one byte short (7) or one byte long (9)."""
    return so_pin[:-1] if variant == WRONG_LENGTH else so_pin + b"\x00"


def _peer_point() -> bytes:
    from hsm_lifecycle.cvc import CURVES

    return CURVES["secp256r1"].generator


_PEER_POINT = _peer_point()
