"""Putting the owner's state back on a token (conformance.custody): at the end of every run from
what the custody followed, after a crash or a pulled token from its journal. Each step presents
a PIN the custody knows: at most one wrong candidate, while a change was in flight, and the
right PIN then gives that try back."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from hsm_lifecycle.conformance.custody_apdus import Counters, Outcome, Tracked, case3, describe_change, select_apdu
from hsm_lifecycle.conformance.journal import Journal
from hsm_lifecycle.conformance.observe import CredentialError
from hsm_lifecycle.conformance.transport.base import Transport, TransportError
from hsm_lifecycle import tlv
from hsm_lifecycle.protocol import (
    CLA_ISO,
    CLA_PROPRIETARY,
    OPTION_RESET_RETRY_COUNTER,
    PIN_SO,
    PIN_USER,
    RRC_NEW_PIN,
    SW,
    TAG_INIT_OPTIONS,
    TAG_INIT_SO_PIN,
    TAG_INIT_USER_PIN,
    TAG_INIT_USER_PIN_RETRY,
    USER_PIN_TRIES_DEFAULT,
    Ins,
)

if TYPE_CHECKING:  # the custody calls in here; only its type is needed
    from hsm_lifecycle.conformance.custody import Custody


def restore_tracked(custody: Custody, via: Transport | None) -> Outcome:
    """At the end of a run: from what the custody followed (exact unless the token was lost)."""
    journal = custody.journal
    where = str(journal.path) if journal is not None else ""
    if custody.lost is not None:
        transport = custody.transport
        assert transport is not None
        try:  # a token pulled and put back, or a reader that recovered (not one that hangs)
            if custody.lost_by_timeout:
                raise TransportError(custody.lost)
            with custody.own():
                transport.inner.connect()
            custody.lost = None
        except (TransportError, OSError):
            what = _left_where(custody)
            sentence = (
                f"custody: the token stopped answering ({custody.lost}); {what} "
                + (f"Its journal {where} holds the owner's PINs: put the token back and run `hsm-lifecycle restore` "
                   f"(or the same run again)." if where else "No journal was kept (the serial was never read).")
            )
            return Outcome(custody.start, None, custody.owner_state(), sentence=sentence, journal=where)
    result = _restore(custody, via)
    if result.pins_in_place and not result.objects_left and journal is not None:
        journal.remove()
        result.journal = ""
    return result


def _left_where(custody: Custody) -> str:
    t = custody.t
    parts = []
    # Only the suite's own test PINs are named (public constants), never the owner's.
    if custody.pin is not None and t.user_pins != (custody.pin,):
        test_pins = " or ".join(repr(p.decode("ascii", "replace")) for p in t.user_pins if p != custody.pin)
        parts.append(f"the user PIN may be the suite's test PIN {test_pins} instead of the owner's")
    if custody.so_pin is not None and t.so_pins != (custody.so_pin,):
        test_pins = " or ".join(p.hex().upper() for p in t.so_pins if p != custody.so_pin)
        parts.append(f"the SO-PIN may be the suite's test SO-PIN {test_pins} instead of the owner's")
    if not parts:
        return "the owner's PINs were in place when it left."
    return "; ".join(parts) + "."


def _restore(custody: Custody, via: Transport | None) -> Outcome:
    """Bring the token back to the owner's PINs, tries and objects. Each step presents a PIN
    the custody knows (at most one wrong candidate while a change was in flight)."""
    t = custody.t
    done: list[str] = []
    problems: list[str] = []
    send = lambda capdu: custody.send(capdu, via)  # noqa: E731
    try:
        now = custody.read_counters(via)
        if now.so is None:  # uninitialized (after a firmware update): nothing of the owner's left to restore
            after = now
            return Outcome(custody.start, after, custody.pin is None, sentence="custody: the token is not initialized; no PIN to restore")
        owner_user, owner_so = custody.pin, custody.so_pin
        # SO-PIN first: it may be needed to unblock the user PIN.
        so_known: bytes | None = None
        if owner_so is not None:
            candidates = t.so_pins or (owner_so,)
            needs = candidates != (owner_so,) or (custody.start is not None and custody.start.so is not None and now.so is not None and now.so < custody.start.so)
            if needs and not now.so:
                problems.append("the SO-PIN is blocked")
            elif needs:
                for cand in _ordered(candidates, owner_so):
                    rsp = send(case3(CLA_ISO, Ins.CHANGE_REFERENCE_DATA, 0x00, PIN_SO, cand + owner_so))
                    if rsp.sw == SW.OK:
                        so_known = owner_so
                        if cand != owner_so:
                            done.append("SO-PIN put back")
                        break
                else:
                    problems.append("no SO-PIN the suite knows was accepted")
            elif custody.so_proven:
                so_known = owner_so  # proven this run, and nothing changed it since
        lost = _configuration_lost(custody, via, so_known) if owner_user is not None and so_known is not None else None
        if lost is not None:
            assert so_known is not None and owner_user is not None
            _reinitialize(custody, via, so_known, owner_user, done, problems, why=lost)
        elif owner_user is not None:
            now = custody.read_counters(via)
            candidates = t.user_pins or (owner_user,)
            if now.user == 0 and not (custody.start is not None and custody.start.user):
                pass  # blocked before the run began: the owner's to unblock, not the suite's
            elif now.user == 0:
                if so_known is None and custody.so_pin is not None and not custody.closed:
                    so_known = custody.so_pin if custody.prove_so("unblocking the user PIN") else None
                rrc = t.options is not None and bool(t.options & OPTION_RESET_RETRY_COUNTER)
                if so_known is not None and rrc:
                    rsp = send(case3(CLA_ISO, Ins.RESET_RETRY_COUNTER, RRC_NEW_PIN, PIN_USER, so_known + owner_user))
                    if rsp.sw == SW.OK:
                        done.append("user PIN unblocked and set back")
                    else:
                        problems.append(f"RESET RETRY COUNTER answered {rsp.sw_hex}")
                elif so_known is not None and custody.may_wipe():
                    _reinitialize(custody, via, so_known, owner_user, done, problems,
                                  why="the user PIN was blocked on a token without RESET RETRY COUNTER")
                elif so_known is None:
                    problems.append("the user PIN is blocked and unblocking it needs the SO-PIN, which the run never proved")
                else:
                    problems.append(
                        "the user PIN is blocked and this token refuses RESET RETRY COUNTER (option 0x0001 off): only "
                        "re-initializing it brings it back, which deletes its keys and needs the owner's consent (--serial)"
                    )
            elif now.user_sw != "6984":
                needs = candidates != (owner_user,) or (custody.start is not None and (custody.start.user or 0) > (now.user or 0))
                if needs:
                    for cand in _ordered(candidates, owner_user):
                        send(select_apdu())
                        rsp = send(case3(CLA_ISO, Ins.VERIFY, 0x00, PIN_USER, cand))
                        if rsp.sw == SW.OK:
                            if cand != owner_user:
                                rsp = send(case3(CLA_ISO, Ins.CHANGE_REFERENCE_DATA, 0x00, PIN_USER, cand + owner_user))
                                if rsp.sw == SW.OK:
                                    done.append("user PIN put back")
                                else:
                                    problems.append(f"changing the user PIN back answered {rsp.sw_hex}")
                            break
                    else:
                        if so_known is not None and custody.may_wipe() and t.wiped:
                            _reinitialize(custody, via, so_known, owner_user, done, problems,
                                          why="no user PIN the run knows was accepted after it re-initialized the token")
                        else:
                            problems.append("no user PIN the suite knows was accepted")
        left = _delete_own_objects(custody, via, done, problems)
        send(select_apdu())
        after = custody.read_counters(via)
    except TransportError as exc:
        why = custody.lost or str(exc)
        where = f"Its journal {custody.journal.path} holds the owner's PINs: put the token back and run `hsm-lifecycle restore` (or the same run again)." if custody.journal else ""
        return Outcome(custody.start, None, False, sentence=f"custody: the token stopped answering ({why}); {_left_where(custody)} {where}".rstrip(),
                       journal=str(custody.journal.path) if custody.journal else "")
    in_place = not problems and custody.owner_state()
    before = custody.start
    tries = describe_change(before, after)
    if in_place:
        sentence = "custody: the owner's PINs are in place" + (f" ({', '.join(done)})" if done else "") + f"; {tries}"
    else:
        sentence = f"custody: the owner's PINs could not all be put back ({'; '.join(problems) or 'state unknown'}); {tries}"
    refused = [name for name, spent in (("user PIN", custody.allowance["user"]), ("SO-PIN", custody.allowance["so"])) if spent]
    if refused:
        sentence += f" (the refused {' and '.join(refused)} given cost one try)"
    if left:
        sentence += f"; objects of the suite still on the token: {', '.join(left)}"
    sentence += "."
    return Outcome(before, after, in_place, objects_left=tuple(left), sentence=sentence,
                   journal=str(custody.journal.path) if custody.journal and (not in_place or left) else "")


def _configuration_lost(custody: Custody, via: Transport | None, so_known: bytes | None) -> str | None:
    """After a run with consent to wipe re-initialized the token and was cut short: why the
    owner's configuration cannot come back short of re-initializing it (the suite's transport
    PIN, the suite's options, a user PIN blocked without RESET RETRY COUNTER), or None."""
    if so_known is None or not custody.may_wipe() or not custody.t.wiped:
        return None
    now = custody.read_counters(via)
    options = custody._options(via)
    if now.user_sw == "6984":
        return "the run left the user PIN a transport PIN"
    start = custody.options_start
    if start is not None and options is not None and options != start:
        return f"the run left the token with options {options:04X}, not the owner's {start:04X}"
    if now.user == 0 and not (options or 0) & OPTION_RESET_RETRY_COUNTER:
        return "the user PIN was blocked on a token without RESET RETRY COUNTER"
    return None


def _reinitialize(custody: Custody, via: Transport | None, so_pin: bytes, user_pin: bytes, done: list[str], problems: list[str],
                  *, why: str) -> None:
    """With the owner's consent to wipe, INITIALIZE with the owner's SO-PIN, user PIN, options
    and retry counter gives back a token the owner can use where nothing else can: its keys are
    gone (consented), and without it the owner's only way back is the same re-initialization
    (a user PIN blocked without RESET RETRY COUNTER leaves every key unusable for good)."""
    options = custody.options_start if custody.options_start is not None else (custody.t.options or 0)
    retries = custody.user_max_start or USER_PIN_TRIES_DEFAULT
    data = b"".join([
        tlv.encode(TAG_INIT_OPTIONS, options.to_bytes(2, "big")),
        tlv.encode(TAG_INIT_USER_PIN, user_pin),
        tlv.encode(TAG_INIT_SO_PIN, so_pin),
        tlv.encode(TAG_INIT_USER_PIN_RETRY, bytes([retries])),
    ])
    rsp = custody.send(case3(CLA_PROPRIETARY, Ins.INITIALIZE_DEVICE, 0x00, 0x00, data), via)
    if rsp.sw == SW.OK:
        custody.t.wiped = True
        done.append(
            f"{why}: re-initialized with the owner's PINs, options {options:04X} and {retries} user tries, "
            "as --serial consented (its keys are gone)"
        )
    else:
        problems.append(f"re-initializing the token to unblock the user PIN answered {rsp.sw_hex}")


def _ordered(candidates: tuple[bytes, ...], owner: bytes) -> list[bytes]:
    """The tracked candidates first (most likely first), the owner's PIN at the end if absent."""
    out = list(dict.fromkeys(candidates))
    if owner not in out:
        out.append(owner)
    return out


def _delete_own_objects(custody: Custody, via: Transport | None, done: list[str], problems: list[str]) -> list[str]:
    """Every object that was not on the token at the start is the suite's: delete it. After a
    consented wipe the owner's objects are gone anyway; then nothing is compared."""
    if custody.objects_start is None or custody.t.wiped or custody.pin is None:
        return []
    now = custody._objects(via) if via is None else custody._objects(via)
    if now is None:
        return []
    extra = [fid for fid in now if fid not in custody.objects_start]
    if not extra:
        return []
    custody.send(select_apdu(), via)
    rsp = custody.send(case3(CLA_ISO, Ins.VERIFY, 0x00, PIN_USER, custody.pin), via)
    if rsp.sw != SW.OK:
        problems.append(f"could not log in to delete the suite's objects ({rsp.sw_hex})")
        return extra
    left = []
    for fid in extra:
        rsp = custody.send(case3(CLA_ISO, Ins.DELETE_FILE, 0x02, 0x00, bytes.fromhex(fid)), via)
        if rsp.sw != SW.OK and rsp.sw != SW.FILE_NOT_FOUND:
            left.append(fid)
    if len(extra) > len(left):
        done.append(f"{len(extra) - len(left)} object(s) of the suite deleted")
    return left


def restore_from_journal(custody: Custody, journal: Journal, via: Transport) -> Outcome:
    """A journal left by a run that did not finish: take its PINs and start state, restore."""
    entry = journal.load()
    if entry.pid != os.getpid() and _alive(entry.pid) and entry.pid != 0:
        raise CredentialError(
            f"another hsm-lifecycle run (pid {entry.pid}) holds this token's custody journal {journal.path}; "
            "wait for it to end (two runs on one token would spend each other's tries)"
        )
    saved = (custody.pin, custody.so_pin, custody.t, custody.start, custody.objects_start, custody.begun,
             custody.user_proven, custody.so_proven, custody.may_wipe, custody.options_start, custody.user_max_start)
    # A journal holds only PINs the token accepted during that run.
    custody.pin = bytes.fromhex(entry.owner_user_pin) if entry.owner_user_pin else None
    custody.so_pin = bytes.fromhex(entry.owner_so_pin) if entry.owner_so_pin else None
    custody.user_proven, custody.so_proven = custody.pin is not None, custody.so_pin is not None
    custody.may_wipe = lambda: entry.may_wipe  # the consent that run was given, for the run it finishes
    custody.options_start, custody.user_max_start = entry.options_start, entry.user_max_start
    custody.t = Tracked(
        user_pins=tuple(bytes.fromhex(p) for p in entry.user_pins),
        so_pins=tuple(bytes.fromhex(p) for p in entry.so_pins),
        wiped=entry.wiped,
    )
    custody.start = Counters(entry.user_tries_start, entry.so_tries_start)
    custody.objects_start = entry.objects_start
    custody.t.options = custody._options(via)
    custody.begun = True
    custody.journal = journal
    try:
        out = _restore(custody, via)
    finally:
        (custody.pin, custody.so_pin, _, _, _, custody.begun, custody.user_proven, custody.so_proven,
         custody.may_wipe, custody.options_start, custody.user_max_start) = saved
    if out.pins_in_place and not out.objects_left:
        journal.remove()
        out.journal = ""
    pending = f" (interrupted during {entry.pending})" if entry.pending else ""
    out.sentence = out.sentence.replace("custody:", f"custody: an earlier run from {entry.started} was restored{pending}:", 1)
    return out


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
