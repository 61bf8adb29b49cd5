"""The hot loop of record validation: walk the complete v2 records of one buffer.

Every produced batch's records are walked here (`record_validation.py` does the rest).
This module is compiled by mypyc when the package is built (`setup.py`) and runs
interpreted otherwise; `compiled.py` picks the compiled copy only if it was built from
exactly this source. Written for mypyc (each choice measured, `bench/record_walk.py`):

* `i64` locals and fields are plain C integers: an `int` holding INT64_MAX is a boxed
  object compared on every record (3x slower compiled);
* the one- and two-byte varints that nearly every field is are decoded inline;
* a read past the buffer is the IndexError indexing raises, caught once, so no read is
  checked twice; a framing error found in the loop is kept and breaks out of it (a
  `raise` inside the loop makes the compiled loop about 25% slower).

The module imports nothing from the project, so its compiled copy stands alone.
"""

from typing import Final

from mypy_extensions import i64

INT64_MAX: Final[i64] = 2**63 - 1
INT64_MIN: Final[i64] = -(2**63)

STRUCTURE: Final = "Found invalid record structure"


class WalkState:
    """Where a walk stands: records read, what the record checks need of them, and the
    framing error that stopped it ("" if none)."""

    def __init__(self, index: i64 = 0) -> None:
        self.index: i64 = index
        self.ts_low: i64 = INT64_MAX  # smallest and largest timestamp delta seen
        self.ts_high: i64 = INT64_MIN
        self.keyless: i64 = 0  # records with a null key
        self.error: str = ""


class _Invalid(Exception):
    """Record framing is invalid: the walk stops with this message."""


def walk(buf: bytes, position: i64, count: i64, state: WalkState) -> i64:
    """Read every complete record of `buf` from `position` until `count` have been read
    in all (`state.index` already were).

    Returns the position after the last complete record: the walk stops early at a
    record that does not end inside `buf` (the caller knows whether more bytes follow),
    or at a framing error, which is left in `state.error` (Kafka's DefaultRecord
    messages).
    """
    index: i64 = state.index
    ts_low: i64 = state.ts_low
    ts_high: i64 = state.ts_high
    keyless: i64 = state.keyless
    end: i64 = len(buf)
    start: i64 = position
    record_end: i64 = -1
    # Initialised: a native int local that may be unset costs a check at every use.
    byte: i64 = 0
    length: i64 = 0
    delta: i64 = 0
    offset_delta: i64 = 0
    size: i64 = 0
    error = ""
    try:
        while index < count:
            start = position
            record_end = -1  # an IndexError before the length is known: incomplete
            byte = buf[position]
            if byte < 0x80:
                length = (byte >> 1) ^ -(byte & 1)
                position += 1
            elif buf[position + 1] < 0x80:
                length = (byte & 0x7F) | (buf[position + 1] << 7)
                length = (length >> 1) ^ -(length & 1)
                position += 2
            else:
                length, position = _varint(buf, position)
            record_end = position + length
            if record_end > end:
                break
            if length <= 0:
                error = f"Invalid record size {length}"
                break
            position += 1  # attributes (unused in v2)
            byte = buf[position]
            if byte < 0x80:
                delta = (byte >> 1) ^ -(byte & 1)
                position += 1
            elif buf[position + 1] < 0x80:
                delta = (byte & 0x7F) | (buf[position + 1] << 7)
                delta = (delta >> 1) ^ -(delta & 1)
                position += 2
            else:
                delta, position = _varlong(buf, position)
            if delta < ts_low:
                ts_low = delta
            if delta > ts_high:
                ts_high = delta
            byte = buf[position]
            if byte < 0x80:
                offset_delta = (byte >> 1) ^ -(byte & 1)
                position += 1
            elif buf[position + 1] < 0x80:
                offset_delta = (byte & 0x7F) | (buf[position + 1] << 7)
                offset_delta = (offset_delta >> 1) ^ -(offset_delta & 1)
                position += 2
            else:
                offset_delta, position = _varint(buf, position)
            if offset_delta != index:
                error = f"Record {index} has offset delta {offset_delta}; expected {index}"
                break
            byte = buf[position]  # key length
            if byte < 0x80:
                size = (byte >> 1) ^ -(byte & 1)
                position += 1
            elif buf[position + 1] < 0x80:
                size = (byte & 0x7F) | (buf[position + 1] << 7)
                size = (size >> 1) ^ -(size & 1)
                position += 2
            else:
                size, position = _varint(buf, position)
            if size > 0:
                position += size
            elif size < 0:
                keyless += 1
            byte = buf[position]  # value length
            if byte < 0x80:
                size = (byte >> 1) ^ -(byte & 1)
                position += 1
            elif buf[position + 1] < 0x80:
                size = (byte & 0x7F) | (buf[position + 1] << 7)
                size = (size >> 1) ^ -(size & 1)
                position += 2
            else:
                size, position = _varint(buf, position)
            if size > 0:
                position += size
            if buf[position] == 0:  # no headers, as nearly every record
                position += 1
            else:
                position = _skip_headers(buf, position, record_end)
            if position != record_end:
                error = size_mismatch(length, position - record_end + length)
                break
            index += 1
            start = position
    except IndexError:
        if record_end >= 0:  # a complete record whose fields run past its end
            error = STRUCTURE
    except _Invalid as exc:
        error = str(exc)
    state.error = error
    state.index = index
    state.ts_low = ts_low
    state.ts_high = ts_high
    state.keyless = keyless
    return start


def _varint(buf: bytes, position: i64) -> tuple[i64, i64]:
    """A zigzag int32 of up to five bytes, as Kafka's ByteUtils.readVarint reads it:
    (value, position after it)."""
    value: i64 = 0
    shift: i64 = 0
    while shift < 35:
        byte: i64 = buf[position]
        position += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            value &= 0xFFFFFFFF
            return (value >> 1) ^ -(value & 1), position
        shift += 7
    raise _Invalid("Varint is too long")


def _varlong(buf: bytes, position: i64) -> tuple[i64, i64]:
    """A zigzag int64 of up to ten bytes (ByteUtils.readVarlong). Rare (a timestamp
    delta of more than 8 s), so read as an unbounded int: 70 bits do not fit an i64."""
    value = 0
    shift = 0
    while shift < 70:
        byte = buf[position]
        position += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            value &= 0xFFFFFFFFFFFFFFFF
            return (value >> 1) ^ -(value & 1), position
        shift += 7
    raise _Invalid("Varlong is too long")


def _skip_headers(buf: bytes, position: i64, record_end: i64) -> i64:
    """Past a record's header count and headers; the position after them."""
    headers: i64 = 0
    size: i64 = 0
    headers, position = _varint(buf, position)
    if headers < 0:
        raise _Invalid(f"Found invalid number of record headers {headers}")
    if headers != 0 and headers > record_end - position:  # 0 may take two bytes
        raise _Invalid(f"Found invalid number of record headers. {headers} is too large")
    for _ in range(headers):
        size, position = _varint(buf, position)
        if size < 0:
            raise _Invalid(f"Invalid negative header key size {size}")
        position += size
        size, position = _varint(buf, position)
        if size > 0:
            position += size
    return position


def skip_header_run(buf: bytes, position: i64, limit: i64, headers: i64) -> tuple[i64, i64]:
    """Past as many of a record's next `headers` headers as lie whole before `limit`
    (at most `len(buf)`): (position after them, headers left).

    Stops before a header that runs past `limit`, or whose key size is negative or whose
    varint is too long: the caller reads that one header itself (across chunks, or to
    report it), so a record read in parts costs a compiled loop per chunk, not an
    interpreted step per header.
    """
    if limit > len(buf):
        limit = len(buf)
    start: i64 = position
    size: i64 = 0
    try:
        while headers > 0:
            size, position = _varint(buf, position)
            if size < 0:
                break
            position += size
            size, position = _varint(buf, position)
            if size > 0:
                position += size
            if position > limit:
                break
            headers -= 1
            start = position
    except (IndexError, _Invalid):
        pass
    return start, headers


def size_mismatch(declared: int, read: int) -> str:
    """Kafka's message for a record whose fields do not fill its declared length."""
    return (
        f"Invalid record size: expected to read {declared} bytes in record payload, "
        f"but instead read {read}"
    )
