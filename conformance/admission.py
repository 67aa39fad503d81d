"""Whether a step may be sent at all: its cost against the test's cost-class marker and the
user's consent (the SO-PIN floor included), and the owner's PINs presented only if given."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hsm_lifecycle.conformance.interlocks import InterlockRefused
from hsm_lifecycle.model.commands import Command
from hsm_lifecycle.model.cost import CostClass
from hsm_lifecycle.model.oracle import Outcome

if TYPE_CHECKING:
    from hsm_lifecycle.conformance.device import Device


class CostExceeded(Exception):
    """A test took a step costlier than its cost-class marker says: the marker is wrong."""


def admit(device: Device, outcome: Outcome) -> None:
    cost = effective_cost(device, outcome)
    if not device.setup and cost > device.declared and cost != CostClass.OPERATOR:
        raise CostExceeded(
            f"{outcome.command} in {outcome.before} costs '{cost.value}' ({outcome.transition}), "
            f"more than this test's marker '{device.declared.value}'"
        )
    consent = device.target.consent
    if not consent.guarded:
        return
    if cost == CostClass.OPERATOR:
        reason = consent.skip_reason(CostClass.OPERATOR)
        if reason:
            raise InterlockRefused(reason)
    elif cost > consent.ceiling():
        raise InterlockRefused(
            f"{outcome.command} would cost '{cost.value}' here ({outcome.transition}); "
            + consent.skip_reason(cost)  # type: ignore[operator]
        )
    before, after = outcome.before.so_tries, outcome.next.so_tries
    floor = consent.so_floor
    if before is not None and after is not None and after < before and after < floor and device.guard.test_cost < CostClass.IRREVERSIBLE:
        raise InterlockRefused(
            f"{outcome.command} would leave {after} SO tries, below the floor of {floor} (--hsm-so-floor)"
        )


def effective_cost(device: Device, outcome: Outcome) -> CostClass:
    """The model's cost class, except that deleting a key the suite generated itself loses
    nothing of the owner's (the model cannot tell whose key it is; the mapper can)."""
    cost = CostClass.parse(outcome.cost)
    if outcome.command.name == "delete_key" and device.mapper.keys and device.guard.owns(device.mapper.newest_key):
        return min(cost, CostClass.TRIES)
    return cost


def check_credentials(device: Device, cmd: Command) -> None:
    """On a real token the suite presents the owner's PINs only if the owner gave them."""
    if not device.target.consent.guarded or not device.state.is_initialized:
        return
    opts = device.target.options
    # A PIN of the wrong length in CHANGE 81 comes after the right old PIN, and the SO commands'
    # ones are built from the right SO-PIN: without it they would be wrong PINs, which spend tries.
    right_user = (cmd.name == "verify_user" and cmd.pin == "right") or (cmd.name == "change_user_pin" and cmd.pin not in ("wrong", None))
    right_user = right_user or cmd.name == "portal_login"
    right_so = cmd.name in ("initialize", "reset_retry_counter", "change_so_pin") and cmd.so not in ("wrong", None)
    if right_user and opts.pin is None:
        raise InterlockRefused(f"{cmd} presents the token's user PIN: pass it with --hsm-pin")
    if right_so and opts.so_pin is None:
        raise InterlockRefused(f"{cmd} presents the token's SO-PIN: pass it with --hsm-so-pin (16 hex digits)")


def may_initialize(device: Device) -> bool:
    """Whether an INITIALIZE APDU may reach this token (never on a real one without serial)."""
    return not device.target.consent.guarded or device.target.consent.ceiling() >= CostClass.WIPES
