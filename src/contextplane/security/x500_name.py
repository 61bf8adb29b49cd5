"""A certificate subject as Java's `X500Principal.getName()` (RFC 2253) writes it, read
from the certificate's DER: the name Kafka's principal builder maps with
`ssl.principal.mapping.rules`.

Java's rules (sun.security.x509.AVA.toRFC2253String): attributes with an RFC 2253
keyword (CN, C, L, ST, O, OU, STREET, DC, UID) whose value is a string type are written
`KEYWORD=value`, escaped; every other attribute, and a keyword attribute whose value is
not a string type, is written as its dotted OID (or keyword) and `#` + the hex of the
value's DER. Relative names are written last first, the values of a multi-valued one in
their encoded order, joined by `+`.
"""

from __future__ import annotations

_KEYWORDS = {
    "2.5.4.3": "CN",
    "2.5.4.6": "C",
    "2.5.4.7": "L",
    "2.5.4.8": "ST",
    "2.5.4.10": "O",
    "2.5.4.11": "OU",
    "2.5.4.9": "STREET",
    "0.9.2342.19200300.100.1.25": "DC",
    "0.9.2342.19200300.100.1.1": "UID",
}
# The string types Java renders as text, and how current JDKs decode each (Java 17 read
# all of them as UTF-8; later JDKs decode each by its type, as here).
_STRING_TAGS = {
    0x0C: "utf-8",  # UTF8String
    0x13: "latin-1",  # PrintableString
    0x14: "latin-1",  # T61String
    0x16: "latin-1",  # IA5String
    0x1B: "latin-1",  # GeneralString
    0x1E: "utf-16-be",  # BMPString
}
# Escaped with a backslash anywhere in a value; NUL is written `\00`, every other
# character as it is.
_ESCAPED = ',=+<>#;"\\'
_SEQUENCE, _SET, _OID = 0x30, 0x31, 0x06
_MAX_NAME_BYTES = 65536


class BadName(ValueError):
    """The DER is not a certificate or a distinguished name."""


def _read(data: bytes, offset: int, end: int) -> tuple[int, int, int, int]:
    """One DER element at offset: (tag, start of its value, end of its value, its end)."""
    if offset + 2 > end:
        raise BadName("truncated DER")
    tag = data[offset]
    length = data[offset + 1]
    start = offset + 2
    if length & 0x80:
        size = length & 0x7F
        if size == 0 or size > 4 or start + size > end:
            raise BadName("bad DER length")
        length = int.from_bytes(data[start : start + size], "big")
        start += size
    if start + length > end:
        raise BadName("DER element past its container")
    return tag, start, start + length, start + length


def _children(data: bytes, start: int, end: int) -> list[tuple[int, int, int, int]]:
    """The elements inside a constructed value: (tag, value start, value end, element start)."""
    out = []
    offset = start
    while offset < end:
        tag, value_start, value_end, after = _read(data, offset, end)
        out.append((tag, value_start, value_end, offset))
        offset = after
    return out


def certificate_subject_der(certificate: bytes) -> bytes:
    """The subject Name (DER) of an X.509 certificate (DER)."""
    tag, start, end, _ = _read(certificate, 0, len(certificate))
    if tag != _SEQUENCE:
        raise BadName("not a certificate")
    tbs_tag, tbs_start, tbs_end, _ = _read(certificate, start, end)
    if tbs_tag != _SEQUENCE:
        raise BadName("not a certificate")
    fields = _children(certificate, tbs_start, tbs_end)
    if fields and fields[0][0] == 0xA0:  # [0] version
        fields = fields[1:]
    # serialNumber, signature, issuer, validity, subject
    if len(fields) < 5 or fields[4][0] != _SEQUENCE:
        raise BadName("certificate without a subject")
    _tag, _start, value_end, element_start = fields[4]
    return certificate[element_start:value_end]


def _oid(data: bytes) -> str:
    if not data:
        raise BadName("empty OID")
    arcs: list[int] = []
    value = 0
    for byte in data:
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            arcs.append(value)
            value = 0
    if data[-1] & 0x80:
        raise BadName("truncated OID")
    first = arcs[0]
    head = [0, first] if first < 40 else [1, first - 40] if first < 80 else [2, first - 80]
    return ".".join(str(arc) for arc in head + arcs[1:])


def _escape(text: str) -> str:
    escaped = []
    for char in text:
        if char in _ESCAPED:
            escaped.append("\\" + char)
        elif char == "\x00":
            escaped.append("\\00")
        else:
            escaped.append(char)
    # Leading and trailing spaces and carriage returns are escaped too.
    lead = 0
    while lead < len(escaped) and escaped[lead] in (" ", "\r"):
        escaped[lead] = "\\" + escaped[lead]
        lead += 1
    trail = len(escaped) - 1
    while trail >= lead and escaped[trail] in (" ", "\r"):
        escaped[trail] = "\\" + escaped[trail]
        trail -= 1
    return "".join(escaped)


def _attribute(data: bytes, start: int, end: int) -> str:
    parts = _children(data, start, end)
    if len(parts) != 2 or parts[0][0] != _OID:
        raise BadName("bad attribute")
    oid = _oid(data[parts[0][1] : parts[0][2]])
    tag, value_start, value_end, element_start = parts[1]
    keyword = _KEYWORDS.get(oid)
    encoding = _STRING_TAGS.get(tag)
    if keyword is None or encoding is None:
        return f"{keyword or oid}=#{data[element_start:value_end].hex()}"
    raw = data[value_start:value_end]
    if tag == 0x1E and _has_surrogates(raw):
        raise BadName("BMPString with surrogates")  # Java refuses such a name
    text = raw.decode(encoding, errors="replace")
    return f"{keyword}={_escape(text)}"


def _has_surrogates(utf16: bytes) -> bool:
    return any(0xD8 <= utf16[index] <= 0xDF for index in range(0, len(utf16) - 1, 2))


def rfc2253_name(name: bytes) -> str:
    """The RFC 2253 string Java gives for a DER-encoded Name."""
    if len(name) > _MAX_NAME_BYTES:
        raise BadName("name too long")
    tag, start, end, _ = _read(name, 0, len(name))
    if tag != _SEQUENCE:
        raise BadName("not a name")
    rdns = []
    for rdn_tag, rdn_start, rdn_end, _ in _children(name, start, end):
        if rdn_tag != _SET:
            raise BadName("bad relative name")
        attributes = []
        for attr_tag, value_start, value_end, _ in _children(name, rdn_start, rdn_end):
            if attr_tag != _SEQUENCE:
                raise BadName("bad attribute")
            attributes.append(_attribute(name, value_start, value_end))
        rdns.append("+".join(attributes))
    return ",".join(reversed(rdns))


def certificate_subject(certificate: bytes) -> str:
    """The subject of a DER certificate as Kafka sees it (`X500Principal.getName()`)."""
    return rfc2253_name(certificate_subject_der(certificate))
