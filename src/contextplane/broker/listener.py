"""The broker's listeners: one accept loop per listener (`listeners=NAME://host:port,...`),
each connection tagged with the listener it came in on.

On an SSL or SASL_SSL listener each accepted socket's TLS handshake runs in a task of its
own, bounded by request.receive.timeout.ms, so a client that never finishes its
handshake holds neither the accept loop nor the event loop; a failed handshake (plaintext
Kafka on a TLS port, an untrusted certificate) closes that connection with one log line.
The context comes from `security/tls.py`, rebuilt when its files change. On an SSL
listener a client certificate gives the principal (`ssl.principal.mapping.rules`).

The limits are the broker's, shared by every listener as in Kafka: `max.connections`
and `max.connections.per.ip` count connections on all listeners together, and
`queued.max.request.bytes` is one budget for every connection's request bytes. When
`max.connections` is reached every listener stops accepting (new connections wait in the
listen backlog) until a connection closes on any of them.
"""

from __future__ import annotations

import asyncio
import errno
import functools
import logging
import resource
import socket
from dataclasses import dataclass, field

from contextplane import limits
from contextplane.broker.bulk_sender import BulkSender
from contextplane.broker.connections import ConnectionQuotas, RequestMemory
from contextplane.broker.pipeline import Pipeline
from contextplane.broker.server import KafkaConnection
from contextplane.broker.tls_audit import certificate_refusal
from contextplane.listener_settings import ListenerSpec
from contextplane.loop_governor import LoopGovernor
from contextplane.repeated_log import RepeatedLog
from contextplane.security.principal import ANONYMOUS, Principal
from contextplane.security.ssl_principal import NoMatchingRule
from contextplane.security.tls import ReloadingContext, tls_config
from contextplane.security.tls_alert import send_alert
from contextplane.security.x500_name import BadName, certificate_subject
from contextplane.settings import Settings
from contextplane.storage.memory import MemoryBudget

log = logging.getLogger(__name__)

# Kafka's socket.listen.backlog.size is 50; asyncio's default is 100.
_LISTEN_BACKLOG = 100
# After accept() fails for lack of descriptors or memory, wait this long before trying
# again (asyncio's own listener does the same).
_ACCEPT_RETRY_DELAY_S = 1.0
# Rejections per address are logged at most this often, with their count.
_REJECTION_LOG_INTERVAL_S = 10.0
_DEFAULT_SPEC = ListenerSpec("PLAINTEXT", "PLAINTEXT", "127.0.0.1", 0)


def connection_limit(max_connections: int) -> int:
    """max.connections, capped so accepted sockets leave descriptors for the broker's
    own files (WAL, SQLite, objects, S3 connections)."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return max_connections
    budget = max(1, soft - limits.DESCRIPTORS_RESERVED)
    if budget < max_connections:
        log.debug(
            "accepting at most %d connections: RLIMIT_NOFILE is %d and %d descriptors are "
            "kept for the broker's files (max.connections=%d)",
            budget,
            soft,
            limits.DESCRIPTORS_RESERVED,
            max_connections,
        )
    return min(max_connections, budget)


@dataclass
class SharedLimits:
    """What every listener of one broker shares: the connection quotas, the request
    memory, the read buffer (each read is copied out of it at once) and the signal that
    a connection slot was freed; and the storage's memory budget, where connections
    count the response bytes they hold."""

    quotas: ConnectionQuotas
    memory: RequestMemory
    read_buffer: bytearray = field(default_factory=lambda: bytearray(limits.SOCKET_READ_BYTES_MAX))
    slot_freed: asyncio.Event = field(default_factory=asyncio.Event)
    response_budget: MemoryBudget | None = None
    # Requests waiting for the loop, and the turns of bulk work (loop_governor.py).
    governor: LoopGovernor = field(default_factory=LoopGovernor)
    # Writes large responses of plaintext connections off the loop (bulk_sender.py).
    bulk_sender: BulkSender | None = None

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        budget: MemoryBudget | None = None,
        governor: LoopGovernor | None = None,
    ) -> SharedLimits:
        """The listeners' limits; with the storage's `budget`, request and response bytes
        are counted in it and requests are held to its request share."""
        quotas = ConnectionQuotas(
            connection_limit(settings.max_connections),
            settings.max_connections_per_ip,
            settings.connections_per_ip_overrides,
        )
        memory = RequestMemory(settings.queued_max_request_bytes, budget)
        threads = settings.response_send_threads
        sender = BulkSender(threads) if threads else None
        return cls(
            quotas,
            memory,
            response_budget=budget,
            governor=governor or LoopGovernor(),
            bulk_sender=sender,
        )


class Listener:
    """One listener: accepts connections within the shared quotas and closes idle and
    stalled ones."""

    def __init__(
        self,
        pipeline: Pipeline,
        settings: Settings,
        spec: ListenerSpec = _DEFAULT_SPEC,
        shared: SharedLimits | None = None,
        tls: ReloadingContext | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.spec = spec
        self.name = spec.name
        # PLAINTEXT and SSL connections start ready; SASL ones go through the handshake.
        self.security_protocol = spec.security_protocol
        self.frame_bytes_max = settings.socket_request_max_bytes
        self.sasl_frame_bytes_max = settings.sasl_server_max_receive_size
        self.idle_s = settings.connections_max_idle_ms / 1000
        self.receive_timeout_s = settings.request_receive_timeout_ms / 1000
        shared = shared or SharedLimits.from_settings(settings)
        self.shared = shared
        self.quotas = shared.quotas
        self.memory = shared.memory
        self.read_buffer = shared.read_buffer
        self.tls = tls
        self.connections: set[KafkaConnection] = set()
        self._handshakes: set[asyncio.Task[None]] = set()
        self._sockets: list[socket.socket] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._rejected: dict[str, int] = {}
        self._rejections_logged_at = 0.0
        self._handshake_failures = RepeatedLog(
            log, "TLS handshake failures", _REJECTION_LOG_INTERVAL_S
        )

    @property
    def port(self) -> int:
        return int(self._sockets[0].getsockname()[1])

    async def start(self, host: str, port: int) -> None:
        loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        for family, kind, proto, _name, address in dict.fromkeys(infos):
            sock = socket.socket(family, kind, proto)
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if family == socket.AF_INET6:
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                if port == 0 and self._sockets:  # one free port for every address
                    address = (address[0], self.port, *address[2:])
                sock.bind(address)
                sock.listen(_LISTEN_BACKLOG)
                sock.setblocking(False)
            except OSError as exc:
                sock.close()
                self.close()
                # asyncio's wording, which operators and tests know
                raise OSError(
                    exc.errno,
                    f"error while attempting to bind on address {address!r}: "
                    f"{(exc.strerror or str(exc)).lower()}",
                ) from None
            self._sockets.append(sock)
        self._tasks = [asyncio.create_task(self._accept_loop(s)) for s in self._sockets]
        self._tasks.append(asyncio.create_task(self._expire_loop()))

    def close(self) -> None:
        """Stop listening (established connections are left to the process's end)."""
        for task in [*self._tasks, *self._handshakes]:
            task.cancel()
        for sock in self._sockets:
            sock.close()

    async def _accept_loop(self, listening: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        slot_freed = self.shared.slot_freed
        while True:
            if not self.quotas.slot_available():
                # Kafka's max.connections: stop accepting; new connections wait in the
                # listen backlog until one closes.
                slot_freed.clear()
                await slot_freed.wait()
                continue
            try:
                sock, address = await loop.sock_accept(listening)
            except OSError as exc:
                if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    log.error("accepting a connection failed: %s; retrying", exc)
                    await asyncio.sleep(_ACCEPT_RETRY_DELAY_S)
                continue
            host = str(address[0])
            if not self.quotas.admit(host):
                sock.close()
                self._log_rejection(host)
                continue
            if self.tls is None:
                await self._set_up(sock, host, f"{host}:{address[1]}")
                continue
            # The handshake takes round trips the client controls: not in this loop.
            task = asyncio.create_task(self._set_up(sock, host, f"{host}:{address[1]}"))
            self._handshakes.add(task)
            task.add_done_callback(self._handshakes.discard)

    async def _set_up(self, sock: socket.socket, host: str, peer: str) -> None:
        """Make the connection of an accepted socket (its TLS handshake first on a TLS
        listener)."""
        loop = asyncio.get_running_loop()
        connection = KafkaConnection(self, host)
        context = None if self.tls is None else self.tls.current(loop.time())
        # asyncio closes its descriptor on a failed handshake without sending OpenSSL's
        # alert; this one sends it (`tls_alert.py`).
        alert_socket = None if context is None else _duplicate(sock)
        try:
            if context is None:
                await loop.connect_accepted_socket(functools.partial(_same, connection), sock)
            else:
                await loop.connect_accepted_socket(
                    functools.partial(_same, connection),
                    sock,
                    ssl=context,
                    ssl_handshake_timeout=self.receive_timeout_s,
                )
        except Exception as exc:  # noqa: BLE001 - one connection, not the listener
            if alert_socket is not None:
                send_alert(exc, alert_socket)
            if context is not None:
                self._audit_refusal(exc, host, peer)
                reason = _handshake_error(exc, self.receive_timeout_s)
                self._handshake_failures.event(
                    f"{host} ({reason})",  # one line per address and kind of failure
                    loop.time(),
                    "closing connection from %s on listener %s: TLS handshake failed: %s",
                    peer,
                    self.name,
                    reason,
                )
            elif not isinstance(exc, OSError):
                log.exception("setting up the connection from %s failed", host)
            sock.close()
            if not connection.counted:
                self.quotas.release(host)
        finally:
            if alert_socket is not None:
                alert_socket.close()

    def _audit_refusal(self, exc: BaseException, host: str, peer: str) -> None:
        """A handshake refused for the client's certificate is a failed authentication."""
        reason = certificate_refusal(exc)
        if reason is not None:
            self.pipeline.services.audit.certificate_authentication(
                peer=peer, host=host, listener=self.name, principal=None, subject=None,
                reason=reason,
            )  # fmt: skip

    def principal(self, transport: asyncio.BaseTransport) -> Principal:
        """Who a new connection is before any SASL: on an SSL listener the subject of
        the client's certificate, mapped by ssl.principal.mapping.rules (NoMatchingRule:
        no rule applies, the client is refused, as Kafka refuses it), else
        User:ANONYMOUS."""
        if self.tls is None or self.security_protocol != "SSL":
            return ANONYMOUS
        ssl_object = transport.get_extra_info("ssl_object")
        certificate = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        if not certificate:
            return ANONYMOUS
        # From the DER, not getpeercert()'s decoded form: Java renders attributes it has
        # no keyword for as OID=#hex of the DER value, which the decoded form has lost.
        audit = self.pipeline.services.audit
        address = transport.get_extra_info("peername")
        host, peer = (str(address[0]), f"{address[0]}:{address[1]}") if address else ("?", "?")
        subject: str | None = None
        try:
            try:
                subject = certificate_subject(certificate)
            except BadName as exc:  # a name Java's X500Principal would not read either
                raise NoMatchingRule(f"unreadable certificate subject: {exc}") from None
            principal = Principal("User", self.tls.mapper.name(subject))
        except NoMatchingRule as exc:
            audit.certificate_authentication(
                peer=peer, host=host, listener=self.name, principal=None, subject=subject,
                reason=f"client certificate refused: {exc}",
            )  # fmt: skip
            raise
        audit.certificate_authentication(
            peer=peer, host=host, listener=self.name, principal=principal, subject=subject
        )
        return principal

    def _log_rejection(self, host: str) -> None:
        """Kafka logs each refusal; a flood would fill the log, so repeats are counted."""
        self._rejected[host] = self._rejected.get(host, 0) + 1
        self._flush_rejections(asyncio.get_running_loop().time())

    def _flush_rejections(self, now: float) -> None:
        if not self._rejected or now - self._rejections_logged_at < _REJECTION_LOG_INTERVAL_S:
            return
        self._rejections_logged_at = now
        for address, count in self._rejected.items():
            log.warning(
                "refused %d connection(s) from %s: the address already has its maximum of %d "
                "(max.connections.per.ip)",
                count,
                address,
                self.quotas.limit_for(address),
            )
        self._rejected.clear()

    def connection_opened(self, connection: KafkaConnection) -> None:
        self.connections.add(connection)

    def connection_closed(self, connection: KafkaConnection) -> None:
        self.connections.discard(connection)
        self.quotas.release(connection.host)
        self.shared.slot_freed.set()

    async def _expire_loop(self) -> None:
        loop = asyncio.get_running_loop()
        interval = min(1.0, max(0.01, min(self.idle_s, self.receive_timeout_s) / 4))
        while True:
            await asyncio.sleep(interval)
            now = loop.time()
            for connection in list(self.connections):
                connection.check_deadlines(now)
            self._flush_rejections(now)
            self._handshake_failures.flush(now)


def _duplicate(sock: socket.socket) -> socket.socket | None:
    try:
        return sock.dup()
    except OSError:  # out of descriptors: the client gets no alert, only the close
        return None


def _handshake_error(exc: BaseException, timeout_s: float) -> str:
    """What a failed TLS handshake log line says about it."""
    if isinstance(exc, (TimeoutError, ConnectionAbortedError)) and "longer" in str(exc):
        return f"not completed within request.receive.timeout.ms={int(timeout_s * 1000)}"
    text = str(exc) or type(exc).__name__
    if "WRONG_VERSION_NUMBER" in text or "HTTP_REQUEST" in text or "record layer" in text:
        text += " (not TLS: a plaintext client on a TLS listener?)"
    return text


def tls_contexts(settings: Settings) -> dict[str, ReloadingContext]:
    """A context per SSL and SASL_SSL listener, built before anything else opens so that
    bad TLS settings stop the start at once; TlsConfigError names the setting."""
    return {
        spec.name: ReloadingContext(tls_config(settings, spec.name))
        for spec in settings.listeners
        if spec.tls
    }


class BrokerListeners:
    """Every listener of one broker, started in the order `listeners` names them."""

    def __init__(
        self,
        pipeline: Pipeline,
        settings: Settings,
        tls: dict[str, ReloadingContext] | None = None,
    ) -> None:
        storage = pipeline.services.log
        self.shared = shared = SharedLimits.from_settings(
            settings, storage.budget, storage.loop_governor
        )
        tls = tls_contexts(settings) if tls is None else tls
        self.listeners = [
            Listener(pipeline, settings, spec, shared, tls.get(spec.name))
            for spec in settings.listeners
        ]

    async def start(self) -> None:
        started: list[Listener] = []
        try:
            for listener in self.listeners:
                await listener.start(listener.spec.host, listener.spec.port)
                started.append(listener)
        except BaseException:
            for listener in started:
                listener.close()
            raise

    def bound_port(self, name: str) -> int:
        """The port the named listener bound (the one asked for, or a free one for 0)."""
        for listener in self.listeners:
            if listener.name == name:
                return listener.port
        raise KeyError(name)

    def close(self) -> None:
        for listener in self.listeners:
            listener.close()


async def serve(
    pipeline: Pipeline,
    settings: Settings,
    tls: dict[str, ReloadingContext] | None = None,
) -> BrokerListeners:
    listeners = BrokerListeners(pipeline, settings, tls)
    await listeners.start()
    for listener in listeners.listeners:
        log.info(
            "listener %s (%s) on %s:%d",
            listener.name,
            listener.security_protocol,
            listener.spec.host,
            listener.port,
        )
    return listeners


def _same(connection: KafkaConnection) -> KafkaConnection:
    """The protocol factory of an accepted socket: the connection already made for it."""
    return connection
