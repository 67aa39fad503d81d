"""PC/SC transport (pyscard's low-level `scard` API): a real token, or the emulator behind
pcscd + vpcd (target `emulator:vpcd`).

The card is held with SCARD_SHARE_EXCLUSIVE so no other program (OpenSC, a browser,
scdaemon) can slip an APDU into a campaign. Every PC/SC failure becomes a TransportError whose
message is one sentence saying what happened and what to do.
"""

from __future__ import annotations

import os
import time

from smartcard import scard

from hsm_lifecycle.conformance.transport.base import CardRemovedError, Response, Transport, TransportError
from hsm_lifecycle.protocol import SW1_MORE_DATA, SW1_WRONG_LE

_PROTOCOLS = scard.SCARD_PROTOCOL_T0 | scard.SCARD_PROTOCOL_T1
_GET_RESPONSE_LIMIT = 256  # 61xx chains longer than 64 KB mean a broken card, not data
# After a failed exchange pcscd notices a vanished card at its next presence poll (~0.4 s).
_REMOVAL_SETTLE_MS = 1500

# Errors that mean "the card (or its reader) went away".
_GONE = {scard.SCARD_W_REMOVED_CARD, scard.SCARD_E_NO_SMARTCARD, scard.SCARD_E_READER_UNAVAILABLE,
         scard.SCARD_E_UNKNOWN_READER}
# Errors after which the card may or may not still be there: look before saying which.
_MAYBE_GONE = {scard.SCARD_E_NOT_TRANSACTED, scard.SCARD_F_COMM_ERROR, scard.SCARD_W_UNRESPONSIVE_CARD,
               scard.SCARD_W_UNPOWERED_CARD, scard.SCARD_E_INVALID_HANDLE}
_NO_SERVICE = {scard.SCARD_E_NO_SERVICE, scard.SCARD_E_SERVICE_STOPPED}


_GONE_WAIT_S = 3.0  # how long a reinsert waits for pcscd to see the card gone


def _code(rv: int) -> str:
    return f"{scard.SCardGetErrorMessage(rv).rstrip('.')} (0x{rv & 0xFFFFFFFF:08X})"


def _no_service_message() -> str:
    socket_name = os.environ.get("PCSCLITE_CSOCK_NAME")
    where = f" at {socket_name} (PCSCLITE_CSOCK_NAME)" if socket_name else ""
    return (f"pcscd is not running{where}: start it (as root: `pcscd`, or `systemctl start pcscd.socket`; "
            "for the emulator: `source scripts/pcscd.sh && pcscd_start`) and retry")


def _establish() -> int:
    rv, context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
    if rv in _NO_SERVICE:
        raise TransportError(_no_service_message())
    if rv != scard.SCARD_S_SUCCESS:
        raise TransportError(f"cannot talk to pcscd: {_code(rv)}; check that pcscd runs and retry")
    return context


def _readers(context: int) -> list[str]:
    rv, readers = scard.SCardListReaders(context, [])
    if rv == scard.SCARD_E_NO_READERS_AVAILABLE:
        return []
    if rv in _NO_SERVICE:
        raise TransportError(_no_service_message())
    if rv != scard.SCARD_S_SUCCESS:
        raise TransportError(f"pcscd could not list its readers: {_code(rv)}; restart pcscd and retry")
    return list(readers)


def list_readers() -> list[str]:
    """The readers pcscd offers (TransportError if pcscd is not running)."""
    context = _establish()
    try:
        return _readers(context)
    finally:
        scard.SCardReleaseContext(context)


def reader_has_card(reader: str) -> bool:
    """Whether pcscd sees a card in `reader` (TransportError if pcscd is not running)."""
    context = _establish()
    try:
        rv, states = scard.SCardGetStatusChange(context, 0, [(reader, scard.SCARD_STATE_UNAWARE)])
        if rv != scard.SCARD_S_SUCCESS:
            raise TransportError(f"pcscd cannot tell the state of reader '{reader}': {_code(rv)}; check the name")
        return bool(states[0][1] & scard.SCARD_STATE_PRESENT)
    finally:
        scard.SCardReleaseContext(context)


def empty_vpcd_port(port: int) -> bool:
    """For `emulator.vpcd.lease_ports(usable=...)`: the port's reader holds no card, so no
    emulator started outside the leases (by hand, or orphaned) sits on it."""
    from hsm_lifecycle.emulator.vpcd import vpcd_readers

    reader = vpcd_readers().get(port)
    return reader is not None and not reader_has_card(reader)


def select_reader(readers: list[str], substring: str) -> str:
    """The one reader whose name contains `substring` (case-insensitive)."""
    if not readers:
        raise TransportError("pcscd has no reader: plug in the token's reader (or start the emulator on a "
                             "vpcd port) and retry")
    exact = [r for r in readers if r == substring]
    matches = exact or [r for r in readers if substring.lower() in r.lower()]
    listed = ", ".join(f"'{r}'" for r in readers)
    if not matches:
        raise TransportError(f"no reader matches '{substring}'; the readers are {listed}: pass a substring of one")
    if len(matches) > 1:
        names = ", ".join(f"'{r}'" for r in matches)
        raise TransportError(f"'{substring}' matches several readers ({names}): pass a more specific substring")
    return matches[0]


class PcscTransport(Transport):
    """One exclusive PC/SC connection to the card in the reader matching `reader_substring`.

    `card_timeout`: how long connect() waits for a card to appear (an emulator needs up to one
    pcscd poll, ~0.4 s, to be seen after it connects) and for another program to let go of it;
    0 fails at once on an empty or busy reader.
    """

    def __init__(self, reader_substring: str, *, card_timeout: float = 0.0) -> None:
        self._substring = reader_substring
        self._card_timeout = card_timeout
        self._context: int | None = None
        self._card: int | None = None
        self._protocol = scard.SCARD_PCI_T1
        self.reader: str | None = None
        self.atr: bytes = b""

    # -- Transport -------------------------------------------------------------------------

    def connect(self) -> bytes:
        if self._card is not None:
            return self.atr
        self._context = _establish()
        try:
            self.reader = select_reader(_readers(self._context), self._substring)
            deadline = time.monotonic() + self._card_timeout
            if self._card_timeout > 0:
                self._wait_for_card(self._card_timeout)
            while True:
                rv, card, protocol = scard.SCardConnect(self._context, self.reader, scard.SCARD_SHARE_EXCLUSIVE,
                                                        _PROTOCOLS)
                # Programs that scan every reader hold a card for a moment: within the wait
                # the caller allowed, try again rather than fail.
                if rv != scard.SCARD_E_SHARING_VIOLATION or time.monotonic() >= deadline:
                    break
                time.sleep(0.05)
            if rv != scard.SCARD_S_SUCCESS:
                raise self._connect_error(rv)
            self._card = card
            self._protocol = scard.SCARD_PCI_T0 if protocol == scard.SCARD_PROTOCOL_T0 else scard.SCARD_PCI_T1
            self.atr = self._status_atr()
            return self.atr
        except BaseException:
            self.close()
            raise

    def transmit(self, capdu: bytes) -> Response:
        data, sw = self._exchange(capdu)
        if sw >> 8 == SW1_WRONG_LE:
            # Wrong Le: the card says how many bytes it has; ask again with exactly that.
            data, sw = self._exchange(_with_le(capdu, sw & 0xFF))
        chunks = [data]
        for _ in range(_GET_RESPONSE_LIMIT):
            if sw >> 8 != SW1_MORE_DATA:
                return Response(b"".join(chunks), sw)
            data, sw = self._exchange(bytes([capdu[0] & 0x03, 0xC0, 0x00, 0x00, sw & 0xFF]))
            chunks.append(data)
        raise TransportError(f"the card in '{self.reader}' keeps answering 61xx (more data) after "
                             f"{_GET_RESPONSE_LIMIT} GET RESPONSEs: it is misbehaving; re-insert it and retry")

    def reset(self) -> bytes:
        return self._reconnect(scard.SCARD_RESET_CARD, "reset")

    def power_cycle(self) -> bytes:
        # SCardReconnect with UNPOWER powers the card down and up again (vpcd: 00, 01) while we
        # keep the exclusive handle, so no other program can take the card in between.
        return self._reconnect(scard.SCARD_UNPOWER_CARD, "power-cycle")

    def reinsert(self, timeout: float) -> bytes:
        """The card lost power: wait until pcscd has seen it leave (a power-cut rig keeps it
        off longer than pcscd's poll), then up to `timeout` s for it to be back, and connect."""
        self.close()
        self._context = _establish()
        try:
            self.reader = select_reader(_readers(self._context), self._substring)
            deadline = time.monotonic() + min(timeout, _GONE_WAIT_S)
            state = self._reader_state()
            while state & scard.SCARD_STATE_PRESENT and (left := deadline - time.monotonic()) > 0:
                state = self._reader_state(int(left * 1000), state)
        finally:
            self.close()
        kept, self._card_timeout = self._card_timeout, timeout
        try:
            return self.connect()
        finally:
            self._card_timeout = kept

    def close(self) -> None:
        if self._card is not None:
            # Reset on the way out: the next program must not inherit a verified user PIN.
            scard.SCardDisconnect(self._card, scard.SCARD_RESET_CARD)
            self._card = None
        if self._context is not None:
            scard.SCardReleaseContext(self._context)
            self._context = None

    def describe(self) -> dict[str, str]:
        return {"kind": "pcsc", "reader": self.reader or self._substring, "atr": self.atr.hex().upper()}

    # -- internals -------------------------------------------------------------------------

    def _handle(self) -> int:
        if self._card is None:
            raise TransportError("the PC/SC transport is not connected: call connect() first")
        return self._card

    def _exchange(self, capdu: bytes) -> tuple[bytes, int]:
        rv, response = scard.SCardTransmit(self._handle(), self._protocol, list(capdu))
        if rv != scard.SCARD_S_SUCCESS:
            raise self._exchange_error(rv, "APDU " + capdu[:4].hex().upper())
        if len(response) < 2:
            raise TransportError(f"the card in '{self.reader}' answered {bytes(response).hex() or 'nothing'} "
                                 f"to {capdu[:4].hex().upper()}, not even a status word: re-insert it and retry")
        return bytes(response[:-2]), (response[-2] << 8) | response[-1]

    def _reconnect(self, disposition: int, what: str) -> bytes:
        rv, protocol = scard.SCardReconnect(self._handle(), scard.SCARD_SHARE_EXCLUSIVE, _PROTOCOLS, disposition)
        if rv != scard.SCARD_S_SUCCESS:
            raise self._exchange_error(rv, what)
        self._protocol = scard.SCARD_PCI_T0 if protocol == scard.SCARD_PROTOCOL_T0 else scard.SCARD_PCI_T1
        self.atr = self._status_atr()
        return self.atr

    def _status_atr(self) -> bytes:
        rv, _reader, _state, _protocol, atr = scard.SCardStatus(self._handle())
        if rv != scard.SCARD_S_SUCCESS:
            raise self._exchange_error(rv, "reading the ATR")
        return bytes(atr)

    def _reader_state(self, timeout_ms: int = 0, current: int = scard.SCARD_STATE_UNAWARE) -> int:
        assert self._context is not None and self.reader is not None
        rv, states = scard.SCardGetStatusChange(self._context, timeout_ms, [(self.reader, current)])
        if rv == scard.SCARD_E_TIMEOUT:
            return current
        if rv in _NO_SERVICE:
            raise TransportError(_no_service_message())
        if rv != scard.SCARD_S_SUCCESS:
            return scard.SCARD_STATE_UNKNOWN
        return states[0][1] & ~scard.SCARD_STATE_CHANGED

    def _wait_for_card(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        state = self._reader_state()
        while not state & scard.SCARD_STATE_PRESENT:
            left_ms = int((deadline - time.monotonic()) * 1000)
            if left_ms <= 0:
                raise TransportError(f"no card appeared in reader '{self.reader}' within {timeout:g} s: insert the "
                                     "token (or start the emulator on this reader's vpcd port) and retry")
            state = self._reader_state(left_ms, state)

    def _connect_error(self, rv: int) -> TransportError:
        reader = self.reader
        if rv == scard.SCARD_E_SHARING_VIOLATION:
            return TransportError(f"reader '{reader}' is in use by another program: close it (an OpenSC tool, a "
                                  "browser, gpg's scdaemon, another test run) and retry")
        if rv in (scard.SCARD_E_NO_SMARTCARD, scard.SCARD_W_REMOVED_CARD):
            return TransportError(f"no card in reader '{reader}': insert the token (or start the emulator on "
                                  "this reader's vpcd port) and retry")
        if rv in (scard.SCARD_W_UNRESPONSIVE_CARD, scard.SCARD_W_UNPOWERED_CARD):
            return TransportError(f"the card in reader '{reader}' does not answer ({_code(rv)}): re-insert it "
                                  "and retry")
        if rv in _NO_SERVICE:
            return TransportError(_no_service_message())
        return TransportError(f"cannot connect to the card in reader '{reader}': {_code(rv)}; re-insert it and "
                              "retry")

    def _exchange_error(self, rv: int, what: str) -> TransportError:
        reader = self.reader
        if rv in _NO_SERVICE:
            return TransportError(f"pcscd stopped during the run ({what}): start pcscd again and restart the run")
        if rv == scard.SCARD_W_RESET_CARD:
            return TransportError(f"another program reset the card in '{reader}' during the run ({what}): close "
                                  "other PC/SC programs and restart the run")
        gone = rv in _GONE
        if not gone and rv in _MAYBE_GONE:
            state = self._reader_state()
            if state & scard.SCARD_STATE_PRESENT:
                state = self._reader_state(_REMOVAL_SETTLE_MS, state)
            gone = not state & scard.SCARD_STATE_PRESENT
        if gone:
            return CardRemovedError(f"the card in reader '{reader}' was removed during the run ({what}): "
                                    "re-insert it (or restart the emulator) and restart the run")
        return TransportError(f"the card in reader '{reader}' failed on {what}: {_code(rv)}; re-insert it and "
                              "restart the run")


def _with_le(capdu: bytes, le: int) -> bytes:
    """`capdu` with its Le replaced (or added) by `le` (0 = 256), keeping short/extended form."""
    if len(capdu) < 4:
        return capdu
    header, body = capdu[:4], capdu[4:]
    if not body:  # case 1
        return header + bytes([le])
    if len(body) == 1:  # case 2 short
        return header + bytes([le])
    if body[0] != 0:  # short Lc
        lc = body[0]
        data_end = 1 + lc
        return header + body[:data_end] + bytes([le])
    # extended: 00 Lc1 Lc2 data [Le1 Le2], or 00 Le1 Le2 (case 2E)
    ext_le = (le or 256).to_bytes(2, "big")
    if len(body) == 3:
        return header + b"\x00" + ext_le
    lc = int.from_bytes(body[1:3], "big")
    return header + body[: 3 + lc] + ext_le
