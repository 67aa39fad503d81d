"""The public-record corpus (traces/public/*.jsonl): real-device exchanges replayed on the emulator.

Each line is one command/answer pair someone published, with its exact source (repository and
issue, or repository, path and commit), the device and firmware where stated, and whether its
bytes are verbatim or reconstructed from a tool's words. Lines of one `session` ran in order on
one token; the session's first line says how that token was prepared (`setup`): a recipe the
replayer redoes on a fresh in-process emulator (the firmware version, where stated, sets the
emulated applet version) before the published commands go through `replay` unchanged.

    python -m hsm_lifecycle.conformance.corpus [traces/public]

prints one line per mismatch and a summary; exit status 1 when any entry differs.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from hsm_lifecycle.conformance.commands.replay import ReplayLink, replay
from hsm_lifecycle import tlv
from hsm_lifecycle.conformance.mapper import Mapper, PinBook, apdu
from hsm_lifecycle.conformance.trace import TraceLine
from hsm_lifecycle.conformance.transport.base import Response
from hsm_lifecycle.conformance.transport.inprocess import InProcessTransport
from hsm_lifecycle.emulator import Profile, VirtualToken
from hsm_lifecycle.emulator.models import DEFAULT_MODEL
from hsm_lifecycle.model.commands import Command
from hsm_lifecycle.protocol import CLA_ISO, TAG_DISCRETIONARY_DATA, TAG_OFFSET, Ins

CORPUS = Path(__file__).resolve().parents[1] / "traces" / "public"
REQUIRED = ("id", "source", "device", "session", "cmd", "sw", "compare", "kind", "reconstructed")
SETUP_RECIPES = ("shipped", "initialized")
ATR = "ATR"  # an entry's `cmd` when what was published is the answer to reset (in `rsp`)


class CorpusError(ValueError):
    """A corpus line that is not a well-formed entry (named by file and line)."""


@dataclass(frozen=True)
class Entry:
    file: str
    line: int
    data: dict[str, Any]

    @property
    def id(self) -> str:
        return str(self.data["id"])

    @property
    def source_key(self) -> str:
        """One published source: a repository issue/PR, or a file at a commit."""
        src = self.data["source"]
        if "repo" not in src:  # a public page, e.g. a Nitrokey forum thread
            return str(src["url"])
        if "issue" in src:
            return f"{src['repo']}#{src['issue']}"
        return f"{src['repo']}:{src['path']}@{src['commit']}"


@dataclass(frozen=True)
class Mismatch:
    entry: Entry
    what: str

    def describe(self) -> str:
        return f"{self.entry.file}:{self.entry.line} {self.entry.id}: {self.what}"


@dataclass
class CorpusResult:
    entries: int = 0
    sources: set[str] = field(default_factory=set)
    reconstructed: int = 0
    mismatches: list[Mismatch] = field(default_factory=list)


def load(folder: Path = CORPUS) -> list[Entry]:
    entries = []
    for path in sorted(folder.glob("*.jsonl")):
        for number, text in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not text.strip():
                continue
            try:
                data = json.loads(text)
            except json.JSONDecodeError as exc:
                raise CorpusError(f"{path.name}:{number}: not JSON ({exc})") from None
            missing = [k for k in REQUIRED if k not in data]
            if missing:
                raise CorpusError(f"{path.name}:{number}: missing {', '.join(missing)}")
            src = data["source"]
            if not _sourced(src):
                raise CorpusError(f"{path.name}:{number}: a source is a repo with an issue/PR, a repo, path and "
                                  "commit, or the https URL of a public page")
            entries.append(Entry(path.name, number, data))
    return entries


def _sourced(src: dict[str, Any]) -> bool:
    if "repo" in src:
        return "issue" in src or ("path" in src and "commit" in src)
    return str(src.get("url", "")).startswith("https://")


def sessions(entries: list[Entry]) -> Iterator[list[Entry]]:
    """Entries grouped by session, in file order; a session's first entry carries its setup."""
    order: dict[tuple[str, str], list[Entry]] = {}
    for entry in entries:
        order.setdefault((entry.file, entry.data["session"]), []).append(entry)
    yield from order.values()


def _version(firmware: object) -> tuple[int, int] | None:
    """"1.2" -> (1, 2); "2.0+", None, "any" -> None (the emulator's default version)."""
    if not isinstance(firmware, str) or firmware.endswith("+"):
        return None
    try:
        major, minor = (int(p) for p in firmware.split(".")[:2])
    except ValueError:
        return None
    return major, minor


class _Recording(ReplayLink):
    def __init__(self, transport: InProcessTransport) -> None:
        super().__init__(transport, "the in-process emulator")
        self.answers: list[Response] = []

    def transmit(self, capdu: bytes) -> Response:
        rsp = super().transmit(capdu)
        self.answers.append(rsp)
        return rsp


def _prepare(first: Entry) -> tuple[InProcessTransport, bytes, str | None]:
    """A fresh emulated token in the session's described state, and the ATR it answered at
    the tool's connect; or a reason it cannot be made."""
    setup = first.data.get("setup") or {}
    recipe = setup.get("recipe", "shipped")
    if recipe not in SETUP_RECIPES:
        return InProcessTransport(VirtualToken.manufacture()), b"", f"unknown setup recipe {recipe!r}"
    version = _version(first.data.get("firmware"))
    profile = Profile.for_model(setup.get("model", DEFAULT_MODEL))
    if version:
        profile = replace(profile, version=version)
    transport = InProcessTransport(VirtualToken.manufacture(profile=profile))
    if recipe == "initialized":
        pins = PinBook.create(user_pin=setup.get("user_pin", "648219").encode(),
                              so_pin=bytes.fromhex(setup.get("so_pin", "3537363231383830")))
        mapper = Mapper(transport, pins=pins)
        mapper.select()
        steps = [Command.initialize("right", setup.get("options", 1), setup.get("retries", 3), len(pins.user[0]),
                                    setup.get("dkek_shares"))]
        if setup.get("key"):
            steps.append(Command.verify_user("right"))
        steps += [Command.generate_key()] * int(setup.get("key", 0) or 0)
        for step in steps:
            sw = mapper.run(step, uninitialized=step.name == "initialize")
            if sw != "9000":
                return transport, b"", f"setup step {step} answered {sw}"
        problem = _make_objects(mapper, setup.get("objects", ()))
        if problem:
            return transport, b"", problem
        # Tries the owner had already spent ("SO-PIN tries left : 7" in a tool's output).
        spent = [Command.change_so_pin("wrong")] * int(setup.get("wrong_so", 0))
        spent += [Command.verify_user("wrong")] * int(setup.get("wrong_user", 0))
        for step in spent:
            sw = mapper.run(step, uninitialized=False)
            if not sw.startswith("63C"):
                return transport, b"", f"setup step {step} answered {sw}, not a wrong-PIN 63Cx"
    # Every published exchange begins with a tool connecting: a fresh power-up, and the applet
    # SELECT that OpenSC's sc-hsm driver (and CardContact's scripts) send on connect, unless the
    # setup says the tool sent none ("connect": "none", e.g. opensc-tool -c default).
    atr = transport.power_cycle()
    if setup.get("connect", "select") == "select":
        Mapper(transport).select()
    if setup.get("login"):  # the user PIN verified in the session the exchange ran in
        user = setup.get("user_pin", "648219").encode()
        if Mapper(transport, pins=PinBook.create(user_pin=user)).run(Command.verify_user("right"), uninitialized=False) != "9000":
            return transport, atr, "setup: the user PIN was refused"
    return transport, atr, None


def _make_objects(mapper: Mapper, actions: list[str] | tuple[str, ...]) -> str | None:
    """Objects made in the published order: "file:C401" writes a one-byte EF, "key" generates
    the next key (GAKP also writes its CExx)."""
    if actions and mapper.run(Command.verify_user("right"), uninitialized=False) != "9000":
        return "setup: the user PIN was refused"
    for action in actions:
        kind, _, fid = action.partition(":")
        if kind == "file":
            data = tlv.encode(TAG_OFFSET, b"\x00\x00") + tlv.encode(TAG_DISCRETIONARY_DATA, b"\x00")
            sw = mapper.send(apdu(CLA_ISO, Ins.UPDATE_BINARY_ODD, int(fid[:2], 16), int(fid[2:], 16), data)).sw_hex
        elif kind == "key":
            sw = mapper.run(Command.generate_key(), uninitialized=False)
        else:
            return f"setup: unknown object action {action!r}"
        if sw != "9000":
            return f"setup: {action} answered {sw}"
    return None


def _compare(entry: Entry, rsp: Response) -> str | None:
    for rule in entry.data["compare"]:
        if rule == "sw" and rsp.sw_hex != entry.data["sw"].upper():
            return f"SW {rsp.sw_hex}, published {entry.data['sw']}"
        if rule == "rsp" and rsp.data.hex().upper() != entry.data["rsp"].upper():
            return f"data {rsp.data.hex().upper()}, published {entry.data['rsp'].upper()}"
        if rule.startswith("rsp-prefix:"):
            n = int(rule.split(":")[1])
            if rsp.data[:n].hex().upper() != entry.data["rsp"][: 2 * n].upper():
                return f"data starts {rsp.data[:n].hex().upper()}, published {entry.data['rsp'][: 2 * n].upper()}"
    return None


def run(folder: Path = CORPUS) -> CorpusResult:
    entries = load(folder)
    result = CorpusResult(entries=len(entries), sources={e.source_key for e in entries},
                          reconstructed=sum(1 for e in entries if e.data["reconstructed"]))
    for session in sessions(entries):
        transport, atr, problem = _prepare(session[0])
        if problem:
            result.mismatches.append(Mismatch(session[0], problem))
            continue
        if session[0].data["cmd"] == ATR:  # the answer to reset the tool saw when it connected
            if atr.hex().upper() != session[0].data["rsp"].upper():
                result.mismatches.append(Mismatch(session[0], f"ATR {atr.hex().upper()}, published {session[0].data['rsp']}"))
            session = session[1:]
        link = _Recording(transport)
        lines = [TraceLine(i, 0.0, e.data["cmd"].upper(), e.data.get("rsp", ""), e.data["sw"].upper(), e.id, "", ())
                 for i, e in enumerate(session)]
        sent, divergence = replay(lines, link)
        if divergence is not None:
            result.mismatches.append(Mismatch(session[divergence.line.i], f"SW {divergence.got}, published {divergence.line.sw}"))
            continue
        for entry, rsp in zip(session, link.answers):
            problem = _compare(entry, rsp)
            if problem:
                result.mismatches.append(Mismatch(entry, problem))
    return result


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    folder = Path(args[0]) if args else CORPUS
    try:
        result = run(folder)
    except CorpusError as exc:
        print(f"corpus: {exc}", file=sys.stderr)
        return 2
    for mismatch in result.mismatches:
        print(f"mismatch: {mismatch.describe()}")
    print(f"{result.entries} entries ({result.reconstructed} reconstructed) from {len(result.sources)} sources: "
          f"{len(result.mismatches)} mismatch(es)")
    return 1 if result.mismatches else 0


if __name__ == "__main__":
    sys.exit(main())
