"""A listening socket for an HTTP server, bound by the caller before the server exists:
port 0 works, the port is known for the ready line, and a port in use is found before
anything is started. Only the standard library, so binding early costs no import time."""

from __future__ import annotations

import socket


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP named: accepted sockets inherit it, and asyncio sets TCP_NODELAY only on
    # sockets that name it. Without it a keep-alive answer (headers, then body) waits for
    # the client's delayed ACK: ~40 ms a request.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        # The address as the error's filename: "[Errno 98] Address already in use:
        # '127.0.0.1:8091'" names what was taken (strerror stays the system's text).
        raise OSError(exc.errno, exc.strerror, f"{host}:{port}") from exc
    sock.setblocking(False)
    return sock
