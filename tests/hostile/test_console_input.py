"""Hostile input to the web console on `http.port`: markup in every client-chosen string
a page shows (group, member and client ids, ACL principals and resource names, the audit
records of those ACLs' creation), odd `?page=` values, odd and huge paths, bytes that
are not UTF-8, CR/LF aimed at the response's headers; decision records whose ids, sources,
outcomes and recorded links are markup (and one that is not JSON); a context service whose
views, topics and failure are markup, one that trickles its answer, one that sends too
much, one that is not JSON. Every answer is a page (200 or 404)
or a 4xx from the HTTP parser, never a 500, and the broker goes on serving Kafka and
HTTP clients afterwards.
"""

from __future__ import annotations

import http.client
import http.server
import json
import re
import socket
import threading
import time
from collections.abc import Iterator
from html.parser import HTMLParser
from urllib.parse import quote, urlsplit

import confluent_kafka as ck
import pytest
from confluent_kafka.admin import (
    AclBinding,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ResourcePatternType,
    ResourceType,
)

from tests.support.broker import BrokerProcess
from tests.support.wait import wait_until

_CONSOLE_AT = re.compile(r"console at (http://\S+?)/,")
TOPIC = "attacked"
REQUEST_HEAD_MS = 3_000
# Markup that would run or inject an element if a page wrote it raw, in a tag, in an
# attribute or in the title.
GROUP = '"><svg onload=alert(1)></title><script>alert(2)</script>'
CLIENT_ID = "c<img src=x onerror=alert(3)>"
PRINCIPAL = "User:<b onmouseover=alert(4)>mallory</b>"
ACL_GROUP = "g'\"><iframe src=javascript:alert(5)>"


MARKUP_VIEW = "acct<script>alert(6)</script>"
MARKUP_DECISION = "d<img src=x onerror=alert(7)>"


class FakeContextService(http.server.ThreadingHTTPServer):
    """Answers GET /v1/views as `mode` says: markup in every name, a trickle, too many
    bytes, or not JSON."""

    daemon_threads = True
    mode = "markup"


class _ViewsHandler(http.server.BaseHTTPRequestHandler):
    server: FakeContextService

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        mode = self.server.mode
        if mode == "trickle":  # a length promised, a byte every 0.2 s
            self.send_response(200)
            self.send_header("Content-Length", "1000000")
            self.end_headers()
            for _ in range(300):
                try:
                    self.wfile.write(b" ")
                    self.wfile.flush()
                except OSError:
                    return
                time.sleep(0.2)
            return
        if mode == "huge":
            body = b"[" * (9 * 1024 * 1024)
        elif mode == "not-json":
            body = b"<html><script>alert(8)</script></html>"
        else:
            body = json.dumps(
                {
                    "applied_records": 3,
                    "failure": "<b onmouseover=alert(9)>broken</b>",
                    "views": {
                        MARKUP_VIEW: {
                            "freshness": {
                                "age_ms": 5,
                                "lag": 4,
                                "target_ms": 1,
                                "stale": True,
                                "partitions": [
                                    {"topic": "<iframe src=x>", "partition": 0, "position": 1,
                                     "high_watermark": 5, "lag": 4},
                                    {"topic": 7, "partition": "x", "position": None},
                                    "not a partition",
                                ],
                            },
                            "skipped": {"<b>reason</b>": 2, "bad": "many"},
                        },
                        "other": "not a view",
                    },
                }
            ).encode()  # fmt: skip
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture(scope="module")
def context_service() -> Iterator[FakeContextService]:
    server = FakeContextService(("127.0.0.1", 0), _ViewsHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def broker(
    tmp_path_factory: pytest.TempPathFactory, context_service: FakeContextService
) -> Iterator[BrokerProcess]:
    host, port = context_service.server_address[:2]
    settings = {
        "http.port": "0",
        # The request-head deadline (30 s by default) lowered: the slowloris and oversized
        # head tests wait for it.
        "http.request.head.timeout.ms": str(REQUEST_HEAD_MS),
        "console.context.url": f"http://{host!s}:{port}",
        "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "allow.everyone.if.no.acl.found": "true",
    }
    process = BrokerProcess(tmp_path_factory.mktemp("console") / "broker", settings=settings)
    process.start()
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture(scope="module")
def console(broker: BrokerProcess) -> tuple[str, int]:
    def announced() -> str | None:
        assert broker.log_path is not None
        found = _CONSOLE_AT.findall(broker.log_path.read_text(errors="replace"))
        return found[0] if found else None

    url = urlsplit(wait_until(announced, timeout_s=20, what="the console's log line"))
    assert url.hostname is not None and url.port is not None
    return url.hostname, url.port


@pytest.fixture(scope="module")
def hostile_state(broker: BrokerProcess) -> Iterator[None]:
    """A group named like markup with a live member whose client id is markup, and ACLs
    whose principal and resource name are markup (their creation is audited)."""
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    admin.create_topics([ck.admin.NewTopic(TOPIC, 2, 1)])[TOPIC].result(30)
    producer = ck.Producer({"bootstrap.servers": broker.bootstrap})
    for i in range(10):
        producer.produce(TOPIC, value=b"%d" % i, partition=i % 2)
    assert producer.flush(30) == 0
    del producer
    acls = [
        AclBinding(
            ResourceType.GROUP,
            ACL_GROUP,
            ResourcePatternType.LITERAL,
            PRINCIPAL,
            "*",
            AclOperation.READ,
            AclPermissionType.DENY,
        )
    ]
    for future in admin.create_acls(acls).values():
        future.result(30)
    member = ck.Consumer(
        {
            "bootstrap.servers": broker.bootstrap,
            "group.id": GROUP,
            "client.id": CLIENT_ID,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )
    member.subscribe([TOPIC])
    wait_until(lambda: member.poll(0.5) is not None and member.assignment(), 30, "assignment")
    member.commit(offsets=[ck.TopicPartition(TOPIC, 0, 3)], asynchronous=False)
    try:
        yield
    finally:
        member.close()


def get(console: tuple[str, int], target: str) -> tuple[int, dict[str, str], str]:
    connection = http.client.HTTPConnection(*console, timeout=30)
    try:
        connection.putrequest("GET", target, skip_accept_encoding=True)
        connection.endheaders()
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read().decode()
    finally:
        connection.close()


def raw(console: tuple[str, int], request: bytes) -> bytes:
    """Send bytes as they are and read until the server closes."""
    with socket.create_connection(console, timeout=30) as sock:
        sock.sendall(request)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
        return received


class _Elements(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, list[tuple[str, str | None]]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found.append((tag, attrs))


def assert_no_raw_markup(body: str) -> None:
    """The page as a browser parses it: no element or attribute a client's string made
    (no script, iframe, img or b, no event handler, an svg only as the lag chart)."""
    parser = _Elements()
    parser.feed(body)
    for tag, attrs in parser.found:
        assert tag not in ("script", "iframe", "img", "b"), (tag, attrs)
        assert not any(name.startswith("on") for name, _ in attrs), (tag, attrs)
        if tag == "svg":
            assert ("class", "lag-chart") in attrs, attrs


def assert_serving(broker: BrokerProcess, console: tuple[str, int]) -> None:
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    assert TOPIC in admin.list_topics(timeout=10).topics
    assert get(console, "/")[0] == 200


def test_client_chosen_strings_render_as_text(
    broker: BrokerProcess, console: tuple[str, int], hostile_state: None
) -> None:
    status, _, groups = get(console, "/groups")
    assert status == 200
    assert_no_raw_markup(groups)
    assert "&lt;script&gt;alert(2)&lt;/script&gt;" in groups
    assert f'href="/groups/{quote(GROUP, safe="")}"' in groups

    status, _, group = get(console, "/groups/" + quote(GROUP, safe=""))
    assert status == 200
    assert_no_raw_markup(group)
    assert "c&lt;img src=x onerror=alert(3)&gt;" in group  # the member's client id
    assert "<title>Group &#34;&gt;&lt;svg" in group

    status, _, acls = get(console, "/acls")
    assert status == 200
    assert_no_raw_markup(acls)
    assert "User:&lt;b onmouseover=alert(4)&gt;mallory&lt;/b&gt;" in acls
    assert "g&#39;&#34;&gt;&lt;iframe src=javascript:alert(5)&gt;" in acls

    # The ACLs' creation is an audit record carrying both strings.
    def audited() -> str | None:
        status, _, page = get(console, "/security")
        assert status == 200
        return page if "mallory" in page else None

    security = wait_until(audited, 20, "the CreateAcls audit record on /security")
    assert_no_raw_markup(security)
    assert_serving(broker, console)


# %C2%B2 is "²" and %D9%A1 "١": str.isdigit takes both, int() only the second.
@pytest.mark.parametrize(
    "query",
    [
        "-1",
        "0",
        "10" * 15,
        str(10**30),
        "1e3",
        "%C2%B2",
        "%D9%A1",
        "%00",
        "%ff",
        "abc",
        "1&page=2",
        "",
    ],
)
def test_any_page_number_is_a_page(
    console: tuple[str, int], hostile_state: None, query: str
) -> None:
    for path in ("/topics", "/groups", "/acls", f"/topics/{TOPIC}", "/schemas", "/storage"):
        status, _, body = get(console, f"{path}?page={query}")
        assert status == 200, (path, query, body[:300])


@pytest.mark.parametrize(
    "path",
    [
        "/topics/%00",
        "/groups/%00",
        "/topics/%ff%fe",
        "/groups/%c0%af..%c0%af",
        "/schemas/%2e%2e%2f%2e%2e",
        "/topics/" + "x" * 30_000,
        "/nowhere/%3Cscript%3Ealert(1)%3C%2Fscript%3E",
        "//evil.example/",
        "/acls/",
        "/decisions/7/0",
        "/decisions/-1/0",
        "/decisions/0/" + "9" * 30,
        "/decisions/%D9%A1/0",
        "/decisions/%3Cscript%3E/1",
        "/decisions/0/0/0",
    ],
)
def test_odd_paths_are_not_found_pages(
    console: tuple[str, int], hostile_state: None, path: str
) -> None:
    status, headers, body = get(console, path)
    if path == "/acls/":  # Starlette's redirect to the route without the slash
        assert status == 307 and headers["location"].endswith("/acls")
        return
    assert status == 404, body[:300]
    assert 'id="not-found"' in body
    assert_no_raw_markup(body)


def test_header_injection_through_the_path_is_not_a_header(
    console: tuple[str, int], hostile_state: None
) -> None:
    # Encoded CR/LF (a redirect is the only answer that echoes the path): no header made.
    for path in ("/acls%0d%0aSet-Cookie:%20x=1/", "/groups/a%0d%0aSet-Cookie:%20x=1"):
        status, headers, _ = get(console, path)
        assert status in (307, 404)
        assert "set-cookie" not in {k.lower() for k in headers}
        assert all("\r" not in v and "\n" not in v for v in headers.values())
    # Raw CR/LF or bytes that are not UTF-8 in the request line: the parser refuses.
    for line in (b"GET /groups/\xff\xfe HTTP/1.1", b"GET /a\rb HTTP/1.1", b"GET /\x00 HTTP/1.1"):
        answer = raw(console, line + b"\r\nHost: x\r\nConnection: close\r\n\r\n")
        status_line = answer.split(b"\r\n", 1)[0]
        assert re.fullmatch(rb"HTTP/1\.1 (400|404) .*", status_line), answer[:200]


def test_a_request_head_past_the_bound_is_refused(
    broker: BrokerProcess, console: tuple[str, int], hostile_state: None
) -> None:
    answer = raw(console, b"GET /topics/" + b"y" * 100_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 4"), answer[:200]
    assert_serving(broker, console)


LONG = 30_000  # characters of each long name (Kafka bounds them at 32,767)
LONG_GROUPS = 60


def test_long_names_are_cut_in_lists_and_whole_on_their_own_page(
    broker: BrokerProcess, console: tuple[str, int], hostile_state: None
) -> None:
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    ids = [f"long-{i:02d}<&" + "x" * LONG for i in range(LONG_GROUPS)]
    committed = [
        future
        for group_id in ids
        for future in admin.alter_consumer_group_offsets(
            [ck.ConsumerGroupTopicPartitions(group_id, [ck.TopicPartition(TOPIC, 0, 1)])]
        ).values()
    ]
    principal = "User:" + "p" * LONG
    acl = AclBinding(
        ResourceType.TOPIC,
        "r" * LONG,
        ResourcePatternType.LITERAL,
        principal,
        "*",
        AclOperation.WRITE,
        AclPermissionType.DENY,
    )
    committed += admin.create_acls([acl]).values()
    for future in committed:
        future.result(30)

    status, _, groups = get(console, "/groups")
    assert status == 200
    # Whole, each id would be written three times (attribute, link, text): 5 MiB.
    assert len(groups) < 1024 * 1024, f"{len(groups):,} characters"
    shown = "long-00&lt;&amp;" + "x" * (255 - len("long-00<&")) + "…"  # 256 characters
    assert groups.count(shown) == 2  # the row's attribute and its cell, unlinked
    assert "/groups/long-00" not in groups
    assert_no_raw_markup(groups)

    status, _, acls = get(console, "/acls")
    assert status == 200 and len(acls) < 64 * 1024
    assert "User:" + "p" * 250 + "…" in acls and "r" * 255 + "…" in acls

    status, _, group = get(console, "/groups/" + quote(ids[0], safe=""))
    assert status == 200
    assert "x" * LONG in group  # its own page names it whole
    assert_serving(broker, console)


def test_a_group_of_many_partitions_is_shown_a_page_at_a_time(
    broker: BrokerProcess, console: tuple[str, int], hostile_state: None
) -> None:
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    wide, partitions = "wide", 1_100
    admin.create_topics([ck.admin.NewTopic(wide, partitions, 1)])[wide].result(60)
    offsets = [ck.TopicPartition(wide, p, p % 3) for p in range(partitions)]
    group = ck.ConsumerGroupTopicPartitions("wide-readers", offsets)
    for future in admin.alter_consumer_group_offsets([group]).values():
        future.result(60)

    def rows(page: str) -> tuple[list[int], str]:
        status, _, body = get(console, f"/groups/wide-readers?page={page}")
        assert status == 200
        shown = [
            int(p)
            for p in re.findall(r'class="offset" data-topic="wide" data-partition="(\d+)"', body)
        ]
        return shown, body

    first, body = rows("1")
    assert first == list(range(500)) and "Page 1 of 3 (1,100 rows)" in body
    second, _ = rows("2")
    assert second == list(range(500, 1000))
    last, body = rows("99")  # past the end: the last page
    assert last == list(range(1000, 1100)) and "Page 3 of 3" in body


def test_slowloris_connections_are_closed_and_others_served(
    console: tuple[str, int], hostile_state: None
) -> None:
    """Connections trickling a request head a byte a second are closed by the head
    deadline (http.request.head.timeout.ms however the bytes trickle), and a page is
    served meanwhile."""
    slow = [socket.create_connection(console, timeout=5) for _ in range(20)]
    for sock in slow:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
    started = time.monotonic()
    closed: set[int] = set()
    try:
        while len(closed) < len(slow) and time.monotonic() - started < 60:
            for i, sock in enumerate(slow):
                if i in closed:
                    continue
                try:
                    sock.sendall(b"X")
                    sock.setblocking(False)
                    try:
                        if sock.recv(1024) == b"":
                            closed.add(i)
                    except BlockingIOError:
                        pass
                    finally:
                        sock.setblocking(True)
                except OSError:  # reset, or a write after the server closed
                    closed.add(i)
            assert get(console, "/")[0] == 200
            time.sleep(1)
    finally:
        for sock in slow:
            sock.close()
    assert len(closed) == len(slow)
    # By the deadline (a second's slack: the connections were accepted before `started`),
    # not refused at once.
    assert time.monotonic() - started > REQUEST_HEAD_MS / 1000 - 1


@pytest.fixture(scope="module")
def hostile_decisions(broker: BrokerProcess, hostile_state: None) -> list[int]:
    """Decision records whose headers, outcome and recorded links are markup, one whose
    value is not JSON, one keyed by 30,000 characters: their offsets."""
    value = {
        "decision_id": MARKUP_DECISION,
        "outcome": "<script>alert(10)</script>",
        "reads": [
            {
                "view": MARKUP_VIEW,
                "entity": "<b>e</b>",
                "found": True,
                "positions": [{"topic": "<i>t</i>", "partition": 0, "position": 1}],
                "changed_by": {"topic": "<script>", "partition": 0, "offset": 1},
            },
            {"view": "v", "entity": "e", "found": True},
        ],
        "tool_calls": [{"key": "<b>k</b>", "tool": "<img src=x onerror=alert(11)>"}],
        "write_backs": [
            {"topic": TOPIC, "partition": 0, "offset": 2},
            {"topic": TOPIC, "partition": 9, "offset": 0},
            {"topic": TOPIC, "partition": 0, "offset": 10**6},
            "<script>",
        ],
    }
    headers = [("ce_id", MARKUP_DECISION.encode()), ("ce_source", b"<b>src</b>")]
    producer = ck.Producer({"bootstrap.servers": broker.bootstrap})
    offsets: list[int] = []

    def delivered(error: object, message: ck.Message) -> None:
        assert error is None, error
        offsets.append(message.offset())

    records = [
        (MARKUP_DECISION.encode(), json.dumps(value).encode(), headers),
        (b"not-json", b"<script>alert(12)</script>", []),
        (b"k" * 30_000, b"{}", [("ce_time", b"<b>" * 1000)]),
    ]
    for key, body, record_headers in records:
        producer.produce(
            "copilot.decisions", key=key, value=body, headers=record_headers, on_delivery=delivered
        )
        assert producer.flush(30) == 0
    del producer
    return offsets


def test_decisions_with_markup_render_as_text(
    broker: BrokerProcess, console: tuple[str, int], hostile_decisions: list[int]
) -> None:
    status, _, listed = get(console, "/decisions")
    assert status == 200
    assert_no_raw_markup(listed)
    assert "d&lt;img src=x onerror=alert(7)&gt;" in listed
    assert "&lt;script&gt;alert(10)&lt;/script&gt;" in listed
    assert "k" * 30_000 not in listed  # cut in the list
    for offset in hostile_decisions:
        status, _, traced = get(console, f"/decisions/0/{offset}")
        assert status == 200, traced[:300]
        assert_no_raw_markup(traced)
    status, _, traced = get(console, f"/decisions/0/{hostile_decisions[0]}")
    # The links that cannot be followed say why; the one that can is found.
    assert "not a record position" in traced
    assert f"{TOPIC}[0]@2" in traced
    assert f"topic {TOPIC} has no partition 9" in traced
    assert "past the end of the partition" in traced
    assert "&lt;img src=x onerror=alert(11)&gt;" in traced
    status, _, traced = get(console, f"/decisions/0/{hostile_decisions[1]}")
    assert "not a decision (not a JSON object)" in traced
    assert_serving(broker, console)


@pytest.mark.parametrize(
    ("mode", "said"),
    [
        ("trickle", "/v1/views: no whole answer within 5 s"),
        ("huge", "/v1/views: an answer of more than 8,388,608 bytes"),
        ("not-json", "/v1/views: the answer is not JSON"),
    ],
)
def test_a_context_service_that_misbehaves_is_named(
    broker: BrokerProcess,
    console: tuple[str, int],
    context_service: FakeContextService,
    hostile_state: None,
    mode: str,
    said: str,
) -> None:
    context_service.mode = mode
    try:
        status, _, page = get(console, "/views")
    finally:
        context_service.mode = "markup"
    assert status == 200
    assert_no_raw_markup(page)
    host, port = context_service.server_address[:2]
    assert f'id="views-problem">http://{host!s}:{port}{said}' in page
    assert_serving(broker, console)


def test_a_context_service_answering_markup_renders_as_text(
    console: tuple[str, int], context_service: FakeContextService
) -> None:
    status, _, page = get(console, "/views")
    assert status == 200
    assert_no_raw_markup(page)
    assert "acct&lt;script&gt;alert(6)&lt;/script&gt;" in page
    assert "&lt;iframe src=x&gt;" in page
    assert 'id="stale-alert"' in page
    assert "&lt;b onmouseover=alert(9)&gt;broken&lt;/b&gt;" in page
    assert "&lt;b&gt;reason&lt;/b&gt;: 2" in page
