"""Loopback-only servers for the failure scenarios; each one is a context manager that
closes every socket and joins its thread on exit."""

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
    """An endpoint nothing listens on: connecting is refused at once."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
    return f"http://{LOOPBACK}:{port}"


@contextlib.contextmanager
def syn_dropping_endpoint() -> Iterator[str | None]:
    """A listener whose accept queue is full, so that Linux drops new SYNs (None elsewhere)."""
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
    """Accepts TCP connections and never sends a byte."""

    def __init__(self) -> None:
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.bind((LOOPBACK, 0))
        self._listener.listen(64)
        self._listener.setblocking(False)
        self._stop = threading.Event()
        self._accepted: list[socket.socket] = []
        self._thread = threading.Thread(target=self._serve, name="bench-silent", daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://{LOOPBACK}:{self._listener.getsockname()[1]}"

    def _serve(self) -> None:
        while not self._stop.is_set():
            readable, _, _ = select.select([self._listener], [], [], 0.05)
            if readable:
                with contextlib.suppress(BlockingIOError, InterruptedError):
                    conn, _ = self._listener.accept()
                    self._accepted.append(conn)

    def __enter__(self) -> SilentServer:
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        for conn in self._accepted:
            conn.close()
        self._listener.close()
