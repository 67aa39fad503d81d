"""BSI TR-03110 card-verifiable certificates (CVCs) and requests, as the SmartCard-HSM uses them.

Shapes (protocol digest §4–§5):

* body        7F4E {5F29 CPI, 42 CAR, 7F49 public key, 5F20 CHR, [7F4C CHAT], [5F25, 5F24], [65]}
* certificate 7F21 {7F4E body, 5F37 signature over the encoded body}
* auth. request 67 {7F21 self-signed request, 42 outer CAR, 5F37 signature over 7F21 || 42}
* public key  7F49 {06 OID, EC: [81 p 82 a 83 b 84 G 85 n] 86 point [87 h] | RSA: 81 n 82 e}

ECDSA signatures inside CVCs are plain r || s, each as long as the curve order; `cryptography`
wants DER, so they are converted at the boundary. A device certificate carries only the point
(86): its curve comes from the issuer chain, which is why verification threads an inherited
`EcDomain` down from the root.

Every decoding error raises `CvcError` (a ValueError); `TlvError` from the TLV layer is wrapped.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from typing import Literal, Protocol, TypeVar, Union, runtime_checkable

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from hsm_lifecycle import protocol as p
from hsm_lifecycle import tlv
from hsm_lifecycle.tlv import Tlv, TlvError

PublicKey = Union[ec.EllipticCurvePublicKey, rsa.RSAPublicKey]

# OpenSC refuses a device CHR shorter than 8 (§5); TR-03110 caps CAR/CHR at 16 characters.
CHR_MIN_FOR_SERIAL = 8
REFERENCE_MAX = 16
SERIAL_SUFFIX = 5  # serial = CHR minus its 5-character sequence number
_X962 = Encoding.X962
_UNCOMPRESSED = PublicFormat.UncompressedPoint

# CHAT (7F4C) role OID used by CardContact's device PKI (root C0, DICA 80, device 00).
OID_CHAT_SMARTCARD_HSM = "1.3.6.1.4.1.24991.3.1.1"
ROLE_CVCA = 0xC0
ROLE_DV = 0x80
ROLE_TERMINAL = 0x00

TEST_ROOT_CHR = "UTSRCACC100001"
CARDCONTACT_ROOT_CHR = "DESRCACC100001"


class CvcError(ValueError):
    """A CVC, request or key object is malformed or inconsistent."""


class UnsupportedAlgorithmError(CvcError):
    """Well-formed, but the algorithm OID or the curve is one this codec does not know."""


class SignatureInvalidError(CvcError):
    """A signature does not verify."""


class ChainError(CvcError):
    """EF.C_DevAut does not verify up to the given root; the message says why."""


# ---------------------------------------------------------------------------------------------
# Algorithms (TR-03110 part 3, A.2.2 / A.2.3: id-TA = 0.4.0.127.0.7.2.2.2)

SignatureScheme = Literal["ecdsa", "rsa-v1.5", "rsa-pss"]


@dataclass(frozen=True)
class TaAlgorithm:
    oid: str
    name: str
    scheme: SignatureScheme
    hash_factory: Callable[[], hashes.HashAlgorithm]

    def new_hash(self) -> hashes.HashAlgorithm:
        return self.hash_factory()


_TA = "0.4.0.127.0.7.2.2.2"
_ALGORITHMS = (
    TaAlgorithm(f"{_TA}.1.1", "id-TA-RSA-v1-5-SHA-1", "rsa-v1.5", hashes.SHA1),
    TaAlgorithm(f"{_TA}.1.2", "id-TA-RSA-v1-5-SHA-256", "rsa-v1.5", hashes.SHA256),
    TaAlgorithm(f"{_TA}.1.3", "id-TA-RSA-PSS-SHA-1", "rsa-pss", hashes.SHA1),
    TaAlgorithm(f"{_TA}.1.4", "id-TA-RSA-PSS-SHA-256", "rsa-pss", hashes.SHA256),
    TaAlgorithm(f"{_TA}.1.5", "id-TA-RSA-v1-5-SHA-512", "rsa-v1.5", hashes.SHA512),
    TaAlgorithm(f"{_TA}.1.6", "id-TA-RSA-PSS-SHA-512", "rsa-pss", hashes.SHA512),
    TaAlgorithm(f"{_TA}.2.1", "id-TA-ECDSA-SHA-1", "ecdsa", hashes.SHA1),
    TaAlgorithm(f"{_TA}.2.2", "id-TA-ECDSA-SHA-224", "ecdsa", hashes.SHA224),
    TaAlgorithm(f"{_TA}.2.3", "id-TA-ECDSA-SHA-256", "ecdsa", hashes.SHA256),
    TaAlgorithm(f"{_TA}.2.4", "id-TA-ECDSA-SHA-384", "ecdsa", hashes.SHA384),
    TaAlgorithm(f"{_TA}.2.5", "id-TA-ECDSA-SHA-512", "ecdsa", hashes.SHA512),
)
ALGORITHMS: dict[str, TaAlgorithm] = {a.oid: a for a in _ALGORITHMS}
OID_TA_ECDSA_SHA256 = p.OID_TA_ECDSA_SHA256
OID_TA_RSA_V1_5_SHA256 = p.OID_TA_RSA_V1_5_SHA256
# TR-03110: {id-TA-RSA 4}. protocol.py's constant of this name says .1.5, which is v1-5-SHA-512.
OID_TA_RSA_PSS_SHA256 = f"{_TA}.1.4"


def algorithm(oid: str) -> TaAlgorithm:
    try:
        return ALGORITHMS[oid]
    except KeyError:
        raise UnsupportedAlgorithmError(f"unknown signature algorithm OID {oid}") from None


def encode_oid(dotted: str) -> bytes:
    """DER content octets of an OBJECT IDENTIFIER."""
    try:
        arcs = [int(x) for x in dotted.split(".")]
    except ValueError:
        raise CvcError(f"bad OID {dotted!r}") from None
    if len(arcs) < 2 or arcs[0] > 2 or (arcs[0] < 2 and arcs[1] >= 40) or min(arcs) < 0:
        raise CvcError(f"bad OID {dotted!r}")
    out = bytearray()
    for arc in [40 * arcs[0] + arcs[1], *arcs[2:]]:
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        out += bytes(reversed(chunk))
    return bytes(out)


def decode_oid(raw: bytes) -> str:
    """Dotted form of OID content octets; strict about truncation and padding."""
    if not raw or raw[-1] & 0x80:
        raise CvcError("empty or truncated OID")
    arcs: list[int] = []
    value = 0
    fresh = True
    for byte in raw:
        if fresh and byte == 0x80:
            raise CvcError("OID arc with leading 0x80 padding")
        value = (value << 7) | (byte & 0x7F)
        fresh = not byte & 0x80
        if fresh:
            arcs.append(value)
            value = 0
    first = min(arcs[0] // 40, 2)
    return ".".join(str(a) for a in [first, arcs[0] - 40 * first, *arcs[1:]])


# ---------------------------------------------------------------------------------------------
# Elliptic-curve domain parameters (SEC 2, RFC 5639). For the curves `cryptography` implements,
# G is taken from the library itself (the public key of private value 1), so only p, a, b, n are
# written here; a unit test proves all four against the library. The curves it does not implement
# carry G from the specification and no `curve_factory`: the emulator computes on them in pure
# Python, and a unit test proves every parameter against OpenSSL's built-in curve.


@dataclass(frozen=True)
class EcDomain:
    name: str
    p: int
    a: int
    b: int
    n: int
    h: int
    curve_factory: Callable[[], ec.EllipticCurve] | None
    g: bytes | None = None  # G, uncompressed, for the curves without `curve_factory`

    @property
    def native(self) -> bool:
        """Whether `cryptography` computes on this curve."""
        return self.curve_factory is not None

    @property
    def field_bytes(self) -> int:
        return (self.p.bit_length() + 7) // 8

    @property
    def order_bytes(self) -> int:
        return (self.n.bit_length() + 7) // 8

    def curve(self) -> ec.EllipticCurve:
        if self.curve_factory is None:
            raise UnsupportedAlgorithmError(f"curve {self.name} is not computable by cryptography")
        return self.curve_factory()

    @property
    def generator(self) -> bytes:
        """G, uncompressed (04 || x || y)."""
        return self.g if self.g is not None else _generator(self.name)

    def matches(self, p_: int, a: int, b: int, g: bytes, n: int, h: int | None) -> bool:
        return (
            (p_, a, b, n) == (self.p, self.a, self.b, self.n)
            and g == self.generator
            and (h is None or h == self.h)
        )


def _pure(name: str, p: int, a: int, b: int, g: bytes, n: int) -> EcDomain:
    return EcDomain(name, p=p, a=a, b=b, n=n, h=1, curve_factory=None, g=g)


_CURVES = (
    EcDomain(
        "secp256r1",
        p=0xFFFFFFFF00000001000000000000000000000000FFFFFFFFFFFFFFFFFFFFFFFF,
        a=0xFFFFFFFF00000001000000000000000000000000FFFFFFFFFFFFFFFFFFFFFFFC,
        b=0x5AC635D8AA3A93E7B3EBBD55769886BC651D06B0CC53B0F63BCE3C3E27D2604B,
        n=0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551,
        h=1,
        curve_factory=ec.SECP256R1,
    ),
    EcDomain(
        "brainpoolP256r1",
        p=0xA9FB57DBA1EEA9BC3E660A909D838D726E3BF623D52620282013481D1F6E5377,
        a=0x7D5A0975FC2C3057EEF67530417AFFE7FB8055C126DC5C6CE94A4B44F330B5D9,
        b=0x26DC5C6CE94A4B44F330B5D9BBD77CBF958416295CF7E1CE6BCCDC18FF8C07B6,
        n=0xA9FB57DBA1EEA9BC3E660A909D838D718C397AA3B561A6F7901E0E82974856A7,
        h=1,
        curve_factory=ec.BrainpoolP256R1,
    ),
    EcDomain(
        "secp384r1",
        p=int(
            "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFE"
            "FFFFFFFF0000000000000000FFFFFFFF",
            16,
        ),
        a=int(
            "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFE"
            "FFFFFFFF0000000000000000FFFFFFFC",
            16,
        ),
        b=int(
            "B3312FA7E23EE7E4988E056BE3F82D19181D9C6EFE8141120314088F5013875A"
            "C656398D8A2ED19D2A85C8EDD3EC2AEF",
            16,
        ),
        n=int(
            "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFC7634D81F4372DDF"
            "581A0DB248B0A77AECEC196ACCC52973",
            16,
        ),
        h=1,
        curve_factory=ec.SECP384R1,
    ),
    # The rest of the SmartCard-HSM's curves that `cryptography` implements (OpenSC
    # pkcs15-sc-hsm.c `curves[]`, the domain parameters OpenSC sends in GAKP).
    EcDomain(
        "secp192r1",
        p=0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEFFFFFFFFFFFFFFFF,
        a=0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEFFFFFFFFFFFFFFFC,
        b=0x64210519E59C80E70FA7E9AB72243049FEB8DEECC146B9B1,
        n=0xFFFFFFFFFFFFFFFFFFFFFFFF99DEF836146BC9B1B4D22831,
        h=1,
        curve_factory=ec.SECP192R1,
    ),
    EcDomain(
        "secp521r1",
        p=2**521 - 1,
        a=2**521 - 4,
        b=int(
            "0051953EB9618E1C9A1F929A21A0B68540EEA2DA725B99B315F3B8B489918EF1"
            "09E156193951EC7E937B1652C0BD3BB1BF073573DF883D2C34F1EF451FD46B503F00",
            16,
        ),
        n=int(
            "01FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF"
            "FA51868783BF2F966B7FCC0148F709A5D03BB5C9B8899C47AEBB6FB71E91386409",
            16,
        ),
        h=1,
        curve_factory=ec.SECP521R1,
    ),
    EcDomain(
        "brainpoolP384r1",
        p=int(
            "8CB91E82A3386D280F5D6F7E50E641DF152F7109ED5456B412B1DA197FB71123"
            "ACD3A729901D1A71874700133107EC53",
            16,
        ),
        a=int(
            "7BC382C63D8C150C3C72080ACE05AFA0C2BEA28E4FB22787139165EFBA91F90F"
            "8AA5814A503AD4EB04A8C7DD22CE2826",
            16,
        ),
        b=int(
            "04A8C7DD22CE28268B39B55416F0447C2FB77DE107DCD2A62E880EA53EEB62D5"
            "7CB4390295DBC9943AB78696FA504C11",
            16,
        ),
        n=int(
            "8CB91E82A3386D280F5D6F7E50E641DF152F7109ED5456B31F166E6CAC0425A7"
            "CF3AB6AF6B7FC3103B883202E9046565",
            16,
        ),
        h=1,
        curve_factory=ec.BrainpoolP384R1,
    ),
    EcDomain(
        "brainpoolP512r1",
        p=int(
            "AADD9DB8DBE9C48B3FD4E6AE33C9FC07CB308DB3B3C9D20ED6639CCA70330871"
            "7D4D9B009BC66842AECDA12AE6A380E62881FF2F2D82C68528AA6056583A48F3",
            16,
        ),
        a=int(
            "7830A3318B603B89E2327145AC234CC594CBDD8D3DF91610A83441CAEA9863BC"
            "2DED5D5AA8253AA10A2EF1C98B9AC8B57F1117A72BF2C7B9E7C1AC4D77FC94CA",
            16,
        ),
        b=int(
            "3DF91610A83441CAEA9863BC2DED5D5AA8253AA10A2EF1C98B9AC8B57F1117A7"
            "2BF2C7B9E7C1AC4D77FC94CADC083E67984050B75EBAE5DD2809BD638016F723",
            16,
        ),
        n=int(
            "AADD9DB8DBE9C48B3FD4E6AE33C9FC07CB308DB3B3C9D20ED6639CCA70330870"
            "553E5C414CA92619418661197FAC10471DB1D381085DDADDB58796829CA90069",
            16,
        ),
        h=1,
        curve_factory=ec.BrainpoolP512R1,
    ),
    # secp256k1: a SmartCard-HSM curve too (OpenSC lists it), and pico-hsm device keys use it.
    EcDomain(
        "secp256k1",
        p=0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEFFFFFC2F,
        a=0,
        b=7,
        n=0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141,
        h=1,
        curve_factory=ec.SECP256K1,
    ),
    # The rest of OpenSC's SmartCard-HSM curve table (pkcs15-sc-hsm.c `curves[]`; the twisted
    # brainpool curves since OpenSC 0.27), which `cryptography` does not implement. Values:
    # brainpool from RFC 5639 §3.2 (192), §3.3 (224), §3.4 (256), §3.5 (320), §3.6 (384), §3.7
    # (512); secp192k1 from SEC 2 version 2.0 §2.2.1. All have cofactor 1.
    _pure(
        "brainpoolP192r1",
        p=0xC302F41D932A36CDA7A3463093D18DB78FCE476DE1A86297,
        a=0x6A91174076B1E0E19C39C031FE8685C1CAE040E5C69A28EF,
        b=0x469A28EF7C28CCA3DC721D044F4496BCCA7EF4146FBF25C9,
        g=bytes.fromhex(
            "04C0A0647EAAB6A48753B033C56CB0F0900A2F5C4853375FD614B690866ABD5B"
            "B88B5F4828C1490002E6773FA2FA299B8F"
        ),
        n=0xC302F41D932A36CDA7A3462F9E9E916B5BE8F1029AC4ACC1,
    ),
    _pure(
        "brainpoolP224r1",
        p=0xD7C134AA264366862A18302575D1D787B09F075797DA89F57EC8C0FF,
        a=0x68A5E62CA9CE6C1C299803A6C1530B514E182AD8B0042A59CAD29F43,
        b=0x2580F63CCFE44138870713B1A92369E33E2135D266DBB372386C400B,
        g=bytes.fromhex(
            "040D9029AD2C7E5CF4340823B2A87DC68C9E4CE3174C1E6EFDEE12C07D58AA56"
            "F772C0726F24C6B89E4ECDAC24354B9E99CAA3F6D3761402CD"
        ),
        n=0xD7C134AA264366862A18302575D0FB98D116BC4B6DDEBCA3A5A7939F,
    ),
    _pure(
        "brainpoolP320r1",
        p=int(
            "D35E472036BC4FB7E13C785ED201E065F98FCFA6F6F40DEF4F92B9EC7893EC28"
            "FCD412B1F1B32E27",
            16,
        ),
        a=int(
            "3EE30B568FBAB0F883CCEBD46D3F3BB8A2A73513F5EB79DA66190EB085FFA9F4"
            "92F375A97D860EB4",
            16,
        ),
        b=int(
            "520883949DFDBC42D3AD198640688A6FE13F41349554B49ACC31DCCD88453981"
            "6F5EB4AC8FB1F1A6",
            16,
        ),
        g=bytes.fromhex(
            "0443BD7E9AFB53D8B85289BCC48EE5BFE6F20137D10A087EB6E7871E2A10A599"
            "C710AF8D0D39E2061114FDD05545EC1CC8AB4093247F77275E0743FFED117182"
            "EAA9C77877AAAC6AC7D35245D1692E8EE1"
        ),
        n=int(
            "D35E472036BC4FB7E13C785ED201E065F98FCFA5B68F12A32D482EC7EE8658E9"
            "8691555B44C59311",
            16,
        ),
    ),
    _pure(
        "secp192k1",
        p=0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEFFFFEE37,
        a=0,
        b=3,
        g=bytes.fromhex(
            "04DB4FF10EC057E9AE26B07D0280B7F4341DA5D1B1EAE06C7D9B2F2F6D9C5628"
            "A7844163D015BE86344082AA88D95E2F9D"
        ),
        n=0xFFFFFFFFFFFFFFFFFFFFFFFE26F2FC170F69466A74DEFD8D,
    ),
    _pure(
        "brainpoolP192t1",
        p=0xC302F41D932A36CDA7A3463093D18DB78FCE476DE1A86297,
        a=0xC302F41D932A36CDA7A3463093D18DB78FCE476DE1A86294,
        b=0x13D56FFAEC78681E68F9DEB43B35BEC2FB68542E27897B79,
        g=bytes.fromhex(
            "043AE9E58C82F63C30282E1FE7BBF43FA72C446AF6F4618129097E2C5667C222"
            "3A902AB5CA449D0084B7E5B3DE7CCC01C9"
        ),
        n=0xC302F41D932A36CDA7A3462F9E9E916B5BE8F1029AC4ACC1,
    ),
    _pure(
        "brainpoolP224t1",
        p=0xD7C134AA264366862A18302575D1D787B09F075797DA89F57EC8C0FF,
        a=0xD7C134AA264366862A18302575D1D787B09F075797DA89F57EC8C0FC,
        b=0x4B337D934104CD7BEF271BF60CED1ED20DA14C08B3BB64F18A60888D,
        g=bytes.fromhex(
            "046AB1E344CE25FF3896424E7FFE14762ECB49F8928AC0C76029B4D5800374E9"
            "F5143E568CD23F3F4D7C0D4B1E41C8CC0D1C6ABD5F1A46DB4C"
        ),
        n=0xD7C134AA264366862A18302575D0FB98D116BC4B6DDEBCA3A5A7939F,
    ),
    _pure(
        "brainpoolP256t1",
        p=0xA9FB57DBA1EEA9BC3E660A909D838D726E3BF623D52620282013481D1F6E5377,
        a=0xA9FB57DBA1EEA9BC3E660A909D838D726E3BF623D52620282013481D1F6E5374,
        b=0x662C61C430D84EA4FE66A7733D0B76B7BF93EBC4AF2F49256AE58101FEE92B04,
        g=bytes.fromhex(
            "04A3E8EB3CC1CFE7B7732213B23A656149AFA142C47AAFBC2B79A191562E1305"
            "F42D996C823439C56D7F7B22E14644417E69BCB6DE39D027001DABE8F35B25C9"
            "BE"
        ),
        n=0xA9FB57DBA1EEA9BC3E660A909D838D718C397AA3B561A6F7901E0E82974856A7,
    ),
    _pure(
        "brainpoolP320t1",
        p=int(
            "D35E472036BC4FB7E13C785ED201E065F98FCFA6F6F40DEF4F92B9EC7893EC28"
            "FCD412B1F1B32E27",
            16,
        ),
        a=int(
            "D35E472036BC4FB7E13C785ED201E065F98FCFA6F6F40DEF4F92B9EC7893EC28"
            "FCD412B1F1B32E24",
            16,
        ),
        b=int(
            "A7F561E038EB1ED560B3D147DB782013064C19F27ED27C6780AAF77FB8A547CE"
            "B5B4FEF422340353",
            16,
        ),
        g=bytes.fromhex(
            "04925BE9FB01AFC6FB4D3E7D4990010F813408AB106C4F09CB7EE07868CC136F"
            "FF3357F624A21BED5263BA3A7A27483EBF6671DBEF7ABB30EBEE084E58A0B077"
            "AD42A5A0989D1EE71B1B9BC0455FB0D2C3"
        ),
        n=int(
            "D35E472036BC4FB7E13C785ED201E065F98FCFA5B68F12A32D482EC7EE8658E9"
            "8691555B44C59311",
            16,
        ),
    ),
    _pure(
        "brainpoolP384t1",
        p=int(
            "8CB91E82A3386D280F5D6F7E50E641DF152F7109ED5456B412B1DA197FB71123"
            "ACD3A729901D1A71874700133107EC53",
            16,
        ),
        a=int(
            "8CB91E82A3386D280F5D6F7E50E641DF152F7109ED5456B412B1DA197FB71123"
            "ACD3A729901D1A71874700133107EC50",
            16,
        ),
        b=int(
            "7F519EADA7BDA81BD826DBA647910F8C4B9346ED8CCDC64E4B1ABD11756DCE1D"
            "2074AA263B88805CED70355A33B471EE",
            16,
        ),
        g=bytes.fromhex(
            "0418DE98B02DB9A306F2AFCD7235F72A819B80AB12EBD653172476FECD462AAB"
            "FFC4FF191B946A5F54D8D0AA2F418808CC25AB056962D30651A114AFD2755AD3"
            "36747F93475B7A1FCA3B88F2B6A208CCFE469408584DC2B2912675BF5B9E5829"
            "28"
        ),
        n=int(
            "8CB91E82A3386D280F5D6F7E50E641DF152F7109ED5456B31F166E6CAC0425A7"
            "CF3AB6AF6B7FC3103B883202E9046565",
            16,
        ),
    ),
    _pure(
        "brainpoolP512t1",
        p=int(
            "AADD9DB8DBE9C48B3FD4E6AE33C9FC07CB308DB3B3C9D20ED6639CCA70330871"
            "7D4D9B009BC66842AECDA12AE6A380E62881FF2F2D82C68528AA6056583A48F3",
            16,
        ),
        a=int(
            "AADD9DB8DBE9C48B3FD4E6AE33C9FC07CB308DB3B3C9D20ED6639CCA70330871"
            "7D4D9B009BC66842AECDA12AE6A380E62881FF2F2D82C68528AA6056583A48F0",
            16,
        ),
        b=int(
            "7CBBBCF9441CFAB76E1890E46884EAE321F70C0BCB4981527897504BEC3E36A6"
            "2BCDFA2304976540F6450085F2DAE145C22553B465763689180EA2571867423E",
            16,
        ),
        g=bytes.fromhex(
            "04640ECE5C12788717B9C1BA06CBC2A6FEBA85842458C56DDE9DB1758D39C031"
            "3D82BA51735CDB3EA499AA77A7D6943A64F7A3F25FE26F06B51BAA2696FA9035"
            "DA5B534BD595F5AF0FA2C892376C84ACE1BB4E3019B71634C01131159CAE03CE"
            "E9D9932184BEEF216BD71DF2DADF86A627306ECFF96DBB8BACE198B61E00F8B3"
            "32"
        ),
        n=int(
            "AADD9DB8DBE9C48B3FD4E6AE33C9FC07CB308DB3B3C9D20ED6639CCA70330870"
            "553E5C414CA92619418661197FAC10471DB1D381085DDADDB58796829CA90069",
            16,
        ),
    ),
)
CURVES: dict[str, EcDomain] = {c.name: c for c in _CURVES}


@runtime_checkable
class EcdsaSigner(Protocol):
    """An EC private key on a curve `cryptography` does not implement (see EcDomain.native)."""

    @property
    def domain(self) -> EcDomain: ...

    def sign_digest(self, digest: bytes) -> tuple[int, int]:
        """ECDSA (r, s) over an already computed hash."""
        ...


PrivateKey = Union[ec.EllipticCurvePrivateKey, rsa.RSAPrivateKey, EcdsaSigner]


@functools.cache
def _generator(name: str) -> bytes:
    curve = CURVES[name].curve()
    return ec.derive_private_key(1, curve).public_key().public_bytes(_X962, _UNCOMPRESSED)


def domain_of(curve: ec.EllipticCurve) -> EcDomain:
    try:
        return CURVES[curve.name]
    except KeyError:
        raise UnsupportedAlgorithmError(f"curve {curve.name} not supported") from None


def match_domain(p_: int, a: int, b: int, g: bytes, n: int, h: int | None) -> EcDomain:
    """The known curve with exactly these parameters (how a card recognises a GAKP curve)."""
    for domain in _CURVES:
        if domain.matches(p_, a, b, g, n, h):
            return domain
    raise UnsupportedAlgorithmError(f"unknown EC domain parameters ({p_.bit_length()}-bit p)")


# ---------------------------------------------------------------------------------------------
# Small codecs


def _uint(raw: bytes, what: str) -> int:
    if not raw:
        raise CvcError(f"{what} is empty")
    return int.from_bytes(raw, "big")


def _uint_bytes(value: int, size: int | None = None) -> bytes:
    length = size if size is not None else max(1, (value.bit_length() + 7) // 8)
    return value.to_bytes(length, "big")


def decode_reference(raw: bytes, what: str) -> str:
    """A CAR/CHR: 1..16 printable ASCII characters."""
    if not 1 <= len(raw) <= REFERENCE_MAX or any(not 0x20 <= c < 0x7F for c in raw):
        raise CvcError(f"{what} is not 1..{REFERENCE_MAX} printable ASCII characters: {raw!r}")
    return raw.decode("ascii")


def encode_reference(ref: str, what: str) -> bytes:
    try:
        raw = ref.encode("ascii")
    except UnicodeEncodeError:
        raise CvcError(f"{what} {ref!r} is not ASCII") from None
    decode_reference(raw, what)  # same rule both ways
    return raw


def decode_date(raw: bytes, what: str) -> dt.date:
    """TR-03110 date: six unpacked digits YYMMDD, one per byte, year 20YY."""
    if len(raw) != 6 or any(d > 9 for d in raw):
        raise CvcError(f"{what} is not 6 unpacked BCD digits: {raw.hex()}")
    year, month, day = (10 * raw[i] + raw[i + 1] for i in (0, 2, 4))
    try:
        return dt.date(2000 + year, month, day)
    except ValueError:
        raise CvcError(f"{what} is not a calendar date: {raw.hex()}") from None


def encode_date(day: dt.date) -> bytes:
    if not 2000 <= day.year <= 2099:
        raise CvcError(f"date {day} outside 2000..2099")
    digits = f"{day.year % 100:02d}{day.month:02d}{day.day:02d}"
    return bytes(int(c) for c in digits)


def _children(item: Tlv, what: str) -> dict[int, Tlv]:
    if not item.constructed:
        raise CvcError(f"{what} (tag {item.tag:X}) is not constructed")
    return tlv.require_unique(item.children(), what)


def _only(index: dict[int, Tlv], allowed: set[int], what: str) -> None:
    extra = sorted(set(index) - allowed)
    if extra:
        raise CvcError(f"unexpected tag(s) {', '.join(f'{t:X}' for t in extra)} in {what}")


T = TypeVar("T")


def _wrap_tlv(fn: Callable[[], T]) -> T:
    """Run a decoder, presenting TLV-layer errors as CvcError."""
    try:
        return fn()
    except TlvError as exc:
        raise CvcError(str(exc)) from exc


# ---------------------------------------------------------------------------------------------
# Public key 7F49


@dataclass(frozen=True)
class CvPublicKey:
    """Public key data object. EC keys may carry their domain or inherit it from the issuer."""

    oid: str
    domain: EcDomain | None = None
    point: bytes | None = None
    modulus: int | None = None
    exponent: int | None = None

    @property
    def algorithm(self) -> TaAlgorithm:
        return algorithm(self.oid)

    @property
    def is_ec(self) -> bool:
        return self.point is not None

    @classmethod
    def from_cryptography(
        cls, key: PublicKey, oid: str, include_domain: bool = True
    ) -> CvPublicKey:
        scheme = algorithm(oid).scheme
        if isinstance(key, ec.EllipticCurvePublicKey):
            if scheme != "ecdsa":
                raise CvcError(f"{oid} is not an ECDSA algorithm")
            domain = domain_of(key.curve)
            point = key.public_bytes(_X962, _UNCOMPRESSED)
            return cls(oid, domain if include_domain else None, point)
        if isinstance(key, rsa.RSAPublicKey):
            if scheme == "ecdsa":
                raise CvcError(f"{oid} is not an RSA algorithm")
            numbers = key.public_numbers()
            return cls(oid, modulus=numbers.n, exponent=numbers.e)
        raise UnsupportedAlgorithmError(f"unsupported key type {type(key).__name__}")

    def resolve_domain(self, inherited: EcDomain | None) -> EcDomain:
        domain = self.domain or inherited
        if domain is None:
            raise CvcError("EC public key without domain parameters and no issuer to inherit from")
        return domain

    def to_cryptography(self, inherited: EcDomain | None = None) -> PublicKey:
        """A `cryptography` key; EC keys without parameters take `inherited`'s curve."""
        if self.point is not None:
            domain = self.resolve_domain(inherited)
            if len(self.point) != 1 + 2 * domain.field_bytes or self.point[0] != 0x04:
                raise CvcError(f"public point is not an uncompressed {domain.name} point")
            curve = domain.curve()  # UnsupportedAlgorithmError on a curve cryptography lacks
            try:
                return ec.EllipticCurvePublicKey.from_encoded_point(curve, self.point)
            except ValueError:
                raise CvcError(f"public point is not on {domain.name}") from None
        if self.modulus is None or self.exponent is None:
            raise CvcError("public key has neither a point nor an RSA modulus and exponent")
        try:
            return rsa.RSAPublicNumbers(self.exponent, self.modulus).public_key()
        except (ValueError, UnsupportedAlgorithm) as exc:
            raise CvcError(f"unusable RSA public key: {exc}") from None

    def encode(self) -> bytes:
        """The 7F49 data object."""
        parts = [tlv.encode(p.TAG_OID, encode_oid(self.oid))]
        if self.point is not None:
            d = self.domain
            if d is not None:
                size = d.field_bytes
                parts += [
                    tlv.encode(0x81, _uint_bytes(d.p, size)),
                    tlv.encode(0x82, _uint_bytes(d.a, size)),
                    tlv.encode(0x83, _uint_bytes(d.b, size)),
                    tlv.encode(0x84, d.generator),
                    tlv.encode(0x85, _uint_bytes(d.n, d.order_bytes)),
                ]
            parts.append(tlv.encode(0x86, self.point))
            if d is not None:
                parts.append(tlv.encode(0x87, _uint_bytes(d.h)))
        else:
            if self.modulus is None or self.exponent is None:
                raise CvcError("RSA public key needs modulus and exponent")
            parts += [
                tlv.encode(0x81, _uint_bytes(self.modulus)),
                tlv.encode(0x82, _uint_bytes(self.exponent)),
            ]
        return tlv.encode_constructed(p.TAG_CV_PUBLIC_KEY, parts)

    @classmethod
    def decode(cls, item: Tlv) -> CvPublicKey:
        where = "public key 7F49"
        if item.tag != p.TAG_CV_PUBLIC_KEY:
            raise CvcError(f"expected tag 7F49, got {item.tag:X}")
        idx = _wrap_tlv(lambda: _children(item, where))
        oid_item = idx.get(p.TAG_OID)
        if oid_item is None:
            raise CvcError(f"OID missing in {where}")
        oid = decode_oid(oid_item.value)
        scheme = algorithm(oid).scheme
        if scheme == "ecdsa":
            _only(idx, {0x06, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87}, where)
            if 0x86 not in idx:
                raise CvcError(f"EC point 86 missing in {where}")
            return cls(oid, _decode_domain(idx, where), idx[0x86].value)
        _only(idx, {0x06, 0x81, 0x82}, where)
        if 0x81 not in idx or 0x82 not in idx:
            raise CvcError(f"RSA modulus 81 or exponent 82 missing in {where}")
        return cls(
            oid,
            modulus=_uint(idx[0x81].value, "modulus"),
            exponent=_uint(idx[0x82].value, "exponent"),
        )


def _decode_domain(idx: dict[int, Tlv], where: str) -> EcDomain | None:
    """EC domain from tags 81..85 (+ optional 87); None when none of them is present."""
    present = [t for t in (0x81, 0x82, 0x83, 0x84, 0x85) if t in idx]
    if not present:
        if 0x87 in idx:
            raise CvcError(f"cofactor 87 without domain parameters in {where}")
        return None
    if len(present) != 5:
        raise CvcError(f"incomplete EC domain parameters in {where}")
    h = _uint(idx[0x87].value, "cofactor") if 0x87 in idx else None
    return match_domain(
        _uint(idx[0x81].value, "p"),
        int.from_bytes(idx[0x82].value, "big"),  # a may be encoded as zeros (secp256k1)
        _uint(idx[0x83].value, "b"),
        idx[0x84].value,
        _uint(idx[0x85].value, "n"),
        h,
    )


# ---------------------------------------------------------------------------------------------
# CHAT, body, certificate, authenticated request


@dataclass(frozen=True)
class Chat:
    """Certificate holder authorization template 7F4C {06 OID, 53 template}."""

    oid: str
    template: bytes

    @property
    def role(self) -> int:
        """The role bits (top two bits of the first template byte): C0 CVCA, 80/40 DV, 00."""
        return self.template[0] & 0xC0

    def encode(self) -> bytes:
        return tlv.encode_constructed(
            p.TAG_CV_CHAT,
            [tlv.encode(p.TAG_OID, encode_oid(self.oid)), tlv.encode(0x53, self.template)],
        )

    @classmethod
    def decode(cls, item: Tlv) -> Chat:
        idx = _wrap_tlv(lambda: _children(item, "CHAT 7F4C"))
        _only(idx, {0x06, 0x53}, "CHAT 7F4C")
        if 0x06 not in idx or 0x53 not in idx or not idx[0x53].value:
            raise CvcError("CHAT needs an OID and a non-empty template")
        return cls(decode_oid(idx[0x06].value), idx[0x53].value)


_BODY_TAGS = {
    p.TAG_CV_CPI,
    p.TAG_CV_CAR,
    p.TAG_CV_PUBLIC_KEY,
    p.TAG_CV_CHR,
    p.TAG_CV_CHAT,
    p.TAG_CV_EFFECTIVE_DATE,
    p.TAG_CV_EXPIRATION_DATE,
    p.TAG_CV_EXTENSIONS,
}


@dataclass(frozen=True)
class CvBody:
    """Certificate body 7F4E (also the body of a request, which has no dates)."""

    car: str | None
    public_key: CvPublicKey
    chr: str
    chat: Chat | None = None
    effective: dt.date | None = None
    expiry: dt.date | None = None
    extensions: bytes | None = None  # raw value of 65, kept opaque
    cpi: int = 0

    def encode(self) -> bytes:
        parts = [tlv.encode(p.TAG_CV_CPI, bytes([self.cpi]))]
        if self.car is not None:
            parts.append(tlv.encode(p.TAG_CV_CAR, encode_reference(self.car, "CAR")))
        parts.append(self.public_key.encode())
        parts.append(tlv.encode(p.TAG_CV_CHR, encode_reference(self.chr, "CHR")))
        if self.chat is not None:
            parts.append(self.chat.encode())
        if (self.effective is None) != (self.expiry is None):
            raise CvcError("effective and expiry dates come together")
        if self.effective is not None and self.expiry is not None:
            parts.append(tlv.encode(p.TAG_CV_EFFECTIVE_DATE, encode_date(self.effective)))
            parts.append(tlv.encode(p.TAG_CV_EXPIRATION_DATE, encode_date(self.expiry)))
        if self.extensions is not None:
            parts.append(tlv.encode(p.TAG_CV_EXTENSIONS, self.extensions))
        return tlv.encode_constructed(p.TAG_CV_BODY, parts)

    @classmethod
    def decode(cls, item: Tlv) -> CvBody:
        if item.tag != p.TAG_CV_BODY:
            raise CvcError(f"expected body 7F4E, got {item.tag:X}")
        idx = _wrap_tlv(lambda: _children(item, "body 7F4E"))
        _only(idx, _BODY_TAGS, "body 7F4E")
        for tag in (p.TAG_CV_CPI, p.TAG_CV_PUBLIC_KEY, p.TAG_CV_CHR):
            if tag not in idx:
                raise CvcError(f"tag {tag:X} missing in body 7F4E")
        cpi = idx[p.TAG_CV_CPI].value
        if len(cpi) != 1:
            raise CvcError("CPI must be one byte")
        has_from, has_to = p.TAG_CV_EFFECTIVE_DATE in idx, p.TAG_CV_EXPIRATION_DATE in idx
        if has_from != has_to:
            raise CvcError("effective and expiry dates come together")
        return cls(
            car=decode_reference(idx[p.TAG_CV_CAR].value, "CAR") if p.TAG_CV_CAR in idx else None,
            public_key=CvPublicKey.decode(idx[p.TAG_CV_PUBLIC_KEY]),
            chr=decode_reference(idx[p.TAG_CV_CHR].value, "CHR"),
            chat=Chat.decode(idx[p.TAG_CV_CHAT]) if p.TAG_CV_CHAT in idx else None,
            effective=(
                decode_date(idx[p.TAG_CV_EFFECTIVE_DATE].value, "effective date")
                if has_from
                else None
            ),
            expiry=(
                decode_date(idx[p.TAG_CV_EXPIRATION_DATE].value, "expiry date") if has_to else None
            ),
            extensions=idx[p.TAG_CV_EXTENSIONS].value if p.TAG_CV_EXTENSIONS in idx else None,
            cpi=cpi[0],
        )


@dataclass(frozen=True)
class CVCertificate:
    """7F21 {7F4E body, 5F37 signature}: a certificate, or a (self-signed) request."""

    body: CvBody
    body_raw: bytes  # the exact 7F4E encoding: what the signature covers
    signature: bytes
    raw: bytes

    @property
    def chr(self) -> str:
        return self.body.chr

    @property
    def car(self) -> str | None:
        return self.body.car

    @property
    def public_key(self) -> CvPublicKey:
        return self.body.public_key

    @property
    def self_signed(self) -> bool:
        return self.body.car == self.body.chr

    def encode(self) -> bytes:
        return self.raw

    @classmethod
    def from_tlv(cls, item: Tlv) -> CVCertificate:
        if item.tag != p.TAG_CV_CERTIFICATE:
            raise CvcError(f"expected certificate 7F21, got {item.tag:X}")
        children = _wrap_tlv(lambda: item.children())
        if [c.tag for c in children] != [p.TAG_CV_BODY, p.TAG_CV_SIGNATURE]:
            raise CvcError("certificate 7F21 must hold exactly 7F4E then 5F37")
        body_item, sig_item = children
        return cls(CvBody.decode(body_item), body_item.raw, sig_item.value, item.raw)

    @classmethod
    def decode(cls, data: bytes) -> CVCertificate:
        """Exactly one 7F21 object, nothing after it."""
        return cls.from_tlv(_wrap_tlv(lambda: tlv.decode_exact(data)))


@dataclass(frozen=True)
class AuthenticatedRequest:
    """67 {7F21 inner request, 42 outer CAR, 5F37 outer signature over 7F21 || 42}."""

    inner: CVCertificate
    outer_car: str
    outer_signature: bytes
    signed_part: bytes
    raw: bytes

    @property
    def public_key(self) -> CvPublicKey:
        return self.inner.public_key

    @classmethod
    def from_tlv(cls, item: Tlv) -> AuthenticatedRequest:
        if item.tag != p.TAG_CV_AUTHENTICATED_REQUEST:
            raise CvcError(f"expected authenticated request 67, got {item.tag:X}")
        children = _wrap_tlv(lambda: item.children())
        if [c.tag for c in children] != [p.TAG_CV_CERTIFICATE, p.TAG_CV_CAR, p.TAG_CV_SIGNATURE]:
            raise CvcError("authenticated request 67 must hold 7F21, 42, 5F37 in that order")
        inner, car, sig = children
        return cls(
            CVCertificate.from_tlv(inner),
            decode_reference(car.value, "outer CAR"),
            sig.value,
            inner.raw + car.raw,
            item.raw,
        )


CvObject = Union[CVCertificate, AuthenticatedRequest]


def decode_cv_object(item: Tlv) -> CvObject:
    if item.tag == p.TAG_CV_CERTIFICATE:
        return CVCertificate.from_tlv(item)
    if item.tag == p.TAG_CV_AUTHENTICATED_REQUEST:
        return AuthenticatedRequest.from_tlv(item)
    raise CvcError(f"tag {item.tag:X} is neither a CV certificate (7F21) nor a request (67)")


def parse_cv_objects(data: bytes) -> list[CvObject]:
    """A concatenation of CV objects covering `data` exactly (EF.C_DevAut is two)."""
    items = _wrap_tlv(lambda: tlv.decode_all(data))
    if not items:
        raise CvcError("no CV object")
    return [decode_cv_object(item) for item in items]


def parse_request(data: bytes) -> CvObject:
    """What GAKP answers and CExx holds: one authenticated request 67 or one plain 7F21."""
    return decode_cv_object(_wrap_tlv(lambda: tlv.decode_exact(data)))


# ---------------------------------------------------------------------------------------------
# Signatures


def ecdsa_plain_to_der(signature: bytes, order_bytes: int) -> bytes:
    if len(signature) != 2 * order_bytes:
        raise SignatureInvalidError(
            f"plain ECDSA signature is {len(signature)} bytes, expected {2 * order_bytes}"
        )
    r = int.from_bytes(signature[:order_bytes], "big")
    s = int.from_bytes(signature[order_bytes:], "big")
    return utils.encode_dss_signature(r, s)


def ecdsa_der_to_plain(der: bytes, order_bytes: int) -> bytes:
    try:
        r, s = utils.decode_dss_signature(der)
    except ValueError:
        raise CvcError("not a DER ECDSA signature") from None
    if r.bit_length() > 8 * order_bytes or s.bit_length() > 8 * order_bytes:
        raise CvcError("ECDSA signature component longer than the curve order")
    return r.to_bytes(order_bytes, "big") + s.to_bytes(order_bytes, "big")


def _pss(hash_alg: hashes.HashAlgorithm) -> padding.PSS:
    # TR-03110 default PSS parameters: MGF1 with the same hash, salt as long as the hash.
    return padding.PSS(mgf=padding.MGF1(hash_alg), salt_length=hash_alg.digest_size)


def sign_cv(data: bytes, key: PrivateKey, oid: str, deterministic: bool = False) -> bytes:
    """Sign as a CVC signer: plain r||s for ECDSA, the raw RSA signature otherwise.

    `deterministic` (RFC 6979) exists for the reproducible test PKI only.
    """
    algo = algorithm(oid)
    if isinstance(key, ec.EllipticCurvePrivateKey):
        if algo.scheme != "ecdsa":
            raise CvcError(f"{algo.name} needs an RSA key")
        der = key.sign(data, ec.ECDSA(algo.new_hash(), deterministic_signing=deterministic))
        return ecdsa_der_to_plain(der, domain_of(key.curve).order_bytes)
    if isinstance(key, EcdsaSigner):
        if algo.scheme != "ecdsa":
            raise CvcError(f"{algo.name} needs an RSA key")
        digest = hashes.Hash(algo.new_hash())
        digest.update(data)
        r, s = key.sign_digest(digest.finalize())
        size = key.domain.order_bytes
        return r.to_bytes(size, "big") + s.to_bytes(size, "big")
    if isinstance(key, rsa.RSAPrivateKey):
        if algo.scheme == "ecdsa":
            raise CvcError(f"{algo.name} needs an EC key")
        pad = _pss(algo.new_hash()) if algo.scheme == "rsa-pss" else padding.PKCS1v15()
        return key.sign(data, pad, algo.new_hash())
    raise UnsupportedAlgorithmError(f"unsupported key type {type(key).__name__}")


def verify_cv(data: bytes, signature: bytes, key: PublicKey, oid: str) -> None:
    """Verify a CVC-format signature; SignatureInvalidError if it does not."""
    algo = algorithm(oid)
    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            if algo.scheme != "ecdsa":
                raise SignatureInvalidError(f"{algo.name} signature cannot come from an EC key")
            der = ecdsa_plain_to_der(signature, domain_of(key.curve).order_bytes)
            key.verify(der, data, ec.ECDSA(algo.new_hash()))
        elif isinstance(key, rsa.RSAPublicKey):
            if algo.scheme == "ecdsa":
                raise SignatureInvalidError(f"{algo.name} signature cannot come from an RSA key")
            pad = _pss(algo.new_hash()) if algo.scheme == "rsa-pss" else padding.PKCS1v15()
            key.verify(signature, data, pad, algo.new_hash())
        else:
            raise UnsupportedAlgorithmError(f"unsupported key type {type(key).__name__}")
    except InvalidSignature:
        raise SignatureInvalidError(f"{algo.name} signature does not verify") from None


def issue(
    body: CvBody, signer: PrivateKey, signer_oid: str, deterministic: bool = False
) -> CVCertificate:
    """Sign `body` (issuer's algorithm `signer_oid`) into a 7F21 certificate or request."""
    body_raw = body.encode()
    signature = sign_cv(body_raw, signer, signer_oid, deterministic)
    raw = tlv.encode_constructed(
        p.TAG_CV_CERTIFICATE, [body_raw, tlv.encode(p.TAG_CV_SIGNATURE, signature)]
    )
    return CVCertificate(body, body_raw, signature, raw)


def authenticate_request(
    inner: CVCertificate, outer_key: PrivateKey, outer_oid: str, outer_car: str
) -> AuthenticatedRequest:
    """Wrap a self-signed request into 67, signed by e.g. the device key (GAKP P2)."""
    car_tlv = tlv.encode(p.TAG_CV_CAR, encode_reference(outer_car, "outer CAR"))
    signed = inner.raw + car_tlv
    signature = sign_cv(signed, outer_key, outer_oid)
    raw = tlv.encode_constructed(
        p.TAG_CV_AUTHENTICATED_REQUEST, [signed, tlv.encode(p.TAG_CV_SIGNATURE, signature)]
    )
    return AuthenticatedRequest(inner, outer_car, signature, signed, raw)


def verify_certificate(
    cert: CVCertificate, issuer_key: CvPublicKey, inherited: EcDomain | None = None
) -> EcDomain | None:
    """Verify `cert`'s signature with the issuer's public key.

    `inherited` is the issuer's own resolved curve when its key carries only a point. Returns
    the curve `cert`'s own key resolves to (for the next link), or None for RSA keys.
    """
    issuer_domain = issuer_key.resolve_domain(inherited) if issuer_key.is_ec else None
    verify_cv(
        cert.body_raw, cert.signature, issuer_key.to_cryptography(issuer_domain), issuer_key.oid
    )
    return cert.public_key.resolve_domain(issuer_domain) if cert.public_key.is_ec else None


def verify_self_signed(obj: CvObject) -> None:
    """Check the inner self-signature of a request (or a root certificate)."""
    cert = obj.inner if isinstance(obj, AuthenticatedRequest) else obj
    verify_cv(cert.body_raw, cert.signature, cert.public_key.to_cryptography(), cert.public_key.oid)


def request_public_key(data: bytes) -> PublicKey:
    """The public key a GAKP reply carries (67 or 7F21), as OpenSC reads it."""
    return parse_request(data).public_key.to_cryptography()


# ---------------------------------------------------------------------------------------------
# Device identity (EF.C_DevAut)


def serial_from_chr(chr_: str) -> str:
    """The serial OpenSC shows: the CHR minus its 5-character sequence number."""
    if len(chr_) < CHR_MIN_FOR_SERIAL:
        raise CvcError(f"CHR {chr_!r} shorter than {CHR_MIN_FOR_SERIAL}: OpenSC refuses it")
    return chr_[:-SERIAL_SUFFIX]


@dataclass(frozen=True)
class DeviceChain:
    """A verified EF.C_DevAut: device CVC issued by the DICA, issued by the root."""

    device: CVCertificate
    dica: CVCertificate
    root_chr: str
    serial: str
    device_public_key: ec.EllipticCurvePublicKey
    curve: EcDomain

    @property
    def device_chr(self) -> str:
        return self.device.chr

    @property
    def dica_chr(self) -> str:
        return self.dica.chr

    @property
    def path(self) -> str:
        """PaaS-style path, e.g. /DESRCACC1/DEDINK04/DENK0404144 (holders, no sequence)."""
        return "/" + "/".join(
            c[:-SERIAL_SUFFIX] for c in (self.root_chr, self.dica_chr, self.device_chr)
        )


def verify_c_devaut(ef_2f02: bytes, root: CVCertificate) -> DeviceChain:
    """Verify EF.C_DevAut (device CVC || DICA CVC) up to the trusted `root`.

    Raises ChainError with the first reason it fails: undecodable, not exactly two
    certificates, broken CAR/CHR linkage, DICA without a CA role, a signature that does not
    verify, a device key that is not EC, or a CHR too short for a serial.
    """
    try:
        objects = parse_cv_objects(ef_2f02)
    except CvcError as exc:
        raise ChainError(f"EF.C_DevAut undecodable: {exc}") from exc
    if len(objects) != 2 or not all(isinstance(o, CVCertificate) for o in objects):
        shapes = ", ".join(type(o).__name__ for o in objects)
        raise ChainError(f"EF.C_DevAut must be two certificates (device, DICA); found {shapes}")
    device, dica = objects
    assert isinstance(device, CVCertificate) and isinstance(dica, CVCertificate)

    if dica.car != root.chr:
        raise ChainError(f"DICA {dica.chr} names issuer {dica.car}, not the root {root.chr}")
    if dica.body.chat is not None and dica.body.chat.role == ROLE_TERMINAL:
        raise ChainError(f"DICA {dica.chr} has a terminal role, not a CA role")
    if device.car != dica.chr:
        raise ChainError(f"device {device.chr} names issuer {device.car}, not the DICA {dica.chr}")
    try:
        root_domain = root.public_key.domain if root.public_key.is_ec else None
        dica_domain = verify_certificate(dica, root.public_key, root_domain)
    except CvcError as exc:
        raise ChainError(f"DICA {dica.chr} not signed by root {root.chr}: {exc}") from exc
    try:
        device_domain = verify_certificate(device, dica.public_key, dica_domain)
    except CvcError as exc:
        raise ChainError(f"device {device.chr} not signed by DICA {dica.chr}: {exc}") from exc
    if device_domain is None:
        raise ChainError(f"device {device.chr} key is not an EC key")
    key = device.public_key.to_cryptography(device_domain)
    assert isinstance(key, ec.EllipticCurvePublicKey)
    try:
        serial = serial_from_chr(device.chr)
    except CvcError as exc:
        raise ChainError(str(exc)) from exc
    return DeviceChain(device, dica, root.chr, serial, key, device_domain)


# ---------------------------------------------------------------------------------------------
# Shipped roots


def _load_data(name: str) -> CVCertificate:
    raw = resources.files("hsm_lifecycle").joinpath("data", name).read_bytes()
    return CVCertificate.decode(raw)


def load_test_root() -> CVCertificate:
    """The project's TEST root UTSRCACC100001 (its private key ships in emulator/data/).

    Not CardContact's test root of the same name: a different key, trusted by nobody.
    """
    return _load_data(f"{TEST_ROOT_CHR}.cvc")


def load_cardcontact_root() -> CVCertificate:
    """CardContact's Scheme Root CA DESRCACC100001, to verify genuine tokens."""
    return _load_data(f"{CARDCONTACT_ROOT_CHR}.cvc")


def load_roots() -> dict[str, CVCertificate]:
    """Every shipped root, by CHR. Roots are trusted by key; the name only finds the file."""
    return {c.chr: c for c in (load_test_root(), load_cardcontact_root())}
