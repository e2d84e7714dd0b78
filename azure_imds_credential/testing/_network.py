"""Loopback endpoints that fail the way an off-Azure host does, for testing fail-fast code:
nothing listening, SYNs dropped, and a server that accepts and never answers. Each one closes
every socket it opened (and joins its thread) when its `with` block ends."""

from __future__ import annotations

import contextlib
import errno
import select
import socket
import threading
from collections.abc import Iterator
from types import TracebackType

LOOPBACK = "127.0.0.1"


def refusing_endpoint() -> str:
    """An endpoint nothing listens on: connecting is refused at once (like a laptop)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
    return f"http://{LOOPBACK}:{port}"


@contextlib.contextmanager
def dropped_syn_endpoint() -> Iterator[str | None]:
    """An endpoint whose connects time out (like 169.254.169.254 off Azure): a listener with
    a full accept queue, whose new SYNs Linux drops. Yields None on hosts where that trick
    does not work (the caller skips), after checking that a plain connect really times out."""
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
            if filler.connect_ex((LOOPBACK, port)) not in (0, errno.EINPROGRESS):
                yield None
                return
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


class SilentServer:
    """Accepts TCP connections and never sends a byte; counts the connections it accepted."""

    def __init__(self) -> None:
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.bind((LOOPBACK, 0))
        self._listener.listen(64)
        self._listener.setblocking(False)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._accepted: list[socket.socket] = []
        self._thread = threading.Thread(target=self._serve, name="silent-server", daemon=True)

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
            except (BlockingIOError, InterruptedError, OSError):
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

    def start(self) -> SilentServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop accepting, then close every socket. Idempotent; `connections` stays readable."""
        if self._thread.is_alive():
            self._stop.set()
            self._thread.join(timeout=2)
        with self._lock:
            for conn in self._accepted:
                conn.close()
        self._listener.close()

    def __enter__(self) -> SilentServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc: BaseException | None = None,
        tb: TracebackType | None = None,
    ) -> None:
        self.stop()
