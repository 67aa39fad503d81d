"""Device models the emulator can pose as: what tells them apart on the wire, each with its source.

A model fixes the ATR, the applet version the FCP reports (a starting value: `Profile.version`
can still be set on its own) and the RSA sizes GENERATE ASYMMETRIC KEY PAIR accepts. Where no
public source gives a value, the entry says so (docs/emulator.md repeats the table).
"""

from __future__ import annotations

from dataclasses import dataclass

from hsm_lifecycle import protocol

RSA_4K = (1024, 1536, 2048, 3072, 4096)  # OpenSC card-sc-hsm.c sc_hsm_init


@dataclass(frozen=True)
class DeviceModel:
    name: str
    atr: bytes
    version: tuple[int, int]
    rsa_bits: tuple[int, ...]
    sources: tuple[str, ...]


MODELS: dict[str, DeviceModel] = {
    m.name: m
    for m in (
        DeviceModel(
            "smartcard-hsm",
            protocol.ATR,
            protocol.DEFAULT_VERSION,
            RSA_4K,
            (
                "ATR: OpenSC card-sc-hsm.c sc_hsm_atrs, first ('standard') entry",
                "version 3.2: the emulator's choice; 3.2 is a version seen on Nitrokey tokens (protocol digest §1), "
                "no public source pairs it with this ATR",
                "RSA 1024-4096: the sizes OpenSC registers for the driver (sc_hsm_init)",
            ),
        ),
        DeviceModel(
            "nitrokey-hsm2",
            bytes.fromhex("3BDE18FF8191FE1FC38031815448534D31738021408107 1C".replace(" ", "")),
            (3, 4),
            RSA_4K,
            (
                "ATR: verbatim in the OpenSC debug log of a Nitrokey HSM (OpenSC#2432) and in the Windows "
                "registry entry 'SmartCard-HSM 4K' of a Nitrokey HSM 2 (OpenSC#1861); OpenSC commit 2b60a0d "
                "'Add support for SmartCard-HSM 4K (V3.0)'",
                "version 3.4: pkcs11-tool's 'firmware version : 3.4' of a Nitrokey HSM (OpenSC#2737); CardContact: "
                "'The HSM 2 is a SmartCard-HSM 4K which is version 3.x' (CardContact/scsh-scripts#7)",
                "RSA up to 4096: the HSM 2 is a SmartCard-HSM 4K (CardContact/scsh-scripts#7); the HSM 1 (v2.5, "
                "'does not support 4K keys') is not modelled",
            ),
        ),
    )
}
DEFAULT_MODEL = "smartcard-hsm"


def model_named(name: str) -> DeviceModel:
    try:
        return MODELS[name]
    except KeyError:
        raise ValueError(f"unknown device model {name!r}: one of {', '.join(MODELS)}") from None
