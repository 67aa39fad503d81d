"""A token as its owner has it, over PC/SC: the emulator served through vpcd
(`hsm-lifecycle emulate`), set up and checked ONLY with OpenSC's tools (sc-hsm-tool,
pkcs11-tool, pkcs15-tool); the suite is driven as `hsm-lifecycle run --reader R`, a separate
process, as the owner would run it. Nothing here reads or writes the emulator's state file.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from pcsc_support import Emulators, Served, wait_reader_empty
from hsm_lifecycle.emulator import Profile
from hsm_lifecycle.protocol import VPCD_PORT

SO_PIN = "3537363231383830"
PIN = "648219"
WRONG_SO_PIN = "0102030405060708"
WRONG_PIN = "111111"
PKCS11_READERS = 4  # OpenSC's PKCS#11 module shows only the first 4 readers
MODULES = ("/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so", "/usr/lib/aarch64-linux-gnu/opensc-pkcs11.so",
           "/usr/lib/opensc-pkcs11.so", "/usr/lib64/opensc-pkcs11.so")


def module() -> str:
    return next(p for p in MODULES if os.path.exists(p))


@dataclass(frozen=True)
class Status:
    """What sc-hsm-tool says of the token."""

    so_tries: int | None
    user_tries: int | None  # 0: locked
    rrc: bool
    text: str

    @classmethod
    def parse(cls, text: str) -> "Status":
        so = re.search(r"SO-PIN tries left\s*:\s*(\d+)", text)
        user = re.search(r"User PIN tries left\s*:\s*(\d+)", text)
        user_tries = int(user.group(1)) if user else (0 if "User PIN locked" in text else None)
        so_tries = int(so.group(1)) if so else (0 if re.search(r"SO-PIN (locked|blocked)", text) else None)
        return cls(so_tries, user_tries, "User PIN reset with SO-PIN enabled" in text, text)


@dataclass
class RunResult:
    rc: int
    out: str
    bundle: Path

    @property
    def summary(self) -> dict:
        path = self.bundle / "summary.json"
        return json.loads(path.read_text()) if path.exists() else {}


@dataclass
class OwnerToken:
    emulators: Emulators
    tmp: Path
    served: Served | None = None
    runs: int = 0
    env: dict[str, str] = field(default_factory=dict)
    profile: Profile | None = None  # how the emulated token behaves where the sources are silent

    @classmethod
    def start(cls, emulators: Emulators, tmp: Path, profile: Profile | None = None) -> "OwnerToken":
        home = tmp / "home"
        home.mkdir(exist_ok=True)
        state_dir = tmp / "custody-state"
        bin_dir = str(Path(sys.executable).parent)
        env = {**os.environ, "HOME": str(home), "HSM_LIFECYCLE_STATE_DIR": str(state_dir),
               "PATH": bin_dir + os.pathsep + os.environ.get("PATH", "")}
        env.pop(INJECT, None)
        token = cls(emulators, tmp, env=env, profile=profile)
        ports = [p for p in sorted(emulators_ports()) if p < VPCD_PORT + PKCS11_READERS]
        token.served = emulators.start(tmp / "owner-token.json", ports=ports, profile=profile)
        token.wait_present()
        return token

    @property
    def reader(self) -> str:
        assert self.served is not None
        return self.served.reader

    def wait_present(self) -> None:
        with self.served.transport():  # type: ignore[union-attr]  # returns once pcscd sees the card
            pass

    # -- OpenSC ----------------------------------------------------------------------------------

    def tool(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(list(args), capture_output=True, text=True, timeout=120, env=self.env)
        if check and done.returncode != 0:
            raise AssertionError(f"{' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
        return done

    def sc_hsm_tool(self, *args: str) -> str:
        done = self.tool("sc-hsm-tool", "-r", self.reader, *args, check=False)
        return done.stdout + done.stderr

    def pkcs11(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.tool("pkcs11-tool", "--module", module(), "--slot-description", self.reader, *args, check=check)

    def initialize(self, *, so_pin: str = SO_PIN, pin: str = PIN) -> None:
        """As the owner does it: sc-hsm-tool (which sets option 0x0001, RESET RETRY COUNTER)."""
        out = self.sc_hsm_tool("--initialize", "--so-pin", so_pin, "--pin", pin)
        assert "failed" not in out.lower(), out

    def initialize_without_rrc(self, *, so_pin: str = SO_PIN, pin: str = PIN) -> None:
        """INITIALIZE DEVICE with options 0000 (RESET RETRY COUNTER off), sent with opensc-tool:
        sc-hsm-tool always sets option 0x0001."""
        pin_hex = pin.encode().hex()
        data = f"80020000 81{len(pin):02X}{pin_hex} 8208{so_pin} 910103".replace(" ", "")
        apdu = f"80500000{len(data) // 2:02X}{data}"
        out = self.tool("opensc-tool", "--reader", self.reader, "-s", "00:A4:04:00:0B:E8:2B:06:01:04:01:81:C3:1F:02:01:00",
                        "-s", ":".join(apdu[i:i + 2] for i in range(0, len(apdu), 2))).stdout
        assert out.count("SW1=0x90, SW2=0x00") == 2, out

    def keygen(self, key_id: str = "01", label: str = "owner") -> None:
        self.pkcs11("--login", "--pin", PIN, "--keypairgen", "--key-type", "EC:prime256v1", "--id", key_id, "--label", label)

    def status(self) -> Status:
        return Status.parse(self.sc_hsm_tool())

    def objects(self) -> list[str]:
        """The token's PKCS#15 objects as pkcs15-tool lists them: "kind [label] path"."""
        text = self.tool("pkcs15-tool", "--reader", self.reader, "--dump", "--no-cache", check=False).stdout
        found, kind = [], None
        for line in text.splitlines():
            head = re.match(r"^(Private \w+ Key|Public \w+ Key|X\.509 Certificate|Data Object|PIN) \[(.*)\]", line)
            if head:
                kind = f"{head.group(1)} [{head.group(2)}]"
                continue
            path = re.match(r"^\s*Path\s*:\s*(\S+)", line)
            if kind and path:
                found.append(f"{kind} {path.group(1)}")
                kind = None
            elif kind and not line.strip():
                found.append(kind)
                kind = None
        return sorted(found)

    def files(self) -> list[str]:
        """Every file the applet holds (keys CCxx, CV requests and certificates CExx, ...),
        from ENUMERATE OBJECTS sent with opensc-tool: also what no PKCS#15 directory lists."""
        out = self.tool("opensc-tool", "--reader", self.reader, "-s", "00:A4:04:00:0B:E8:2B:06:01:04:01:81:C3:1F:02:01:00",
                        "-s", "80:58:00:00:00").stdout
        blocks = re.split(r"Received \(SW1=0x([0-9a-f]{2}), SW2=0x([0-9a-f]{2})\)", out, flags=re.I)
        assert len(blocks) >= 5 and blocks[-3:-1] == ["90", "00"], out
        lines = [re.match(r"^((?:[0-9A-F]{2} )+)", line) for line in blocks[-1].strip().splitlines()]
        data = bytes.fromhex("".join(m.group(1) for m in lines if m))
        return sorted(data[i : i + 2].hex().upper() for i in range(0, len(data) - 1, 2))

    def user_pin_works(self, pin: str = PIN) -> bool:
        return self.pkcs11("--login", "--pin", pin, "--list-objects", check=False).returncode == 0

    def so_pin_works(self, so_pin: str = SO_PIN) -> bool:
        """pkcs11-tool --init-pin with the SO-PIN: sets the user PIN to the owner's (unchanged)."""
        return self.pkcs11("--login", "--login-type", "so", "--so-pin", so_pin, "--init-pin", "--new-pin", PIN,
                           check=False).returncode == 0

    def so_pin_accepted(self, so_pin: str = SO_PIN) -> bool:
        """CHANGE REFERENCE DATA 88 from the SO-PIN to itself, sent with opensc-tool: for a token
        without RESET RETRY COUNTER, where pkcs11-tool --init-pin is refused whatever the SO-PIN."""
        pair = ":".join((so_pin * 2)[i:i + 2] for i in range(0, 32, 2))
        out = self.tool("opensc-tool", "--reader", self.reader, "-s", "00:A4:04:00:0B:E8:2B:06:01:04:01:81:C3:1F:02:01:00",
                        "-s", f"00:24:00:88:10:{pair}", check=False).stdout
        return out.count("SW1=0x90, SW2=0x00") == 2

    def owner_key_present(self) -> bool:
        out = self.pkcs11("--login", "--pin", PIN, "--list-objects", "--type", "privkey", check=False).stdout
        return "label:      owner" in out or "owner" in out

    # -- the suite ------------------------------------------------------------------------------

    def run(self, *args: str, inject: str | None = None, timeout: float = 300, command: str = "run") -> RunResult:
        self.runs += 1
        out = self.tmp / f"bundle{self.runs}"
        argv = [str(Path(sys.executable).parent / "hsm-lifecycle"), command]
        if command == "run":
            argv += ["--reader", self.reader, "--out", str(out), "--plain"]
        argv += list(args)
        env = dict(self.env)
        if inject:
            env[INJECT] = inject
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env)
        return RunResult(done.returncode, done.stdout + done.stderr, out)

    def spawn(self, *args: str) -> subprocess.Popen[str]:
        self.runs += 1
        out = self.tmp / f"bundle{self.runs}"
        argv = [str(Path(sys.executable).parent / "hsm-lifecycle"), "run", "--reader", self.reader, "--out", str(out), "--plain", *args]
        return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=self.env,
                                start_new_session=True, preexec_fn=_stop_signals_as_at_a_terminal)

    def pull(self) -> None:
        """The token leaves the reader: the emulator is killed (SIGKILL, no goodbye)."""
        assert self.served is not None
        self.served.emulator.proc.send_signal(signal.SIGKILL)
        self.served.emulator.proc.wait()
        wait_reader_empty(self.reader)

    def put_back(self) -> None:
        assert self.served is not None
        self.served = self.emulators.start(self.served.state, port=self.served.port, profile=self.profile)
        self.wait_present()
        time.sleep(0.2)

    @property
    def emulator_pid(self) -> int:
        assert self.served is not None
        return self.served.emulator.proc.pid


INJECT = "HSM_CUSTODY_INJECT"


def emulators_ports() -> list[int]:
    from hsm_lifecycle.emulator.vpcd import vpcd_readers

    return list(vpcd_readers())


def _stop_signals_as_at_a_terminal() -> None:
    """In the child: SIGINT and SIGTERM as a user's shell gives them. A test run started in the
    background inherits SIGINT ignored (POSIX, for asynchronous commands), and a run that never
    sees the owner's Ctrl-C would prove nothing."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def wait_signals_held(proc: subprocess.Popen[str], timeout: float = 60.0) -> None:
    """Until `hsm-lifecycle run` has started: its first act is to hold SIGINT and SIGTERM (its
    blocked-signal mask in /proc shows SIGINT). Before that the signal meets Python's own start-up."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            status = Path(f"/proc/{proc.pid}/status").read_text()
        except OSError:
            return
        blocked = next((int(line.split()[1], 16) for line in status.splitlines() if line.startswith("SigBlk:")), 0)
        if blocked & (1 << (signal.SIGINT - 1)):
            return
        time.sleep(0.01)

