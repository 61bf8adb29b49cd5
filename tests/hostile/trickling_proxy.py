"""A TCP proxy on 127.0.0.1 in front of a real broker that passes every byte through,
except the responses to one API (asked by one client id, or any): those it starts and then
trickles, a byte every `gap_s`, for as long as the client listens (a slow loris on the
broker's side of the wire)."""

from __future__ import annotations

import socket
import struct
import threading
import time


class TricklingProxy:
    def __init__(
        self, upstream: str, api_key: int, client_id: bytes | None = None, gap_s: float = 0.5
    ) -> None:
        host, port = upstream.rsplit(":", 1)
        self._upstream = (host, int(port))
        self._api_key = api_key
        self._client_id = client_id
        self._gap_s = gap_s
        self._server = socket.create_server(("127.0.0.1", 0))
        self.bootstrap = f"127.0.0.1:{self._server.getsockname()[1]}"
        self._closed = threading.Event()
        self.trickled = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        self._closed.set()
        self._server.close()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        with client, socket.create_connection(self._upstream) as upstream:
            try:
                while frame := _frame(client):
                    api_key, _, _, id_size = struct.unpack_from(">hhih", frame, 4)
                    upstream.sendall(frame)
                    answer = _frame(upstream)
                    if answer is None:
                        return
                    named = frame[14 : 14 + id_size]
                    if api_key == self._api_key and self._client_id in (None, named):
                        self._trickle(client, answer)
                        return
                    client.sendall(answer)
            except OSError:
                return

    def _trickle(self, client: socket.socket, answer: bytes) -> None:
        self.trickled.set()
        client.sendall(answer[:8])  # the size and the correlation id
        for byte in answer[8:]:
            if self._closed.is_set():
                return
            client.sendall(bytes([byte]))
            time.sleep(self._gap_s)


def _frame(sock: socket.socket) -> bytes | None:
    head = _exactly(sock, 4)
    if head is None:
        return None
    body = _exactly(sock, struct.unpack(">i", head)[0])
    return None if body is None else head + body


def _exactly(sock: socket.socket, count: int) -> bytes | None:
    data = b""
    while len(data) < count:
        chunk = sock.recv(count - len(data))
        if not chunk:
            return None
        data += chunk
    return data
