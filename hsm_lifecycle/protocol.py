"""Plain SmartCard-HSM protocol constants: the one home for bytes both sides must agree on.

Only constants live here (no behaviour), so that the emulator and the conformance suite stay
two independent implementations of the protocol (see docs/architecture in shared docs).
Values from the protocol digest (`shared/docs/protocol-digest.md`, cited as §n).
"""

from __future__ import annotations

from enum import Enum, IntEnum

# §1: applet AID, and the ATR the real card (and pico-hsm) presents.
AID = bytes.fromhex("E82B0601040181C31F0201")
ATR = bytes.fromhex("3BFE1800008131FE458031815448534D31738021408107FA")

# Applet version our emulator reports by default (the thread's token reports 3.2).
DEFAULT_VERSION = (3, 2)
APPLET_TYPE_SMARTCARD_HSM = 0xFF  # tag 85 type byte: anything but 00/01 is "SmartCard-HSM"

# §1 FCP tags.
TAG_FCP = 0x62
TAG_FCI = 0x6F  # the FCI template a v1.x applet answers to SELECT (OpenSC#2432)
TAG_FCP_PROPRIETARY = 0x85


class Ins(IntEnum):
    """Instruction bytes (§1–§4)."""

    SELECT = 0xA4
    VERIFY = 0x20
    CHANGE_REFERENCE_DATA = 0x24
    RESET_RETRY_COUNTER = 0x2C
    INITIALIZE_DEVICE = 0x50  # CLA 80
    IMPORT_DKEK_SHARE = 0x52  # CLA 80; without data: DKEK status
    PKA_STATUS = 0x54  # CLA 80
    ENUMERATE_OBJECTS = 0x58  # CLA 80
    DECIPHER = 0x62  # CLA 80
    SIGN = 0x68  # CLA 80
    WRAP_KEY = 0x72  # CLA 80
    UNWRAP_KEY = 0x74  # CLA 80
    GENERATE_ASYMMETRIC_KEY_PAIR = 0x46
    GET_CHALLENGE = 0x84
    READ_BINARY_ODD = 0xB1
    UPDATE_BINARY_ODD = 0xD7
    DELETE_FILE = 0xE4
    GET_RESPONSE = 0xC0


CLA_ISO = 0x00
CLA_PROPRIETARY = 0x80

# §3 PIN references (P2 of VERIFY / CHANGE REFERENCE DATA / RESET RETRY COUNTER).
PIN_USER = 0x81
PIN_SO = 0x88
PIN_BIO_1 = 0x85
PIN_BIO_2 = 0x86

# §3 RESET RETRY COUNTER P1.
RRC_NEW_PIN = 0x00  # data: SO-PIN(8) || new user PIN
RRC_COUNTER_ONLY = 0x01  # data: SO-PIN(8)


class SW(IntEnum):
    """Status words (§3 table and ISO 7816-4)."""

    OK = 0x9000
    END_OF_FILE = 0x6282
    WRONG_LENGTH = 0x6700
    SECURITY_STATUS_NOT_SATISFIED = 0x6982
    AUTH_METHOD_BLOCKED = 0x6983
    REFERENCE_DATA_NOT_USABLE = 0x6984  # transport PIN active (v2+)
    CONDITIONS_NOT_SATISFIED = 0x6985
    COMMAND_NOT_ALLOWED = 0x6986
    NOT_ALLOWED = 0x6900
    WRONG_DATA = 0x6A80
    FUNCTION_NOT_SUPPORTED = 0x6A81
    FILE_NOT_FOUND = 0x6A82
    NOT_ENOUGH_MEMORY = 0x6A84
    INCORRECT_P1P2 = 0x6A86
    REFERENCED_DATA_NOT_FOUND = 0x6A88  # also: "not initialized"
    WRONG_P1P2 = 0x6B00
    INS_NOT_SUPPORTED = 0x6D00
    CLA_NOT_SUPPORTED = 0x6E00
    NO_PRECISE_DIAGNOSIS = 0x6F00


def sw_tries(tries: int) -> int:
    """63Cx: a PIN was wrong or not yet verified, x tries left."""
    if not 0 <= tries <= 15:
        raise ValueError(f"tries must be 0..15, got {tries}")
    return 0x63C0 | tries


def tries_from_sw(sw: int) -> int | None:
    """Tries left encoded in a 63Cx status word, or None for any other SW."""
    return sw & 0x0F if sw & 0xFFF0 == 0x63C0 else None


# §2 INITIALIZE DEVICE tags.
TAG_INIT_OPTIONS = 0x80
TAG_INIT_USER_PIN = 0x81
TAG_INIT_SO_PIN = 0x82  # the initialization code
TAG_INIT_USER_PIN_RETRY = 0x91
TAG_INIT_DKEK_SHARES = 0x92
TAG_INIT_PUBLIC_KEY_AUTH = 0x93
TAG_INIT_BIO_1 = 0x95
TAG_INIT_BIO_2 = 0x96
TAG_INIT_KEY_DOMAINS = 0x97

# §2 option bits.
OPTION_RESET_RETRY_COUNTER = 0x0001  # "User PIN reset with SO-PIN enabled"
OPTION_TRANSPORT_PIN = 0x0002  # "Transport-PIN mode enabled"
OPTION_SESSION_PIN = 0x0004

# §2/§3 PIN formats and counters.
SO_PIN_LENGTH = 8
USER_PIN_MIN = 6
USER_PIN_MAX = 16
SO_PIN_TRIES = 15
USER_PIN_TRIES_MAX = 10
USER_PIN_TRIES_DEFAULT = 3  # sc-hsm-tool default
FIRMWARE_UPDATES_WHILE_SO_BLOCKED = 5  # story: at most 5 updates admitted by a blocked SO-PIN

# The thread's and the tools' defaults (§2): the SO-PIN is ASCII "57621880" in hex.
DEFAULT_SO_PIN = bytes.fromhex("3537363231383830")
DEFAULT_USER_PIN = b"648219"

# §4 file identifiers.
FID_PREFIX_PRKD = 0xC4
FID_PREFIX_CD = 0xC8
FID_PREFIX_DCOD = 0xC9
FID_PREFIX_CA_CERT = 0xCA
FID_PREFIX_KEY_META = 0xCB
FID_PREFIX_PRIVATE_KEY = 0xCC
FID_PREFIX_PROTECTED_DATA = 0xCD
FID_PREFIX_EE_CERT = 0xCE  # certificate or CV request
FID_PREFIX_READABLE_DATA = 0xCF
FID_DEVICE_KEY = 0xCC00  # C_DevAut private key: key id 00
FID_C_DEVAUT = 0x2F02  # EF.C_DevAut: device CVC || DICA CVC
FID_TOKEN_INFO = 0x2F03

# §4 READ/UPDATE BINARY (odd INS) data tags.
TAG_OFFSET = 0x54
TAG_DISCRETIONARY_DATA = 0x53

# §4 SIGN / DECIPHER algorithm bytes.
ALGO_RSA_RAW = 0x20  # SIGN only
# DECIPHER: 21 answers the raw block m^d (OpenSC pads and strips itself), 22 strips PKCS#1
# v1.5, 23 OAEP (OpenSC card-sc-hsm.h ALGO_RSA_DECRYPT; pico-hsm sc_hsm.h 21/22/23).
ALGO_RSA_DECRYPT_RAW = 0x21
ALGO_RSA_DECRYPT_PKCS1 = 0x22
ALGO_RSA_DECRYPT_OAEP = 0x23
ALGO_RSA_PKCS1_DIGESTINFO = 0x30
ALGO_RSA_PKCS1_SHA1 = 0x31
ALGO_RSA_PKCS1_SHA256 = 0x33
ALGO_RSA_PKCS1_SHA384 = 0x34
ALGO_RSA_PKCS1_SHA512 = 0x35
ALGO_RSA_PSS = 0x40
ALGO_RSA_PSS_SHA1 = 0x41
ALGO_RSA_PSS_SHA256 = 0x43
ALGO_RSA_PSS_SHA384 = 0x44
ALGO_RSA_PSS_SHA512 = 0x45
ALGO_ECDSA_RAW = 0x70
ALGO_ECDSA_SHA1 = 0x71
ALGO_ECDSA_SHA224 = 0x72
ALGO_ECDSA_SHA256 = 0x73
ALGO_ECDSA_SHA384 = 0x74
ALGO_ECDSA_SHA512 = 0x75
ALGO_ECDH = 0x80  # DECIPHER with an EC key: answers 04 || shared x (OpenSC strips the 04)

# §4/§5 CV certificate tags (BSI TR-03110).
TAG_CV_CERTIFICATE = 0x7F21
TAG_CV_AUTHENTICATED_REQUEST = 0x67
TAG_CV_BODY = 0x7F4E
TAG_CV_CPI = 0x5F29
TAG_CV_CAR = 0x42
TAG_CV_PUBLIC_KEY = 0x7F49
TAG_CV_CHR = 0x5F20
TAG_CV_CHAT = 0x7F4C
TAG_CV_EFFECTIVE_DATE = 0x5F25
TAG_CV_EXPIRATION_DATE = 0x5F24
TAG_CV_EXTENSIONS = 0x65
TAG_CV_SIGNATURE = 0x5F37
TAG_CV_OUTER_CAR = 0x45
TAG_OID = 0x06

# OIDs (dotted) used in CV public keys.
OID_TA_ECDSA_SHA256 = "0.4.0.127.0.7.2.2.2.2.3"
OID_TA_RSA_V1_5_SHA256 = "0.4.0.127.0.7.2.2.2.1.2"
OID_TA_RSA_PSS_SHA256 = "0.4.0.127.0.7.2.2.2.1.4"

# §9 vsmartcard vpcd control bytes and default port.
VPCD_PORT = 35963
VPCD_POWER_OFF = 0x00
VPCD_POWER_ON = 0x01
VPCD_RESET = 0x02
VPCD_GET_ATR = 0x04

# Storage budget of the real token: about 76 KB of EEPROM shared by all objects (FAQ).
EEPROM_BYTES = 76 * 1024

# §1/§4 SELECT parameters (ISO 7816-4).
SELECT_P1_BY_FID = 0x00
SELECT_P1_EF_UNDER_DF = 0x02
SELECT_P1_BY_NAME = 0x04  # the applet by AID
SELECT_P1_PATH_FROM_MF = 0x08
SELECT_P2_FCI = 0x00  # what OpenSC sends
SELECT_P2_FCP = 0x04  # what CardContact's tools send
SELECT_P2_NO_RESPONSE = 0x0C
FID_MF = 0x3F00

# §4 FCP tags of an EF (ISO 7816-4 §5.3.3) and of the applet DF.
TAG_FCP_SIZE = 0x80
TAG_FCP_DESCRIPTOR = 0x82
TAG_FCP_FID = 0x83
TAG_FCP_DF_NAME = 0x84
TAG_FCP_LIFECYCLE = 0x8A
FCP_DESCRIPTOR_WORKING_EF = 0x01  # transparent working EF
FCP_DESCRIPTOR_DF = 0x38
FCP_LIFECYCLE_OPERATIONAL = 0x05  # operational, activated

# §4 DELETE FILE P1P2, GET CHALLENGE cap (OpenSC), DKEK share size.
DELETE_FILE_P1P2 = 0x0200
CHALLENGE_MAX = 1024
DKEK_SHARE_LENGTH = 32

# ISO 7816-4: SW1 of "more data waiting" (fetch with GET RESPONSE) and of "wrong Le, SW2 is
# the right one".
SW1_MORE_DATA = 0x61
SW1_WRONG_LE = 0x6C

# ISO 7816-4 §5.6: what SW1 says about a status word this project has no name for.
SW1_MEANINGS = {
    0x62: "warning, state unchanged",
    0x63: "warning, state changed",
    0x64: "execution error, state unchanged",
    0x65: "execution error, state changed",
    0x66: "security error",
    0x67: "wrong length",
    0x68: "function in CLA not supported",
    0x69: "command not allowed",
    0x6A: "wrong parameters P1-P2",
    0x6B: "wrong parameters P1-P2",
    0x6D: "instruction not supported",
    0x6E: "class not supported",
    0x6F: "no precise diagnosis",
}
_SW_WORDS_KEPT = frozenset({"INS", "CLA", "P1P2", "OK"})


def sw_name(sw: int) -> str:
    """The `SW` member's name (`SECURITY_STATUS_NOT_SATISFIED`), else what the SW says as
    ISO 7816-4 defines it (63Cx, 61xx, 6Cxx, or its SW1 class)."""
    known = _known_sw(sw)
    return known.name if known is not None else sw_meaning(sw)


def sw_meaning(sw: int) -> str:
    """`sw` in words, for people: `security status not satisfied`, `PIN not verified or
    wrong, 2 tries left`, `12 more bytes waiting`."""
    known = _known_sw(sw)
    if known is not None:
        return " ".join(w if w in _SW_WORDS_KEPT else w.lower() for w in known.name.split("_"))
    sw1, sw2 = sw >> 8, sw & 0xFF
    tries = tries_from_sw(sw)
    if tries is not None:
        return f"PIN not verified or wrong, {tries} {'try' if tries == 1 else 'tries'} left"
    if sw1 == SW1_MORE_DATA:
        return f"{sw2 or 256} more bytes waiting (GET RESPONSE)"
    if sw1 == SW1_WRONG_LE:
        return f"wrong Le, {sw2 or 256} bytes available"
    if sw1 == 0x90:
        return "success, with SW2 set"
    return SW1_MEANINGS.get(sw1, "not an ISO 7816-4 status word")


def _known_sw(sw: int) -> SW | None:
    try:
        return SW(sw)
    except ValueError:
        return None


def sw_from_hex(text: str) -> int | None:
    """The SW a string of four hex digits (`6982`) spells, else None (`63Cx`, `update-ok`)."""
    if len(text) != 4 or any(c not in "0123456789abcdefABCDEF" for c in text):
        return None
    return int(text, 16)


def describe_sw(sw: int | str) -> str:
    """`6982 security status not satisfied`: a status word as a person reads it. A string is
    taken as an SW if it is four hex digits; any other (an outcome such as `update-ok`) is
    returned as it is. Files keep the plain hex: this is for messages only."""
    if isinstance(sw, str):
        value = sw_from_hex(sw)
        if value is None:
            return sw
        sw = value
    return f"{sw:04X} {sw_meaning(sw)}"

# §2 CardContact's retries-per-PIN-length rule: 6 bytes -> 3, 7 -> 5, longer -> 10.
USER_PIN_TRIES_BY_LENGTH = {6: 3, 7: 5}


class CutMoment(Enum):
    """Where a power-cut rig (docs/power-rig.md) takes the token's power, in its protocol's words."""

    PIN_CHECK = "pin-check"  # the instant a PIN comparison has decided, before any answer
    TRY_SPENT = "try-spent"  # right after a try's decrement reached the token's storage
    APDU = "apdu"  # as the next command APDU arrives, before the token runs it
