"""Loopback servers for shell tests: a recording "proxy", a silent server, a full backlog.

Every server here binds 127.0.0.1 only and is a context manager that stops its thread and
closes its sockets on exit.
"""

from __future__ import annotations

import socket
import threading
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
