"""A threaded TCP server that can be torn down promptly and completely.

``socketserver.ThreadingMixIn`` neither remembers its connections nor bounds its joins, so
this server keeps both itself: ``stop`` must wake every handler (hung, sleeping or idle on
keep-alive) and leave no thread behind.

Shared by the IMDS emulator and the token relay (``azure_imds_credential.relay``): both need a
loopback server that stops promptly and completely.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import socket
import socketserver
import struct
import threading
import time
from typing import Any

logger = logging.getLogger("azure_imds_credential.testing")

# How often the accept loop looks at the stop flag: the bound on stop()'s first step.
_POLL_INTERVAL = 0.02


class TrackingServer(socketserver.TCPServer):
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(
        self,
        address: tuple[str, int],
        handler: type[socketserver.BaseRequestHandler],
        emulator: Any,
        *,
        name: str = "imds-emulator",
    ) -> None:
        # ``emulator`` (the owner: an emulator or a relay) is typed loosely to keep this module
        # free of an import cycle; the handler casts it back.
        self.emulator = emulator
        self.name = name
        self.stopping = threading.Event()
        self.timeout = _POLL_INTERVAL
        self._lock = threading.Lock()
        self._connections: set[socket.socket] = set()
        self._aborting: set[socket.socket] = set()
        self._threads: set[threading.Thread] = set()
        self._numbers = itertools.count(1)
        self._accepting: threading.Thread | None = None
        super().__init__(address, handler)

    # -- lifecycle ---------------------------------------------------------------------
    def start(self) -> None:
        """Serve in a daemon thread."""
        self._accepting = threading.Thread(
            target=self.serve_until_stopped, name=f"{self.name}-accept", daemon=True
        )
        self._accepting.start()

    def stop(self, budget: float) -> int:
        """Stop accepting, drop every connection and join every thread within `budget` s;
        returns how many threads are still alive (0 when the stop was complete)."""
        deadline = time.monotonic() + budget
        self.stopping.set()  # wakes latency/delay/hang waits and the accept loop
        accepting = self._accepting
        if accepting is not None:
            accepting.join(timeout=max(0.0, deadline - time.monotonic()))
        self.server_close()  # no new connections
        self.wake_connections()  # unblocks reads/writes of live connections
        stuck = self.join_handlers(deadline)
        return len(stuck) + (accepting is not None and accepting.is_alive())

    @property
    def url(self) -> str:
        """The URL clients use: a wildcard bind is reached on loopback; IPv6 in brackets."""
        host, port = self.server_address[0], self.server_address[1]
        host = "127.0.0.1" if host in ("", "0.0.0.0") else str(host)
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    # -- accept loop -------------------------------------------------------------------
    def serve_until_stopped(self) -> None:
        # handle_request() returns after ``self.timeout`` when nobody connects, so the
        # loop notices ``stopping`` quickly, unlike serve_forever()'s unbounded shutdown().
        while not self.stopping.is_set():
            self.handle_request()

    def process_request(self, request: Any, client_address: Any) -> None:
        if self.stopping.is_set():
            self.shutdown_request(request)
            return
        thread = threading.Thread(
            target=self._serve_connection,
            args=(request, client_address),
            name=f"{self.name}-conn-{next(self._numbers)}",
            daemon=True,
        )
        with self._lock:
            self._connections.add(request)
            self._threads.add(thread)
        thread.start()

    def _serve_connection(self, request: socket.socket, client_address: Any) -> None:
        try:
            self.finish_request(request, client_address)
        except Exception:
            self.handle_error(request, client_address)
        finally:
            self.shutdown_request(request)
            with self._lock:
                self._connections.discard(request)
                self._threads.discard(threading.current_thread())

    def handle_error(self, request: Any, client_address: Any) -> None:
        # The default prints a traceback to stderr; clients vanishing mid-answer is normal.
        logger.debug("%s: error serving %s", self.name, client_address, exc_info=True)

    def handle_timeout(self) -> None:
        """Nobody connected within the poll interval: nothing to do."""

    # -- connection teardown ---------------------------------------------------------------
    def abort(self, request: socket.socket) -> None:
        """Make the coming close send a TCP reset instead of a FIN."""
        request.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        with self._lock:
            self._aborting.add(request)

    def shutdown_request(self, request: Any) -> None:
        with self._lock:
            aborting = request in self._aborting
            self._aborting.discard(request)
        if aborting:
            # shutdown(SHUT_WR) would send a FIN first and spoil the reset.
            self.close_request(request)
        else:
            super().shutdown_request(request)

    def wake_connections(self) -> None:
        """Unblock every handler reading from or writing to a client."""
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            # OSError: already closed by its handler.
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

    def join_handlers(self, deadline: float) -> list[threading.Thread]:
        """Join handler threads until ``deadline`` (monotonic); return those still alive."""
        with self._lock:
            threads = list(self._threads)
        for thread in threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
        return [thread for thread in threads if thread.is_alive()]
