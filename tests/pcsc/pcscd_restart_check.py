"""Run inside a private mount namespace (see test_pcsc_pcscd_restart.py): starts its own
pcscd with one vpcd reader on the port given as argument, serves a token, restarts pcscd under
the running emulator, and prints what it saw as JSON. The namespace gives this pcscd its own
/run/pcscd, so the machine's pcscd and other tests never notice.

usage: pcscd_restart_check.py PORT   (PORT and PORT+1 must be free)
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from hsm_lifecycle.conformance.transport.pcsc import PcscTransport, list_readers
from hsm_lifecycle.conformance.transport.base import TransportError
from hsm_lifecycle.emulator.vpcd import start_emulator
from hsm_lifecycle.protocol import AID

SELECT = bytes([0x00, 0xA4, 0x04, 0x00, len(AID)]) + AID + b"\x00"
INITIALIZE = bytes.fromhex("8050000019" "80020001" "8106363438323139" "82083537363231383830" "910103")
VERIFY_WRONG = bytes.fromhex("0020008106") + b"000000"
QUERY_USER = bytes.fromhex("00200081")
READER = "Restart Check 00 00"
VPCD_LIB = "/usr/lib/pcsc/drivers/serial/libifdvpcd.so"


def write_config(directory: Path, port: int) -> Path:
    conf = directory / "reader.conf.d"
    conf.mkdir()
    (conf / "vpcd").write_text(f'FRIENDLYNAME "Restart Check"\nDEVICENAME /dev/null:{port}\n'
                               f"LIBPATH {VPCD_LIB}\nCHANNELID {port}\n")
    return conf


def start_pcscd(conf: Path, log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        proc = subprocess.Popen(["pcscd", "--foreground", "-c", str(conf)], stdout=out, stderr=out)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            if READER in list_readers():
                return proc
        except TransportError:
            pass
        time.sleep(0.05)
    proc.kill()
    raise SystemExit(f"pcscd did not come up: {log.read_text()[-500:]}")


def stop_pcscd(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    proc.wait(10)


def main(port: int) -> int:
    seen: dict[str, object] = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        conf = write_config(work, port)
        pcscd = start_pcscd(conf, work / "pcscd.log")
        emulator = start_emulator(port, work / "token.json")
        try:
            with PcscTransport(READER, card_timeout=10) as transport:
                seen["before"] = [transport.transmit(c).sw_hex for c in (SELECT, INITIALIZE, VERIFY_WRONG)]
            stop_pcscd(pcscd)
            time.sleep(0.5)  # the emulator meets a dead port a few times
            seen["alive_without_pcscd"] = emulator.alive()
            pcscd = start_pcscd(conf, work / "pcscd.log")
            started = time.monotonic()
            with PcscTransport(READER, card_timeout=10) as transport:
                seen["reconnect_s"] = round(time.monotonic() - started, 3)
                seen["after"] = [transport.transmit(c).sw_hex for c in (SELECT, QUERY_USER)]
            seen["same_process"] = emulator.alive()
        finally:
            seen["exit"] = emulator.stop()
            stop_pcscd(pcscd)
        seen["log"] = emulator.log().splitlines()
    json.dump(seen, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1])))
