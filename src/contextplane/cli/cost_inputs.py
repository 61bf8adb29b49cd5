"""What `contextplane cost` reads: a price file (`deploy/prices/*.toml`), the workload
(flags, or a TOML file with the flags' names), and the object store's requests per GiB
(the broker's own /metrics, bench/RESULTS.md, or flags). Everything is bounded and
checked here; a problem is an `InputError` naming the file, flag or URL and what is wrong.
"""

from __future__ import annotations

import datetime
import math
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from contextplane.cli.cost_model import CrossZone, Prices, RequestRate, Workload
from contextplane.clock import SystemClock

# The repository's folders, found from this file (an editable install or a checkout).
REPOSITORY = Path(__file__).resolve().parents[3]
PRICES_DIR = REPOSITORY / "deploy" / "prices"
BENCH_RESULTS = REPOSITORY / "bench" / "RESULTS.md"

FILE_BYTES_MAX = 1 << 20  # price, workload and results files are a few KiB
METRICS_BYTES_MAX = 64 << 20  # a scrape of 100,000 partitions is ~30 MB
METRICS_TIMEOUT_S = 10.0  # the whole scrape, connection to last byte
METRICS_CHUNK_BYTES = 1 << 20
PRICE_MAX = 1_000_000.0
RATE_MAX = 10_000_000.0  # requests per GiB: one per 100 bytes
GIB = 1 << 30


class InputError(Exception):
    """An input that cannot be used (exit status 2), or a broker that did not answer or
    had nothing to measure (`from_broker`: exit status 1, as the other commands)."""

    def __init__(self, message: str, from_broker: bool = False) -> None:
        super().__init__(message)
        self.status = 1 if from_broker else 2


@dataclass(frozen=True, slots=True)
class Field:
    kind: type  # int or float
    low: float
    high: float
    default: float | None  # None: required


# The workload's names, as flags (`--write-mibps`) and as keys of a workload file.
WORKLOAD_FIELDS: dict[str, Field] = {
    "write-mibps": Field(float, 0.001, 100_000, None),
    "read-fanout": Field(float, 0, 1_000, 1),
    "retention-days": Field(float, 0.01, 3_650, 7),
    "partitions": Field(int, 1, 1_000_000, 100),
    "zones": Field(int, 1, 6, 3),
    "brokers": Field(int, 1, 10_000, 3),
    "kafka-brokers": Field(int, 3, 10_000, 3),  # replication factor 3 needs three
}
ZONE_LOCAL = "zone-local-clients"


def workload(given: dict[str, Any], file: Path | None) -> Workload:
    """The workload from `given` (the flags; None where not given) over `file`'s keys."""
    values: dict[str, Any] = _workload_file(file) if file is not None else {}
    flagged = {name: value for name, value in given.items() if value is not None}
    values.update(flagged)

    def source(name: str) -> str:  # how the error names a value: its flag, or its file
        return f"--{name}" if name in flagged or file is None else f"{file}: {name}"

    checked: dict[str, Any] = {}
    for name, spec in WORKLOAD_FIELDS.items():
        value = values.get(name, spec.default)
        if value is None:
            raise InputError(f"--{name} is required (or `{name} = ...` in --workload)")
        checked[name] = _bounded(source(name), value, spec)
    # Today's path by default: the zone-aware one (RFC 0004 §7) is designed, not built.
    zone_local = values.get(ZONE_LOCAL, False)
    if not isinstance(zone_local, bool):
        raise InputError(f"{source(ZONE_LOCAL)}: true or false, got {zone_local!r}")
    return Workload(
        write_mibps=checked["write-mibps"],
        read_fanout=checked["read-fanout"],
        retention_days=checked["retention-days"],
        partitions=checked["partitions"],
        zones=checked["zones"],
        brokers=checked["brokers"],
        kafka_brokers=checked["kafka-brokers"],
        zone_local_clients=zone_local,
    )


def _workload_file(path: Path) -> dict[str, Any]:
    document = _toml(path)
    known = {*WORKLOAD_FIELDS, ZONE_LOCAL}
    values = {str(key).replace("_", "-"): value for key, value in document.items()}
    unknown = sorted(set(values) - known)
    if unknown:
        raise InputError(f"{path}: unknown key {unknown[0]!r} (known: {', '.join(sorted(known))})")
    return values


def _bounded(name: str, value: Any, spec: Field) -> float | int:
    ok_type = (int,) if spec.kind is int else (int, float)
    if isinstance(value, bool) or not isinstance(value, ok_type) or not math.isfinite(value):
        kind = "a whole number" if spec.kind is int else "a number"
        raise InputError(f"{name}: {kind} is needed, got {value!r}")
    if not spec.low <= value <= spec.high:
        raise InputError(f"{name} {value:g}: from {_figure(spec.low)} to {_figure(spec.high)}")
    return spec.kind(value)  # type: ignore[no-any-return]


def _figure(value: float) -> str:
    return f"{value:,.0f}" if value == int(value) else f"{value:g}"


def _toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as file:
            data = file.read(FILE_BYTES_MAX + 1)
    except OSError as exc:
        raise InputError(f"{path}: {exc.strerror or exc}") from None
    if len(data) > FILE_BYTES_MAX:
        raise InputError(f"{path}: larger than {FILE_BYTES_MAX} bytes")
    try:
        return tomllib.loads(data.decode())
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise InputError(f"{path}: not a TOML file ({exc})") from None
    except RecursionError:  # tomllib recurses into each nested array or inline table
        raise InputError(f"{path}: not a TOML file (nested too deeply)") from None


def price_file(name_or_path: str) -> Path:
    """A path as given, or the newest `NAME-YYYY-MM-DD.toml` in deploy/prices/."""
    if name_or_path.endswith(".toml") or "/" in name_or_path:
        return Path(name_or_path)
    if not PRICES_DIR.is_dir():
        raise InputError(
            f"--prices {name_or_path}: no deploy/prices/ beside this installation (a checkout"
            " of the repository has it); give --prices FILE.toml"
        )
    dated = re.compile(re.escape(name_or_path) + r"-(\d{4}-\d{2}-\d{2})\.toml")
    found = sorted(
        (match.group(1), path)
        for path in PRICES_DIR.glob("*.toml")
        if (match := dated.fullmatch(path.name))
    )
    if not found:
        names = sorted({p.name.rsplit("-", 3)[0] for p in PRICES_DIR.glob("*-*-*-*.toml")})
        known = f" (known: {', '.join(names)})" if names else ""
        raise InputError(f"--prices {name_or_path}: no such price table{known}; give a FILE.toml")
    return found[-1][1]


def prices(path: Path) -> Prices:
    document = _toml(path)

    def field(section: str | None, key: str) -> tuple[Any, str]:
        table = document if section is None else _section(path, document, section)
        where = f"{path}: {key}" if section is None else f"{path}: [{section}] {key}"
        if key not in table:
            raise InputError(f"{where}: missing")
        return table[key], where

    def text(section: str | None, key: str) -> str:
        value, where = field(section, key)
        if not isinstance(value, str) or not value:
            raise InputError(f"{where}: a non-empty string is needed, got {value!r}")
        return value

    def number(section: str, key: str) -> float:
        value, where = field(section, key)
        return float(_bounded(where, value, Field(float, 0, PRICE_MAX, None)))

    as_of, where = field(None, "as_of")
    if not isinstance(as_of, datetime.date) or isinstance(as_of, datetime.datetime):
        raise InputError(f"{where}: a date (as_of = 2026-12-01) is needed, got {as_of!r}")
    return Prices(
        provider=text(None, "provider"),
        region=text(None, "region"),
        currency=text(None, "currency"),
        as_of=as_of,
        object_storage_name=text("object_storage", "name"),
        object_storage_per_gb_month=number("object_storage", "per_gb_month"),
        put_per_1000=number("object_storage", "put_per_1000"),
        get_per_1000=number("object_storage", "get_per_1000"),
        cross_zone_per_gb=number("cross_zone_transfer", "per_gb"),
        instance_name=text("compute", "name"),
        instance_per_hour=number("compute", "per_hour"),
        block_storage_name=text("block_storage", "name"),
        block_storage_per_gb_month=number("block_storage", "per_gb_month"),
    )


def _section(path: Path, document: dict[str, Any], name: str) -> dict[str, Any]:
    table = document.get(name)
    if not isinstance(table, dict):
        raise InputError(f"{path}: [{name}]: missing")
    return table


def flag_rate(flag: str, value: float) -> RequestRate:
    rate = _bounded(flag, value, Field(float, 0, RATE_MAX, None))
    return RequestRate(float(rate), flag)


# The series of the broker's /metrics that the rates are derived from (console/metrics.py).
Series = tuple[str, dict[str, str]]
PUTS: Series = ("contextplane_object_store_requests_total", {"operation": "put"})
GETS: Series = ("contextplane_object_store_requests_total", {"operation": "get"})
BYTES_IN: Series = ("kafka_server_brokertopicmetrics_bytesin_total", {})
BYTES_OUT: Series = ("kafka_server_brokertopicmetrics_bytesout_total", {})
ZONE_BYTES = "contextplane_zone_record_bytes_total"  # console/zone_metrics.py
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def metrics_rates(
    url: str, rates_needed: bool = True
) -> tuple[RequestRate | None, RequestRate | None, CrossZone | None]:
    """PUTs per GiB produced and GETs per GiB read since the broker started, from its
    counters (None for a rate whose bytes are zero: nothing to divide by; both None
    unless `rates_needed`), and the shares of record bytes that crossed zones (None when
    it saw no client of a known zone)."""
    samples = scrape(url)
    where = f"the broker's /metrics at {url}"
    if not rates_needed:  # both given as flags: only the zone counters are read
        return None, None, cross_zone(samples, where)

    def value(series: Series) -> float:
        found = samples.get((series[0], tuple(sorted(series[1].items()))))
        if found is None:
            labels = ",".join(f'{k}="{v}"' for k, v in series[1].items())
            raise InputError(
                f"{url}: no {series[0]}{{{labels}}} (the broker counts object store requests"
                " only for a file:// or s3:// store)",
                from_broker=True,
            )
        return found

    counts = (value(PUTS), value(GETS), value(BYTES_IN), value(BYTES_OUT))
    return (*counter_rates(url, where, *counts), cross_zone(samples, where))


def cross_zone(samples: Samples, where: str) -> CrossZone | None:
    """The shares of produced (`in`) and read (`out`) record bytes of clients in a known
    zone that crossed zones; bytes of clients in no known zone are left out of both
    sides (said in `source`). None when no direction has bytes of a known zone."""
    bytes_by: dict[tuple[str, str], float] = {}
    for (name, labels), count in samples.items():
        label = dict(labels)
        if name != ZONE_BYTES or not math.isfinite(count) or count < 0:
            continue
        key = (label.get("direction", ""), label.get("zone_relation", ""))
        bytes_by[key] = bytes_by.get(key, 0.0) + count
    return zone_shares(bytes_by, where)


def zone_shares(bytes_by: dict[tuple[str, str], float], where: str) -> CrossZone | None:
    """`cross_zone` from record bytes by (direction, zone relation)."""
    shares: list[float | None] = []
    said: list[str] = []
    for direction, what in (("in", "produced"), ("out", "read")):
        same, cross = (
            bytes_by.get((direction, "same"), 0.0),
            bytes_by.get((direction, "cross"), 0.0),
        )
        unknown = bytes_by.get((direction, "unknown"), 0.0)
        known = same + cross
        shares.append(cross / known if known > 0 else None)
        said.append(
            f"{cross / GIB:.3g} of {known / GIB:.3g} GiB {what} by clients of a known zone"
            f" crossed zones ({unknown / GIB:.3g} GiB of clients in no known zone left out)"
        )
    if shares[0] is None and shares[1] is None:
        return None
    return CrossZone(shares[0], shares[1], f"{where}: {'; '.join(said)}")


def counter_rates(
    name: str, where: str, puts: float, gets: float, bytes_in: float, bytes_out: float
) -> tuple[RequestRate | None, RequestRate | None]:
    """PUTs per GiB produced and GETs per GiB read from a broker's counters (`where` says
    whose, `name` names them in an error); None for a rate whose bytes are zero."""
    written, read = bytes_in / GIB, bytes_out / GIB
    small = " (under 1 GiB: partly filled objects weigh heavily)" if written < 1 else ""
    put_rate = get_rate = None
    if written > 0:
        put_rate = RequestRate(
            _measured_rate(name, "PUTs per GiB produced", puts, written),
            f"{where}: {puts:.0f} PUTs for {written:.3g} GiB produced{small}",
        )
    if read > 0:
        get_rate = RequestRate(
            _measured_rate(name, "GETs per GiB read", gets, read),
            f"{where}: {gets:.0f} GETs for {read:.3g} GiB read",
        )
    return put_rate, get_rate


def _measured_rate(url: str, what: str, requests: float, gib: float) -> float:
    """requests / gib, refused (exit 1) unless both are counters (finite, not negative)
    and the rate is one a flag could give."""
    rate = requests / gib if math.isfinite(requests) and math.isfinite(gib) else math.nan
    if requests < 0 or not 0 <= rate <= RATE_MAX:
        raise InputError(
            f"{url}: {what} of {requests:g} / {gib:g} is not a rate from 0 to {RATE_MAX:,.0f}"
            " (counters that are not finite, or negative)",
            from_broker=True,
        )
    return rate


def scrape(url: str) -> Samples:
    """The samples of the series above, from one bounded GET of `url`."""
    # Imported here: `contextplane up` parses its command line with this module loaded.
    import urllib.error
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    if not url.startswith(("http://", "https://")):
        raise InputError(f"--metrics-url {url}: an http:// or https:// URL is needed")
    try:
        with urllib.request.urlopen(url, timeout=METRICS_TIMEOUT_S) as response:  # noqa: S310
            body = _read_by_deadline(url, response)
    except urllib.error.HTTPError as exc:
        raise InputError(f"{url}: HTTP {exc.code} {exc.reason}", from_broker=True) from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise InputError(f"{url}: no answer ({reason})", from_broker=True) from None
    if len(body) > METRICS_BYTES_MAX:
        raise InputError(f"{url}: more than {METRICS_BYTES_MAX} bytes", from_broker=True)
    names = {series[0] for series in (PUTS, GETS, BYTES_IN, BYTES_OUT)} | {ZONE_BYTES}
    wanted = "\n".join(
        line
        for line in body.decode(errors="replace").splitlines()
        if line.split("{", 1)[0].split(" ", 1)[0] in names
    )
    try:
        families = list(text_string_to_metric_families(wanted + "\n"))
    except ValueError as exc:
        raise InputError(f"{url}: not Prometheus's text format ({exc})", from_broker=True) from None
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in families
        for sample in family.samples
    }


def _read_by_deadline(url: str, response: Any) -> bytes:
    """At most METRICS_BYTES_MAX + 1 bytes of the body, read by METRICS_TIMEOUT_S in all:
    the socket's timeout bounds each read only, and a server may trickle bytes forever."""
    clock = SystemClock()
    deadline_ms = clock.monotonic_ms() + int(METRICS_TIMEOUT_S * 1000)
    chunks: list[bytes] = []
    size = 0
    while size <= METRICS_BYTES_MAX:
        if clock.monotonic_ms() > deadline_ms:
            raise InputError(
                f"{url}: not answered in full within {METRICS_TIMEOUT_S:g} s", from_broker=True
            )
        chunk = response.read1(min(METRICS_CHUNK_BYTES, METRICS_BYTES_MAX + 1 - size))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


_BENCH_ROWS = {
    "puts": re.compile(r"Object PUTs per GiB ingested, ([1-9][\d,]{0,12}) partitions"),
    "gets": re.compile(
        r"Object GETs per GiB read \(after restart\), ([1-9][\d,]{0,12}) partitions"
    ),
}
_BENCH_COLUMN = "contextplane s3://"
_NUMBER = re.compile(r"\d[\d,]*(?:\.\d+)?")


def bench_rates(path: Path, partitions: int) -> tuple[RequestRate, RequestRate]:
    """PUTs per GiB ingested and GETs per GiB read back by the s3:// target of the
    benchmark's table, at the partition count nearest `partitions` (on a log scale)."""
    try:
        with path.open("rb") as file:
            text = file.read(FILE_BYTES_MAX).decode(errors="replace")
    except OSError as exc:
        raise InputError(
            f"{path}: {exc.strerror or exc} (give --bench-results FILE, --metrics-url, or"
            " --puts-per-gib and --gets-per-gib)"
        ) from None
    dated = re.search(r"\d{4}-\d{2}-\d{2}", text[:2000])
    name = "bench/RESULTS.md" if path.resolve() == BENCH_RESULTS else str(path)
    column: int | None = None
    rows: dict[str, dict[int, float]] = {"puts": {}, "gets": {}}
    for line in text.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if column is None:
            column = next((i for i, c in enumerate(cells) if c.startswith(_BENCH_COLUMN)), None)
            continue
        for kind, row in _BENCH_ROWS.items():
            match = row.fullmatch(cells[0])
            figure = _NUMBER.match(cells[column]) if len(cells) > column else None
            if match and figure:
                rate = float(figure.group().replace(",", ""))
                bound = Field(float, 0, RATE_MAX, None)
                rows[kind][int(match.group(1).replace(",", ""))] = _bounded(
                    f"{path}: {cells[0]}", rate, bound
                )
    rates = []
    for kind, label in (("puts", "PUTs per GiB ingested"), ("gets", "GETs per GiB read")):
        if not rows[kind]:
            raise InputError(f"{path}: no '{label}' rows with a {_BENCH_COLUMN} figure")
        nearest = min(rows[kind], key=lambda measured: abs(math.log(measured / partitions)))
        when = f" of {dated.group()}" if dated else ""
        rates.append(
            RequestRate(
                rows[kind][nearest],
                f"{name}{when}, {_BENCH_COLUMN} at {nearest:,} partitions,"
                f" the nearest measured to {partitions:,}",
            )
        )
    return rates[0], rates[1]
