"""The TLS alert of a refused handshake, kept so that it reaches the client.

When OpenSSL refuses a handshake (no client certificate where one is required, an
untrusted or expired one) it writes an alert (`certificate required`, `unknown ca`,
`certificate expired`) to its outgoing buffer and fails. asyncio's SSL protocol then
aborts the transport without writing that buffer out (`SSLProtocol._do_handshake` sends
pending bytes only while the handshake wants more data; a failure goes straight to
`_fatal_error`), so the client sees an unexpected end of file instead of the reason.
Kafka's broker sends the alert. The listener's contexts create their SSL objects with
`AlertKeepingSSLObject`, which attaches the pending bytes to the handshake's exception;
the listener writes them on a duplicate of the socket's descriptor (asyncio has closed
its own by then) before closing it.
"""

from __future__ import annotations

import socket
import ssl
from typing import Any

# What a refused handshake may leave to send: an alert record is 7 bytes (TLS 1.2) or
# about 24 (TLS 1.3, encrypted); more than this is not an alert and is not sent.
ALERT_BYTES_MAX = 1024


class AlertKeepingSSLObject(ssl.SSLObject):
    """An SSLObject whose failed handshake keeps its outgoing bytes (the alert) on the
    exception, as `pending_alert`."""

    _outgoing: ssl.MemoryBIO

    @classmethod
    def _create(  # type: ignore[override]
        cls, incoming: ssl.MemoryBIO, outgoing: ssl.MemoryBIO, *args: Any, **kwargs: Any
    ) -> AlertKeepingSSLObject:
        created: AlertKeepingSSLObject = super()._create(  # type: ignore[misc]
            incoming, outgoing, *args, **kwargs
        )
        created._outgoing = outgoing
        return created

    def do_handshake(self) -> None:
        try:
            super().do_handshake()
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
            raise
        except ssl.SSLError as exc:
            exc.pending_alert = self._outgoing.read(ALERT_BYTES_MAX)  # type: ignore[attr-defined]
            raise


def send_alert(exc: BaseException, duplicate: socket.socket) -> bool:
    """Write the alert a failed handshake left (if any) on `duplicate`, a duplicate of
    the connection's descriptor, then end our side; True when one was sent."""
    alert = getattr(exc, "pending_alert", b"")
    if not alert:
        return False
    try:
        duplicate.setblocking(False)
        sent = duplicate.send(alert)  # a few bytes on a fresh connection: never blocks
        duplicate.shutdown(socket.SHUT_WR)
    except OSError:
        return False
    return sent == len(alert)
