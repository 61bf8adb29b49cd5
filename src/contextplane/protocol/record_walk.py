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


class HeadTable:
    """The first bytes of one side (keys or values) of a batch's records: each distinct
    head once, and per record the index of its head in `distinct` (-1: null). Records of
    a batch mostly share one head (a schema id): it is compared in place, not copied, and
    while every record has the same one, no per-record list is kept (`codes()`)."""

    def __init__(self) -> None:
        self.distinct: list[bytes] = []
        self.index: dict[bytes, i64] = {}
        self.records: i64 = 0
        self.first: i64 = -1  # the code every record has while `spread` is empty
        self.spread: list[i64] = []  # per record, once two records differ

    def note(self, code: i64) -> None:
        if self.spread:
            self.spread.append(code)
        elif self.records == 0:
            self.first = code
        elif code != self.first:
            self.spread = [self.first] * self.records
            self.spread.append(code)
        self.records += 1

    def add(self, head: bytes) -> i64:
        """Note a record whose head is `head`; its index in `distinct`."""
        code: i64 = self.index.get(head, -1)
        if code < 0:
            code = len(self.distinct)
            self.distinct.append(head)
            self.index[head] = code
        self.note(code)
        return code

    def codes(self) -> list[i64]:
        """Per record, the index of its head (-1: null)."""
        return self.spread if self.spread else [self.first] * self.records


def heads(
    buf: bytes, position: i64, count: i64, head_bytes: i64, keys: HeadTable, values: HeadTable
) -> i64:
    """Add the first `head_bytes` of the key and of the value of up to `count` records
    of `buf` from `position` to `keys` and `values`: what schema id validation reads. The
    records were walked already. Stops before a record that does not end inside `buf`;
    returns the position after the last record read."""
    key_last: i64 = -1
    value_last: i64 = -1
    byte: i64 = 0
    length: i64 = 0
    size: i64 = 0
    head: i64 = 0
    end: i64 = len(buf)
    start: i64 = position
    for _ in range(count):
        start = position
        if end - position < 5:  # the length may not be whole: read by the caller
            return start
        byte = buf[position]
        if byte < 0x80:  # a record length: one or two bytes nearly always, read inline
            length = (byte >> 1) ^ -(byte & 1)
            position += 1
        elif buf[position + 1] < 0x80:
            length = (byte & 0x7F) | (buf[position + 1] << 7)
            length = (length >> 1) ^ -(length & 1)
            position += 2
        else:
            length, position = _varint(buf, position)
        record_end: i64 = position + length
        if record_end > end:
            return start
        position += 1  # attributes
        byte = buf[position]
        if byte < 0x80:  # timestamp delta
            position += 1
        else:
            _, position = _varlong(buf, position)
        byte = buf[position]
        if byte < 0x80:  # offset delta
            position += 1
        else:
            _, position = _varint(buf, position)
        byte = buf[position]
        if byte < 0x80:  # key size
            size = (byte >> 1) ^ -(byte & 1)
            position += 1
        else:
            size, position = _varint(buf, position)
        if size < 0:
            keys.note(-1)
        else:
            # Not min(): compiled, it boxes its arguments.
            head = size if size < head_bytes else head_bytes
            key_last = _add_head(keys, buf, position, head, key_last)
            position += size
        byte = buf[position]
        if byte < 0x80:  # value size
            size = (byte >> 1) ^ -(byte & 1)
            position += 1
        else:
            size, position = _varint(buf, position)
        if size < 0:
            values.note(-1)
        else:
            head = size if size < head_bytes else head_bytes
            value_last = _add_head(values, buf, position, head, value_last)
        position = record_end
    return position


def _add_head(table: HeadTable, buf: bytes, start: i64, length: i64, last: i64) -> i64:
    """Record the head at `start`; `last` is the previous record's head. Its index."""
    if last >= 0 and _same(buf, start, length, table.distinct[last]):
        table.note(last)
        return last
    return table.add(buf[start : start + length])


def _same(buf: bytes, start: i64, length: i64, head: bytes) -> bool:
    if len(head) != length:
        return False
    for i in range(length):
        # i64 locals: compiled, the bytes compare as C integers, not as int objects.
        ours: i64 = buf[start + i]
        theirs: i64 = head[i]
        if ours != theirs:
            return False
    return True


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


# What LogValidator's timestamp check comes to for the records of one batch, as
# record_validation decides it from the batch and the topic: no record fails it, every
# record fails it (the batch's one LogAppendTime timestamp), or each record is checked.
TIMESTAMPS_PASS: Final = 0
TIMESTAMPS_FAIL: Final = 1
TIMESTAMPS_CHECKED: Final = 2
# Why the error scan stopped at a record.
NO_ERROR: Final = 0
KEY_ERROR: Final = 1
TIMESTAMP_ERROR: Final = 2


class ErrorScan:
    """A search for the records LogValidator rejects one by one (KIP-467): the rules,
    where the search stands, and the fields of the record it stopped at."""

    def __init__(
        self,
        compacted: bool,
        timestamps: i64,
        base_timestamp: int,
        now_ms: int,
        before_max_ms: int,
        after_max_ms: int,
        valid_low: i64,
        valid_high: i64,
    ) -> None:
        self.compacted = compacted  # a record without a key fails
        self.stop_at_key_errors = compacted  # False once the caller has listed enough
        self.timestamps: i64 = timestamps
        # Kafka's exact (wrapping long) arithmetic, on ints: only for deltas outside
        # [valid_low, valid_high], the ones that surely pass.
        self.base_timestamp = base_timestamp
        self.now_ms = now_ms
        self.before_max_ms = before_max_ms
        self.after_max_ms = after_max_ms
        self.valid_low: i64 = valid_low
        self.valid_high: i64 = valid_high
        self.index: i64 = 0  # records read
        self.found: i64 = NO_ERROR  # the last record read fails (KEY_ERROR, ...)
        self.timestamp_delta: i64 = 0
        self.key_size: i64 = 0
        self.value_size: i64 = 0


def find_record_error(buf: bytes, position: i64, count: i64, scan: ErrorScan) -> i64:
    """Read the complete records of `buf` from `position` until one fails a record check
    (`scan.found`, its fields in `scan`) or `count` have been read in all; the position
    after the last record read.

    The batch's framing was checked by `walk` already: a record that does not end inside
    `buf` stops the scan before it, for the caller to read across chunks.
    """
    index: i64 = scan.index
    start: i64 = position
    length: i64 = 0
    record_end: i64 = 0
    delta: i64 = 0
    offset_delta: i64 = 0
    key_size: i64 = 0
    value_size: i64 = 0
    found: i64 = NO_ERROR
    try:
        while index < count:
            length, position = _varint(buf, start)
            record_end = position + length
            if length <= 0 or record_end > len(buf):
                break
            delta, position = _varlong(buf, position + 1)  # past the attributes
            offset_delta, position = _varint(buf, position)
            key_size, position = _varint(buf, position)
            if key_size > 0:
                position += key_size
            value_size, position = _varint(buf, position)
            index += 1
            start = record_end  # headers: framing was checked already
            found = classify(scan, key_size, delta)
            if found != NO_ERROR:
                break
    except (IndexError, _Invalid):
        found = NO_ERROR
    scan.index = index
    scan.found = found
    scan.timestamp_delta = delta
    scan.key_size = key_size
    scan.value_size = value_size
    return start


def classify(scan: ErrorScan, key_size: i64, timestamp_delta: i64) -> i64:
    """Whether a record fails a check the scan stops at (NO_ERROR if it passes)."""
    if scan.compacted and key_size < 0:
        return KEY_ERROR if scan.stop_at_key_errors else NO_ERROR
    if scan.timestamps == TIMESTAMPS_FAIL:
        return TIMESTAMP_ERROR
    surely_valid = scan.valid_low <= timestamp_delta <= scan.valid_high
    if scan.timestamps == TIMESTAMPS_CHECKED and not surely_valid:
        return TIMESTAMP_ERROR if _timestamp_out_of_range(scan, timestamp_delta) else NO_ERROR
    return NO_ERROR


def _timestamp_out_of_range(scan: ErrorScan, timestamp_delta: i64) -> bool:
    """LogValidator's CreateTime bounds check, in Java long arithmetic."""
    timestamp = _wrap64(scan.base_timestamp + timestamp_delta)
    if timestamp == -1:  # RecordBatch.NO_TIMESTAMP is not checked
        return False
    difference = _wrap64(scan.now_ms - timestamp)
    return difference > scan.before_max_ms or _wrap64(-difference) > scan.after_max_ms


def _wrap64(value: int) -> int:
    return (value + 2**63) % 2**64 - 2**63


def size_mismatch(declared: int, read: int) -> str:
    """Kafka's message for a record whose fields do not fill its declared length."""
    return (
        f"Invalid record size: expected to read {declared} bytes in record payload, "
        f"but instead read {read}"
    )
