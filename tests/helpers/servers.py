"""Loopback servers for shell tests: a recording "proxy", a silent server, a full backlog.

Every server here binds 127.0.0.1 only and is a context manager that stops its thread and
closes its sockets on exit.
"""

from __future__ import annotations

import contextlib
import errno
import select
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from types import TracebackType
from typing import Any

LOOPBACK = "127.0.0.1"


def free_port() -> int:
    """A port nothing listens on (bound, read, closed)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
    return port


class _ProxyHandler(BaseHTTPRequestHandler):
    server: _ProxyServer

    def _answer(self) -> None:
        self.server.recorded.append(f"{self.command} {self.path}")
        body = b"bad gateway (test proxy)"
        self.send_response(502)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)
        self.close_connection = True

    do_GET = do_POST = do_HEAD = do_CONNECT = do_PUT = do_DELETE = _answer

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: pytest treats stray stderr output as noise."""


class _ProxyServer(HTTPServer):
    def __init__(self) -> None:
        self.recorded: list[str] = []
        super().__init__((LOOPBACK, 0), _ProxyHandler)


class RecordingProxy:
    """An HTTP "proxy" that records every request line and answers 502."""

    def __init__(self) -> None:
        self._server = _ProxyServer()
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self._server.server_address[1]}"

    @property
    def recorded(self) -> list[str]:
        return list(self._server.recorded)

    def clear(self) -> None:
        self._server.recorded.clear()

    def __enter__(self) -> RecordingProxy:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        self._thread.join(timeout=2)
        self._server.server_close()


class SilentServer:
    """Accepts TCP connections and never sends a byte; counts the connections it accepted."""

    def __init__(self) -> None:
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.bind((LOOPBACK, 0))
        self._listener.listen(16)
        self._listener.setblocking(False)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._accepted: list[socket.socket] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://{LOOPBACK}:{self._listener.getsockname()[1]}"

    @property
    def connections(self) -> int:
        with self._lock:
            return len(self._accepted)

    def _accept_pending(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            with self._lock:
                self._accepted.append(conn)

    def _serve(self) -> None:
        while not self._stop.is_set():
            readable, _, _ = select.select([self._listener], [], [], 0.02)
            if readable:
                self._accept_pending()
        # Connections the kernel completed before stop() are counted too.
        self._accept_pending()

    def __enter__(self) -> SilentServer:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop accepting, then close every socket. Idempotent; `connections` stays readable."""
        if self._thread.is_alive():
            self._stop.set()
            self._thread.join(timeout=2)
        with self._lock:
            for conn in self._accepted:
                conn.close()
        self._listener.close()


@contextlib.contextmanager
def full_backlog() -> Iterator[str | None]:
    """An endpoint whose accept queue is full, so that new SYNs are dropped (Linux).

    Yields the endpoint, or None when this host does not drop SYNs that way (the caller
    skips). The listener never accepts; every socket is closed on exit.
    """
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    fillers: list[socket.socket] = []
    try:
        listener.bind((LOOPBACK, 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        for _ in range(3):
            filler = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            filler.setblocking(False)
            fillers.append(filler)
            result = filler.connect_ex((LOOPBACK, port))
            if result not in (0, errno.EINPROGRESS):
                yield None
                return
        # Check the trick works here: a plain connect must now time out.
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as check:
            check.settimeout(0.1)
            try:
                check.connect((LOOPBACK, port))
            except TimeoutError:
                yield f"http://{LOOPBACK}:{port}"
                return
            except OSError:
                pass
        yield None
    finally:
        for filler in fillers:
            filler.close()
        listener.close()
