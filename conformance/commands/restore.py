"""`hsm-lifecycle restore`: put the owner's PINs back after a run that did not finish.

The custody journal (conformance.journal) of the token in the reader says what the run left on
it; conformance.custody does the work. The next `hsm-lifecycle run` on the same token does the
same on its own before anything else.

Exit status: 0 the owner's PINs are in place (or there was nothing to restore), 2 usage,
3 they could not all be put back (the sentence says what is left).
"""

from __future__ import annotations

import argparse
import signal
from pathlib import Path

from hsm_lifecycle.conformance.errors import UsageError

HELP = "put the owner's PINs back on a token after an interrupted run, from its custody journal"
EXIT_NOT_RESTORED = 3


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--reader", metavar="R", help="PC/SC reader name substring (default: the only reader with a card)")
    parser.add_argument("--journal", metavar="FILE", type=Path, help="the custody journal (default: the one for the token's serial in the state folder)")
    parser.epilog = "Journals live in $HSM_LIFECYCLE_STATE_DIR, else $XDG_STATE_HOME/hsm-lifecycle/custody (~/.local/state/...)."


def main(args: argparse.Namespace) -> int:
    from hsm_lifecycle.conformance.custody import Custody, restore_from_journal
    from hsm_lifecycle.conformance.interlocks import Consent, GuardedTransport
    from hsm_lifecycle.conformance.journal import Journal, JournalError, state_dir
    from hsm_lifecycle.conformance.mapper import Mapper, PinBook
    from hsm_lifecycle.conformance.observe import CredentialError
    from hsm_lifecycle.conformance.session import read_serial
    from hsm_lifecycle.conformance.transport.base import TransportError
    from hsm_lifecycle.conformance.transport.pcsc import PcscTransport, list_readers, select_reader

    if args.reader is not None and not args.reader.strip():
        raise UsageError("--reader is empty: give part of the reader's name as `opensc-tool -l` lists it, or leave it out.")
    if args.journal is not None and not args.journal.is_file():
        raise UsageError(f"--journal {args.journal} is not a file.")
    try:
        reader = select_reader(list_readers(), args.reader or "")
        transport = PcscTransport(reader)
    except TransportError as exc:
        raise UsageError(str(exc)) from None
    # Signals wait until the token is back as it was: a restore cut in half is another loss.
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    try:
        with transport:
            transport.connect()
            mapper = Mapper(GuardedTransport(transport, Consent(False, None, False, False, 5)), pins=PinBook.create())
            mapper.select()
            serial = read_serial(mapper) or ""
            journal = Journal(args.journal) if args.journal is not None else Journal.for_serial(serial)
            if not journal.exists():
                print(f"hsm-lifecycle restore: nothing to restore: no custody journal for token {serial or '(serial unreadable)'} in {state_dir()}.")
                return 0
            entry = journal.load()
            if serial and entry.serial and entry.serial != serial:
                raise UsageError(f"the journal {journal.path} is for token {entry.serial}, but the token in '{reader}' is {serial}.")
            custody = Custody(pin=None, so_pin=None, so_floor=1, may_wipe=lambda: False)
            via = custody.wrap(transport)
            custody.serial = serial
            outcome = restore_from_journal(custody, journal, via)
    except (JournalError, CredentialError) as exc:
        raise UsageError(str(exc)) from None
    except TransportError as exc:
        print(f"hsm-lifecycle restore: the token could not be reached ({exc}); nothing was changed and the journal is kept.")
        return EXIT_NOT_RESTORED
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
    print(f"hsm-lifecycle restore: {outcome.sentence.removeprefix('custody: ')}")
    return 0 if outcome.pins_in_place and not outcome.objects_left else EXIT_NOT_RESTORED
