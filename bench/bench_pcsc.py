"""PC/SC path throughput: VERIFY status queries per second in-process and through
pcscd + vpcd (the emulator as a child process on a vpcd port), in the same run, and their ratio.

Through pcscd each APDU crosses: client -> pcscd (Unix socket) -> vpcd driver -> TCP -> our
bridge -> token, and back. Two client paths are timed: PcscTransport.transmit (what the suite
uses) and bare SCardTransmit (what a C client such as OpenSC pays). Each figure is the median
of `repeat` runs. Skips the pcscd part, with the reason, when pcscd with vpcd readers is absent.
`python -m bench.bench_pcsc` prints the figures.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

from smartcard import scard

from hsm_lifecycle.conformance.transport.base import TransportError
from hsm_lifecycle.conformance.transport.pcsc import PcscTransport, empty_vpcd_port, list_readers
from hsm_lifecycle.emulator import VirtualToken
from hsm_lifecycle.emulator.vpcd import lease_port, serve_emulator, vpcd_readers
from hsm_lifecycle import protocol

SELECT = bytes([0x00, 0xA4, 0x04, 0x00, len(protocol.AID)]) + protocol.AID + b"\x00"
INITIALIZE = bytes.fromhex("8050000019" "80020001" "8106363438323139" "82083537363231383830" "910103")
QUERY_USER = bytes.fromhex("00200081")
EXPECTED = "63C3"  # initialized, 3 tries, not authenticated


def pcscd_missing() -> str | None:
    """Why the pcscd path cannot be measured here, or None."""
    try:
        readers = list_readers()
    except TransportError as exc:
        return str(exc)
    if not set(vpcd_readers().values()) & set(readers):
        return "pcscd runs without vsmartcard's vpcd readers (source scripts/pcscd.sh && pcscd_start)"
    return None


def _timed(send, apdus: int) -> float:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    for _ in range(apdus):
        send()
    return apdus / (time.perf_counter() - start)


def inprocess_rates(apdus: int, repeat: int) -> list[float]:
    token = VirtualToken.manufacture()
    token.power_on()
    for capdu in (SELECT, INITIALIZE):
        token.transmit(capdu)
    if token.transmit(QUERY_USER).hex().upper() != EXPECTED:
        raise RuntimeError("the in-process token did not answer the status query as expected")
    return [_timed(lambda: token.transmit(QUERY_USER), apdus) for _ in range(repeat)]


def pcsc_rates(apdus: int, repeat: int) -> tuple[list[float], list[float]]:
    """(PcscTransport rates, bare SCardTransmit rates) against an emulator behind pcscd,
    interleaved run by run so that background load hits both alike."""
    with tempfile.TemporaryDirectory(prefix="bench-pcsc-") as tmp, lease_port(wait=60, usable=empty_vpcd_port) as port:
        reader = vpcd_readers()[port]
        with serve_emulator(port, Path(tmp) / "bench-token.json"):
            with PcscTransport(reader, card_timeout=10) as transport:
                for capdu in (SELECT, INITIALIZE):
                    transport.transmit(capdu)
                if transport.transmit(QUERY_USER).sw_hex != EXPECTED:
                    raise RuntimeError("the emulator did not answer the status query as expected")
            via_transport, via_scard = [], []
            for _ in range(repeat):
                with PcscTransport(reader) as transport:
                    transport.transmit(SELECT)
                    via_transport.append(_timed(lambda: transport.transmit(QUERY_USER), apdus))
                via_scard.append(_bare_scard_rate(reader, apdus))
    return via_transport, via_scard


def _bare_scard_rate(reader: str, apdus: int) -> float:
    rv, context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
    if rv != scard.SCARD_S_SUCCESS:
        raise RuntimeError(scard.SCardGetErrorMessage(rv))
    try:
        rv, card, protocol_ = scard.SCardConnect(context, reader, scard.SCARD_SHARE_EXCLUSIVE,
                                                scard.SCARD_PROTOCOL_T0 | scard.SCARD_PROTOCOL_T1)
        if rv != scard.SCARD_S_SUCCESS:
            raise RuntimeError(scard.SCardGetErrorMessage(rv))
        query, transmit = list(QUERY_USER), scard.SCardTransmit
        transmit(card, protocol_, list(SELECT))
        rate = _timed(lambda: transmit(card, protocol_, query), apdus)
        scard.SCardDisconnect(card, scard.SCARD_RESET_CARD)
        return rate
    finally:
        scard.SCardReleaseContext(context)


def run(repeat: int = 5, apdus: int = 2000) -> dict[str, float | str]:
    """Median APDUs/second in-process and through pcscd+vpcd, and pcscd/in-process."""
    results: dict[str, float | str] = {"repeat": float(repeat), "apdus_per_run": float(apdus)}
    inprocess = statistics.median(inprocess_rates(apdus * 5, repeat))
    results["inprocess_apdus_per_s"] = inprocess
    reason = pcscd_missing()
    if reason is not None:
        results["skipped"] = f"pcscd path not measured: {reason}"
        return results
    via_transport, via_scard = pcsc_rates(apdus, repeat)
    results["pcsc_transport_apdus_per_s"] = statistics.median(via_transport)
    results["pcsc_scard_apdus_per_s"] = statistics.median(via_scard)
    results["pcsc_over_inprocess"] = results["pcsc_transport_apdus_per_s"] / inprocess
    results["pcsc_transport_us_per_apdu"] = 1e6 / results["pcsc_transport_apdus_per_s"]
    return results


def main() -> None:
    results = run()
    print(f"VERIFY status query, in-process          : {results['inprocess_apdus_per_s']:>9.0f} APDU/s")
    if "skipped" in results:
        print(results["skipped"])
    else:
        print(f"  through pcscd+vpcd, PcscTransport      : {results['pcsc_transport_apdus_per_s']:>9.0f} APDU/s"
              f"  ({results['pcsc_transport_us_per_apdu']:.0f} us per APDU)")
        print(f"  through pcscd+vpcd, bare SCardTransmit : {results['pcsc_scard_apdus_per_s']:>9.0f} APDU/s")
        print(f"  pcscd / in-process                     : {results['pcsc_over_inprocess']:>9.3f}")
    print(f"(median of {int(results['repeat'])} runs)")


if __name__ == "__main__":
    main()
