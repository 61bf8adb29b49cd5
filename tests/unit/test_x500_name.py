"""Certificate subjects rendered as Java's X500Principal.getName() renders them: the
expected strings below are Java's own output (a small program printing
`new X500Principal(der).getName()` for the same DER, run on JDK 17 and JDK 25; they
agree except where noted)."""

from __future__ import annotations

import warnings

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.name import _ASN1Type
from cryptography.x509.oid import NameOID, ObjectIdentifier

from contextplane.security.x500_name import BadName, certificate_subject, rfc2253_name
from tests.support.tls import TestCa

A = x509.NameAttribute
R = x509.RelativeDistinguishedName


def _name(*rdns: x509.NameAttribute | x509.RelativeDistinguishedName) -> bytes:
    return x509.Name([r if isinstance(r, R) else R([r]) for r in rdns]).public_bytes()


def _empty_common_name() -> x509.NameAttribute:
    with warnings.catch_warnings():  # cryptography warns of the (valid DER) empty CN
        warnings.simplefilter("ignore", UserWarning)
        return A(NameOID.COMMON_NAME, "", _validate=False)


JAVA_NAMES = [
    (
        _name(
            A(NameOID.COUNTRY_NAME, "US"),
            A(NameOID.ORGANIZATION_NAME, "Sun, Inc"),
            A(NameOID.COMMON_NAME, "Duke"),
        ),
        r"CN=Duke,O=Sun\, Inc,C=US",
    ),
    (
        _name(
            A(NameOID.DOMAIN_COMPONENT, "com"),
            A(NameOID.COUNTRY_NAME, "DE"),
            A(NameOID.STATE_OR_PROVINCE_NAME, "Bayern"),
            A(NameOID.LOCALITY_NAME, "Munich"),
            A(NameOID.STREET_ADDRESS, "Main St 1"),
            A(NameOID.ORGANIZATION_NAME, "o"),
            A(NameOID.ORGANIZATIONAL_UNIT_NAME, "ou"),
            A(NameOID.USER_ID, "u7"),
            A(NameOID.COMMON_NAME, "c"),
        ),
        "CN=c,UID=u7,OU=ou,O=o,STREET=Main St 1,L=Munich,ST=Bayern,C=DE,DC=com",
    ),
    (_name(A(NameOID.PSEUDONYM, "CN=admin")), "2.5.4.65=#0c08434e3d61646d696e"),
    (
        _name(A(NameOID.PSEUDONYM, "x"), A(NameOID.COMMON_NAME, "bob")),
        "CN=bob,2.5.4.65=#0c0178",
    ),
    (
        _name(A(NameOID.TITLE, "x,CN=admin"), A(NameOID.COMMON_NAME, "bob")),
        "CN=bob,2.5.4.12=#0c0a782c434e3d61646d696e",
    ),
    (
        _name(A(NameOID.EMAIL_ADDRESS, "a@b.c"), A(NameOID.COMMON_NAME, " x#")),
        r"CN=\ x\#,1.2.840.113549.1.9.1=#16056140622e63",
    ),
    (_name(A(NameOID.SERIAL_NUMBER, "1234")), "2.5.4.5=#130431323334"),
    (
        _name(A(NameOID.GIVEN_NAME, "Ann"), A(NameOID.SURNAME, "Lee")),
        "2.5.4.4=#0c034c6565,2.5.4.42=#0c03416e6e",
    ),
    (
        _name(A(ObjectIdentifier("1.3.6.1.4.1.99999.1"), "v"), A(NameOID.COMMON_NAME, "z")),
        "CN=z,1.3.6.1.4.1.99999.1=#0c0176",
    ),
    (
        _name(A(NameOID.COMMON_NAME, 'a,b+c"d\\e<f>g;h=i#j')),
        r"CN=a\,b\+c\"d\\e\<f\>g\;h\=i\#j",
    ),
    (_name(A(NameOID.COMMON_NAME, "#admin")), r"CN=\#admin"),
    (_name(A(NameOID.COMMON_NAME, "  two  ")), "CN=\\ \\ two\\ \\ "),
    (_name(A(NameOID.COMMON_NAME, "\radmin\r")), "CN=\\\radmin\\\r"),
    (_name(A(NameOID.COMMON_NAME, "ad\x00min\n")), "CN=ad\\00min\n"),
    (_name(A(NameOID.COMMON_NAME, "a\tb")), "CN=a\tb"),
    (_name(A(NameOID.COMMON_NAME, "ａｄｍｉｎ é 😀")), "CN=ａｄｍｉｎ é 😀"),
    (
        _name(A(NameOID.COMMON_NAME, "a'()-./:?b !*&%$@[]^_`{|}~")),
        "CN=a'()-./:?b !*&%$@[]^_`{|}~",
    ),
    (_name(_empty_common_name()), "CN="),
    (x509.Name([]).public_bytes(), ""),
    (
        _name(R([A(NameOID.COMMON_NAME, "alice"), A(NameOID.ORGANIZATION_NAME, "x")])),
        "O=x+CN=alice",  # DER order of the SET
    ),
    (
        _name(R([A(NameOID.COMMON_NAME, "a"), A(NameOID.PSEUDONYM, "p")])),
        "CN=a+2.5.4.65=#0c0170",
    ),
    (_name(A(NameOID.COMMON_NAME, "abc", _type=_ASN1Type.PrintableString)), "CN=abc"),
    (_name(A(NameOID.COMMON_NAME, "a@b", _type=_ASN1Type.IA5String)), "CN=a@b"),
    (_name(A(NameOID.COMMON_NAME, "t61", _type=_ASN1Type.T61String)), "CN=t61"),
    # JDK 17 decodes a BMPString's bytes as UTF-8 (CN=\00b\00m\00p\00\ufffd); JDK 25:
    (_name(A(NameOID.COMMON_NAME, "bmpé", _type=_ASN1Type.BMPString)), "CN=bmpé"),
    (
        _name(A(NameOID.COMMON_NAME, "uni", _type=_ASN1Type.UniversalString)),
        "CN=#1c0c000000750000006e00000069",
    ),
    (_name(A(NameOID.COMMON_NAME, "vis", _type=_ASN1Type.VisibleString)), "CN=#1a03766973"),
    (
        _name(A(NameOID.PSEUDONYM, "p" * 200)),
        "2.5.4.65=#0c81c8" + "70" * 200,
    ),
]


@pytest.mark.parametrize(("der", "expected"), JAVA_NAMES)
def test_names_render_as_javas_x500_principal(der: bytes, expected: str) -> None:
    assert rfc2253_name(der) == expected


def _one_cn(tag: int, raw: bytes) -> bytes:
    def tlv(tag: int, body: bytes) -> bytes:
        return bytes([tag, len(body)]) + body

    attribute = tlv(0x30, bytes.fromhex("0603550403") + tlv(tag, raw))
    return tlv(0x30, tlv(0x31, attribute))


@pytest.mark.parametrize(
    ("tag", "raw", "expected"),
    [
        # JDK 25 (JDK 17 read all of these as UTF-8, giving \ufffd for the high bytes).
        (0x14, b"caf\xe9", "CN=café"),  # T61String
        (0x16, b"x\xe9", "CN=xé"),  # IA5String
        (0x1B, b"g\xe9", "CN=gé"),  # GeneralString
        (0x0C, b"a\xffb", "CN=a\ufffdb"),  # invalid UTF-8
        (0x04, b"oct", "CN=#04036f6374"),  # not a string type
    ],
)
def test_string_types_decode_as_java_does(tag: int, raw: bytes, expected: str) -> None:
    assert rfc2253_name(_one_cn(tag, raw)) == expected


def test_a_name_java_refuses_is_refused() -> None:
    with pytest.raises(BadName):  # Java: "improperly specified input name"
        rfc2253_name(_one_cn(0x1E, "😀".encode("utf-16-be")))
    for broken in (b"", b"\x30", b"\x30\x05\x31\x03", b"\x31\x00", b"\x30\x84\xff\xff\xff\xff"):
        with pytest.raises(BadName):
            rfc2253_name(broken)


def test_the_subject_is_read_from_the_certificate() -> None:
    ca = TestCa()
    subject = x509.Name([A(NameOID.PSEUDONYM, "CN=admin"), A(NameOID.COMMON_NAME, "eve")])
    issued = ca.issue("ignored", subject=subject)
    der = x509.load_pem_x509_certificate(issued.cert_pem).public_bytes(serialization.Encoding.DER)
    assert certificate_subject(der) == "CN=eve,2.5.4.65=#0c08434e3d61646d696e"
