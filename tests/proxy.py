"""A TCP proxy in front of the test Postgres that can lose one reply on purpose.

``lose_reply_to(marker)``: the next request that carries ``marker`` reaches the server, which
runs (and commits) it; its reply never reaches the client, whose connection is cut instead:
what a client sees when Postgres restarts, or the network fails, between the COMMIT and its
answer. Everything else passes through untouched.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from typing import Any

from psycopg.conninfo import conninfo_to_dict, make_conninfo


class Proxy:
    def __init__(self, dsn: str) -> None:
        params: dict[str, Any] = conninfo_to_dict(dsn)
        host = str(params.get("host") or "localhost")
        port = int(params.get("port") or 5432)
        self._upstream: Any = f"{host}/.s.PGSQL.{port}" if host.startswith("/") else (host, port)
        self._unix = host.startswith("/")
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.dsn = make_conninfo(
            dsn, host="127.0.0.1", port=str(self._listener.getsockname()[1]), sslmode="disable"
        )
        self._marker: bytes | None = None
        self._lock = threading.Lock()
        self.replies_lost = 0
        self._closed = False

    def lose_reply_to(self, marker: bytes) -> None:
        with self._lock:
            self._marker = marker

    def start(self) -> Proxy:
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def close(self) -> None:
        self._closed = True
        self._listener.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            family = socket.AF_UNIX if self._unix else socket.AF_INET
            server = socket.socket(family, socket.SOCK_STREAM)
            server.connect(self._upstream)
            link = _Link(client, server)
            threading.Thread(target=self._requests, args=(link,), daemon=True).start()
            threading.Thread(target=self._replies, args=(link,), daemon=True).start()

    def _requests(self, link: _Link) -> None:
        tail = b""
        while (data := _recv(link.client)) is not None:
            with self._lock:
                marker = self._marker
                if marker is not None and marker in tail + data:
                    self._marker = None
                    link.lose_next_reply = True
                tail = data[-len(marker) :] if marker else b""
            try:
                link.server.sendall(data)
            except OSError:
                break
        link.close()

    def _replies(self, link: _Link) -> None:
        while (data := _recv(link.server)) is not None:
            if link.lose_next_reply:
                # The server answered, so the statement ran to its end: drop the answer and
                # cut the client off.
                with self._lock:
                    self.replies_lost += 1
                break
            try:
                link.client.sendall(data)
            except OSError:
                break
        link.close()


class _Link:
    def __init__(self, client: socket.socket, server: socket.socket) -> None:
        self.client = client
        self.server = server
        self.lose_next_reply = False

    def close(self) -> None:
        for end in (self.client, self.server):
            with contextlib.suppress(OSError):  # already closed by the other side
                end.shutdown(socket.SHUT_RDWR)
            end.close()


def _recv(sock: socket.socket) -> bytes | None:
    try:
        data = sock.recv(65536)
    except OSError:
        return None
    return data or None
