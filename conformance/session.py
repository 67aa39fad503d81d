"""Opening the target for the session: confirm the serial before any state-changing APDU,
read the device's state, and observe the open behaviours within the consent. Also the two
free reads the commands and the report use on their own (serial, SO tries left)."""

from __future__ import annotations

from hsm_lifecycle.conformance.interlocks import GuardedTransport, SerialMismatch
from hsm_lifecycle.conformance.mapper import IdentityUnreadable, Mapper
from hsm_lifecycle.conformance.targets import Target
from hsm_lifecycle.conformance.trace import TraceRecorder, TracingTransport
from hsm_lifecycle.conformance.transport.base import TransportError
from hsm_lifecycle.model.cost import CostClass
from hsm_lifecycle.model.states import ExtState


def read_serial(mapper: Mapper) -> str | None:
    """The serial OpenSC shows, from EF.C_DevAut (a free read); None if unreadable."""
    from hsm_lifecycle.cvc import CvcError, parse_cv_objects, serial_from_chr

    try:
        objects = parse_cv_objects(mapper.read_identity())
        return serial_from_chr(objects[0].chr)  # type: ignore[union-attr]
    except (CvcError, IndexError, AttributeError, IdentityUnreadable):
        return None


def read_so_tries(target: Target, recorder: TraceRecorder) -> int | None:
    """The SO-PIN tries the device has left, asked of it (SELECT and VERIFY 88 without data,
    both free); None when it has no SO-PIN or cannot be reached."""
    from hsm_lifecycle.conformance.mapper import apdu
    from hsm_lifecycle.protocol import CLA_ISO, PIN_SO, SW, Ins, tries_from_sw

    tracing = TracingTransport(target.raw_transport(), recorder)
    mapper = Mapper(GuardedTransport(tracing, target.consent), pins=target.pins, keys=target.keys, objects=target.objects)
    recorder.context("read SO tries at the end", target.twin.abstract if target.twin else "")
    try:
        mapper.select()  # a test may have left the card manager selected (after an update)
        sw = mapper.send(apdu(CLA_ISO, Ins.VERIFY, 0x00, PIN_SO)).sw
    except TransportError:
        return None
    finally:
        recorder.flush()
    return 0 if sw == SW.AUTH_METHOD_BLOCKED else tries_from_sw(sw)


def prepare(target: Target, recorder: TraceRecorder, *, wiping_test_selected: bool, spending_test_selected: bool = True,
            keep_uninitialized: bool = False) -> None:
    """Open the target for the session. On a persistent device: compare the serial with
    --hsm-serial before any state-changing APDU (SerialMismatch), read the device's state, and
    observe the open behaviours within the consent. On the in-process emulator the probes run on
    a token of their own. Raises SerialMismatch / CredentialError for the plugin to stop on."""
    from hsm_lifecycle.conformance.observe import Probe, observe, read_state

    consent = target.consent
    raw = target.raw_transport()
    tracing = TracingTransport(raw, recorder)
    guard = GuardedTransport(tracing, consent, right_so_pin=lambda: target.pins.so_pin)
    guard.own_key_fids = target.own_key_fids
    guard.test_cost = CostClass.WIPES  # probes never block the SO-PIN; the floor holds on a real token
    mapper = Mapper(guard, pins=target.pins, keys=target.keys, objects=target.objects)
    probe = Probe(mapper, recorder)
    recorder.context("connect", "")
    tracing.connect()
    target.version = mapper.version_from_fcp()
    recorder.context("read serial", "")
    serial = read_serial(mapper)
    target.serial = serial
    if consent.guarded and consent.serial is not None and serial is None:
        raise SerialMismatch("the token's serial could not be read from EF.C_DevAut, so --hsm-serial cannot be confirmed; nothing was changed")
    consent.confirm_serial(serial or "")
    if target.custody is not None:  # counters read, a leftover journal restored, PINs proven
        target.custody.begin(serial or "", tracing, spending=spending_test_selected or wiping_test_selected)
    if not target.persistent:
        observations, _ = observe(probe, ExtState.shipped(), may_wipe=True, so_floor=None)
    else:
        pin_known = not consent.guarded or target.options.pin is not None
        if target.custody is not None:
            pin_known = target.custody.user_proven
        state = read_state(probe, user_pin_known=pin_known)
        target.found = state
        so_pin_known = not consent.guarded or target.options.so_pin is not None
        so_pin_why = ""
        if target.custody is not None:  # given and presentable: proven at its first use
            so_pin_known = target.custody.so_pin_usable
            unusable = target.custody.so_pin_unusable()
            if unusable and target.custody.so_pin is not None:
                so_pin_why = f"probing it presents the SO-PIN, which may not be presented: {unusable}"
        # Re-initializing an initialized token presents its SO-PIN: only the owner's.
        may_wipe = not consent.guarded or (consent.serial_confirmed and wiping_test_selected and (so_pin_known or not state.is_initialized))
        may_wipe = may_wipe and not keep_uninitialized  # the campaign's first checks need it uninitialized
        observations, _ = observe(
            probe,
            state,
            may_wipe=may_wipe,
            so_floor=consent.so_floor if consent.guarded else None,
            user_pin_known=pin_known,
            so_pin_known=so_pin_known,
            # Learning so-success-restores at 15 SO tries spends one that may never come back.
            may_lose_so_try=not consent.guarded or consent.ceiling() >= CostClass.WIPES,
            so_pin_why=so_pin_why,
        )
        target.twin = read_state(probe, user_pin_known=pin_known)
    recorder.flush()
    target.observations.update(observations.seen)
    target.unknown_behaviours = dict(observations.notes)
    target.odd_behaviours = dict(observations.odd)
    target.profile = observations.profile()
