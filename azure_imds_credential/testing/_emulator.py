"""The public face of the emulator: configuration, fault queue, request log, lifecycle."""

from __future__ import annotations

import collections
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from types import TracebackType

from ._faults import Fault
from ._handler import ImdsHandler
from ._imds import TokenIssuer
from ._models import Identity, RecordBuilder, RequestRecord
from ._server import TrackingServer

__all__ = ["ImdsEmulator"]

logger = logging.getLogger("azure_imds_credential.testing")

# stop() must return in under a second even with hung requests; waking them is instant,
# this only bounds the joins in case something is stuck anyway.
_STOP_BUDGET = 0.9


class ImdsEmulator:
    """A loopback HTTP server that answers like IMDS's managed-identity token endpoint.

    Use it as a context manager (``with ImdsEmulator() as imds: ...``) and point the client
    at ``imds.endpoint``. Faults queued with ``push`` sabotage the next token requests.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        identities: Sequence[Identity] | None = None,
        lifetime: float = 3600.0,
        tenant_id: str = "72f988bf-86f1-41af-91ab-2d7cd011db47",
        latency: float = 0.0,
        numbers_as_strings: bool = True,
        content_type: str = "application/json; charset=utf-8",
        clock: Callable[[], float] = time.time,
    ) -> None:
        if lifetime <= 0:
            raise ValueError("lifetime must be > 0")
        if latency < 0:
            raise ValueError("latency must be >= 0")
        self._host = host
        self._requested_port = port
        self.identities: tuple[Identity, ...] = (
            (Identity.system(),) if identities is None else tuple(identities)
        )
        self._lifetime = float(lifetime)
        self.latency = float(latency)
        self._numbers_as_strings = numbers_as_strings
        self._content_type = content_type
        self._clock = clock
        self._issuer = TokenIssuer(tenant_id, clock)

        self._lock = threading.Lock()
        self._faults: collections.deque[Fault] = collections.deque()
        self._always: Fault | None = None
        self._records: list[RecordBuilder] = []
        self._in_flight_count = 0
        self._max_in_flight = 0

        self._server: TrackingServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> ImdsEmulator:
        """Bind and serve in a daemon thread; returns ``self``."""
        if self._server is not None:
            raise RuntimeError("emulator already started")
        server = TrackingServer((self._host, self._requested_port), ImdsHandler, self)
        thread = threading.Thread(target=server.serve_until_stopped, name="imds-emulator-accept", daemon=True)
        self._server, self._thread = server, thread
        thread.start()
        logger.debug("emulator listening on %s", self.endpoint)
        return self

    def stop(self) -> None:
        """Stop serving, drop every connection and join every thread. Idempotent."""
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is None or thread is None:
            return
        deadline = time.monotonic() + _STOP_BUDGET
        server.stopping.set()  # wakes latency/delay/hang waits
        thread.join(timeout=max(0.0, deadline - time.monotonic()))
        server.server_close()  # no new connections
        server.wake_connections()  # unblocks reads/writes of live connections
        stuck = server.join_handlers(deadline)
        if thread.is_alive() or stuck:
            logger.warning("emulator: %d thread(s) still alive after stop()", len(stuck) + thread.is_alive())
        logger.debug("emulator stopped")

    def __enter__(self) -> ImdsEmulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("emulator not started")
        return int(self._server.server_address[1])

    @property
    def endpoint(self) -> str:
        return f"http://{self._host}:{self.port}"

    # -- configuration -----------------------------------------------------------------------
    @property
    def lifetime(self) -> float:
        return self._lifetime

    @lifetime.setter
    def lifetime(self, value: float) -> None:
        if value <= 0:
            raise ValueError("lifetime must be > 0")
        self._lifetime = float(value)
        # A new lifetime is a new configuration: don't keep serving tokens minted under
        # the old one from IMDS's cache.
        self._issuer.clear_cache()

    # -- faults ------------------------------------------------------------------------------
    def push(self, *faults: Fault) -> None:
        """Queue faults; each is used by one later token request carrying the header."""
        with self._lock:
            self._faults.extend(faults)

    def clear_faults(self) -> None:
        """Forget queued faults and switch off the ``always`` fault."""
        with self._lock:
            self._faults.clear()
            self._always = None

    def always(self, fault: Fault | None) -> None:
        """Apply ``fault`` to every token request once the queue is empty (None: off)."""
        with self._lock:
            self._always = fault

    # -- log ---------------------------------------------------------------------------------
    @property
    def requests(self) -> list[RequestRecord]:
        with self._lock:
            builders = list(self._records)
        return [builder.freeze() for builder in builders]

    @property
    def token_requests(self) -> list[RequestRecord]:
        with self._lock:
            builders = [builder for builder in self._records if builder.is_token]
        return [builder.freeze() for builder in builders]

    @property
    def max_in_flight(self) -> int:
        with self._lock:
            return self._max_in_flight

    def reset_log(self) -> None:
        with self._lock:
            self._records.clear()
            # Requests still being handled keep counting after the reset.
            self._max_in_flight = self._in_flight_count

    def issued_tokens(self) -> list[str]:
        return self._issuer.issued()

    # -- used by the handler ---------------------------------------------------------------------
    def _open_record(
        self,
        *,
        method: str,
        path: str,
        query: dict[str, str],
        headers: dict[str, str],
        is_token: bool,
    ) -> RecordBuilder:
        builder = RecordBuilder(
            method=method, path=path, query=query, headers=headers, started=self._clock(), is_token=is_token
        )
        with self._lock:
            self._records.append(builder)
        return builder

    def _take_fault(self) -> Fault | None:
        with self._lock:
            return self._faults.popleft() if self._faults else self._always

    @contextlib.contextmanager
    def _in_flight(self) -> Iterator[None]:
        with self._lock:
            self._in_flight_count += 1
            self._max_in_flight = max(self._max_in_flight, self._in_flight_count)
        try:
            yield
        finally:
            with self._lock:
                self._in_flight_count -= 1
