"""The public face of the emulator: configuration, fault queue, request log, lifecycle."""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any, Protocol, runtime_checkable

from ._faults import Fault, Step
from ._handler import ImdsHandler
from ._imds import TokenFetcher, TokenIssuer
from ._models import Identity, RateLimit, RecordBuilder, RequestRecord
from ._script import FaultPlan
from ._server import TrackingServer

__all__ = ["ImdsEmulator", "SupportsGetToken", "TokenSource"]

logger = logging.getLogger("azure_imds_credential.testing")


@runtime_checkable
class SupportsGetToken(Protocol):
    """What the emulator needs of an azure-core ``TokenCredential``."""

    def get_token(self, *scopes: str, **kwargs: Any) -> Any: ...


# A TokenCredential, or a callable taking one scope and returning an ``AccessToken`` (or
# anything with ``token`` and ``expires_on``, or a ``(token, expires_on)`` pair).
TokenSource = SupportsGetToken | Callable[[str], Any]


def _as_fetcher(source: TokenSource) -> TokenFetcher:
    call: Callable[[str], Any]
    if isinstance(source, SupportsGetToken):
        call = source.get_token
    elif callable(source):
        call = source
    else:
        raise TypeError("token_source must be a TokenCredential or a callable(scope) -> AccessToken")

    def fetch(scope: str) -> tuple[str, int]:
        result = call(scope)
        token, expires_on = getattr(result, "token", None), getattr(result, "expires_on", None)
        if token is None and isinstance(result, tuple) and len(result) == 2:
            token, expires_on = result
        if not isinstance(token, str) or not isinstance(expires_on, (int, float)):
            # The message names the type only: the value may hold a real token.
            raise TypeError(f"token source returned {type(result).__name__}, not an AccessToken")
        return token, int(expires_on)

    return fetch


# stop() must return in under a second even with hung requests; waking them is instant,
# this only bounds the joins in case something is stuck anyway.
_STOP_BUDGET = 0.9


class ImdsEmulator:
    """A loopback HTTP server that answers like IMDS's managed-identity token endpoint.

    Use it as a context manager (``with ImdsEmulator() as imds: ...``) and point the client
    at ``imds.endpoint``. Faults queued with ``push`` sabotage the next token requests;
    ``during`` and ``script`` sabotage them by time (on ``clock``) or by count; ``always``
    is the fallback.

    Keyword arguments:
        identities: the VM's identities (default: a system-assigned one).
        lifetime: seconds a minted token lives. tenant_id: its ``tid``/``iss`` tenant.
        latency: seconds IMDS takes to answer a token request (header-less requests are
            refused at once, as IMDS does).
        rate_limit: ``True`` (IMDS's 20 requests/s and 5 concurrent) or a ``RateLimit``;
            requests beyond it get 429.
        token_source: a ``TokenCredential`` or ``callable(scope)`` whose tokens are handed
            out (for ``resource + "/.default"``) instead of locally minted JWTs.
        on_request: called with each finished request's ``RequestRecord`` (from a server
            thread; it must not block).
        clock: wall-clock seconds; drives expiry, IMDS's cache, time windows and the
            per-second rate limit, so tests can move time without sleeping.
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
        rate_limit: bool | RateLimit = False,
        token_source: TokenSource | None = None,
        on_request: Callable[[RequestRecord], None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if lifetime <= 0:
            raise ValueError("lifetime must be > 0")
        if latency < 0:
            raise ValueError("latency must be >= 0")
        self.rate_limit: RateLimit | None = (
            rate_limit if isinstance(rate_limit, RateLimit) else RateLimit() if rate_limit else None
        )
        self._on_request = on_request
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
        fetch = None if token_source is None else _as_fetcher(token_source)
        self._issuer = TokenIssuer(tenant_id, clock, fetch)

        self._lock = threading.Lock()
        self._plan = FaultPlan()
        # Arrival times (emulator clock) of the admitted requests of the last second.
        self._arrivals: collections.deque[float] = collections.deque()
        self._records: list[RecordBuilder] = []
        self._in_flight_count = 0
        self._max_in_flight = 0

        self._server: TrackingServer | None = None

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> ImdsEmulator:
        """Bind and serve in a daemon thread; returns ``self``."""
        if self._server is not None:
            raise RuntimeError("emulator already started")
        server = TrackingServer((self._host, self._requested_port), ImdsHandler, self)
        self._server = server
        server.start()
        logger.debug("emulator listening on %s", self.endpoint)
        return self

    def stop(self) -> None:
        """Stop serving, drop every connection and join every thread. Idempotent."""
        server, self._server = self._server, None
        if server is None:
            return
        stuck = server.stop(_STOP_BUDGET)
        if stuck:
            logger.warning("emulator: %d thread(s) still alive after stop()", stuck)
        logger.debug("emulator stopped")

    def __enter__(self) -> ImdsEmulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc: BaseException | None = None,
        tb: TracebackType | None = None,
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("emulator not started")
        return int(self._server.server_address[1])

    @property
    def endpoint(self) -> str:
        if self._server is None:
            raise RuntimeError("emulator not started")
        return self._server.url

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
        """Queue faults; each is used by one later token request carrying the header.

        Queued faults come first, before scripts, windows and ``always``.
        """
        with self._lock:
            self._plan.queue.extend(faults)

    def script(self, *steps: Step) -> None:
        """Play ``steps`` one after the other, starting now (by the emulator's clock).

        ``Fault.status(410).for_seconds(16)``, ``Fault.retry_after(429, 2).times(3)``,
        ``Step.ok(times=2)``, ``Fault.hang().forever()``. A step ends after its count or
        its time, whichever comes first; the next starts then. Several scripts may run at
        once: the one added first that is in force decides.
        """
        with self._lock:
            self._plan.add_script(tuple(steps), self._clock())

    def during(self, seconds: float, fault: Fault, *, after: float = 0.0) -> None:
        """Give every token request ``fault`` for ``seconds``, starting ``after`` seconds from now.

        Time is the emulator's ``clock``: with a fake clock, "410 for the first 16 s" passes
        as fast as the client's (fake) sleeps move it.
        """
        if after < 0:
            raise ValueError("after must be >= 0")
        with self._lock:
            self._plan.add_script((Step(fault, seconds=seconds),), self._clock() + after)

    def clear_faults(self) -> None:
        """Forget queued faults, scripts and windows, and switch off the ``always`` fault."""
        with self._lock:
            self._plan.clear()

    def always(self, fault: Fault | None) -> None:
        """Apply ``fault`` to every token request nothing else decides (None: off)."""
        with self._lock:
            self._plan.always = fault

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
        now = self._clock()
        with self._lock:
            return self._plan.take(now)

    def _admit(self) -> bool:
        """Count a token request in; False when IMDS's rate limit refuses it (429).

        Every admitted or refused request must be matched by one ``_leave()``.
        """
        now = self._clock()
        with self._lock:
            concurrent = self._in_flight_count
            self._in_flight_count += 1
            self._max_in_flight = max(self._max_in_flight, self._in_flight_count)
            limit = self.rate_limit
            if limit is None:
                return True
            while self._arrivals and self._arrivals[0] <= now - 1.0:
                self._arrivals.popleft()
            if concurrent >= limit.concurrent or len(self._arrivals) >= limit.per_second:
                return False
            self._arrivals.append(now)
            return True

    def _leave(self) -> None:
        with self._lock:
            self._in_flight_count -= 1

    def _finished(self, builder: RecordBuilder) -> None:
        callback = self._on_request
        if callback is None:
            return
        try:
            callback(builder.freeze())
        except Exception:
            # A broken log sink must not break the emulated IMDS.
            logger.debug("emulator: on_request callback failed", exc_info=True)
