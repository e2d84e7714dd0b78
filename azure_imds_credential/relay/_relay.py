"""`TokenRelay`: the loopback server that many processes on one VM share instead of IMDS."""

from __future__ import annotations

import ipaddress
import logging
import threading
import time
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from ..testing._server import TrackingServer
from ._broker import TokenBroker
from ._http import RelayHandler

if TYPE_CHECKING:
    from .._clock import Clock

__all__ = ["RelayLimits", "TokenRelay", "is_loopback"]

logger = logging.getLogger("azure_imds_credential.relay")

# stop() returns within about this long even with requests in flight (they are woken).
_STOP_BUDGET = 2.0


@dataclass(frozen=True, slots=True)
class RelayLimits:
    """What one relay accepts.

    `max_request_line` / `max_header_bytes`: a token request is a few hundred bytes; beyond
    these the answer is 414 / 431. `rate` requests per second with bursts of `burst` (all
    paths, all callers together); beyond that the answer is 429 with `Retry-After`. The
    default is far above what cached workers need and far below what would hurt the VM.
    """

    max_request_line: int = 4096
    max_header_bytes: int = 8192
    rate: float = 200.0
    burst: int = 400

    def __post_init__(self) -> None:
        if self.max_request_line < 256 or self.max_header_bytes < 256:
            raise ValueError("request size limits must be at least 256 bytes")
        if not self.rate > 0 or self.burst < 1:
            raise ValueError("rate must be > 0 and burst >= 1")


class _TokenBucket:
    def __init__(self, rate: float, burst: int) -> None:
        self._rate = rate
        self._burst = float(burst)
        self._tokens = float(burst)
        self._last = time.monotonic()
        self._lock = threading.Lock()

    def take(self) -> float | None:
        """None when admitted, else the seconds until a request would be."""
        with self._lock:
            now = time.monotonic()
            self._tokens = min(self._burst, self._tokens + (now - self._last) * self._rate)
            self._last = now
            if self._tokens >= 1.0:
                self._tokens -= 1.0
                return None
            return (1.0 - self._tokens) / self._rate


def is_loopback(host: str) -> bool:
    """Whether binding `host` keeps the relay on this machine."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name: assume it reaches beyond this machine


class TokenRelay:
    """A loopback HTTP server that hands out managed-identity tokens from one shared cache.

    It serves IMDS's own path (`/metadata/identity/oauth2/token`, so any client works through
    `AZURE_POD_IDENTITY_AUTHORITY_HOST`), the REST path `/v1/identity/oauth2/token` and
    `/healthz`. Tokens come from IMDS through `ImdsManagedIdentityCredential` (one per
    identity): a burst of requests for one resource reaches IMDS once.

    Keyword arguments:
        host, port: where to listen (default 127.0.0.1, any free port). A host that is not
            loopback is logged as a WARNING: anyone who can reach it gets tokens.
        endpoint, timeout, connect_timeout, attempt_timeout, clock: the upstream IMDS and the
            credentials' options (see `TokenBroker`).
        limits: `RelayLimits` (request sizes, rate limit).
        broker: a ready `TokenBroker` instead of the options above (it is closed on stop).

    Raises:
        ValueError: bad options.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        endpoint: str | None = None,
        timeout: float = 80.0,
        connect_timeout: float = 1.0,
        attempt_timeout: float = 30.0,
        limits: RelayLimits | None = None,
        clock: Clock | None = None,
        broker: TokenBroker | None = None,
    ) -> None:
        self._host = host
        self._requested_port = port
        self.limits = limits or RelayLimits()
        self.broker = broker or TokenBroker(
            endpoint=endpoint,
            timeout=timeout,
            connect_timeout=connect_timeout,
            attempt_timeout=attempt_timeout,
            clock=clock,
        )
        self.now = time.time if clock is None else clock.time
        self._bucket = _TokenBucket(self.limits.rate, self.limits.burst)
        self._server: TrackingServer | None = None

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> TokenRelay:
        """Bind and serve in a daemon thread; returns `self`.

        Raises:
            OSError: the address cannot be bound.
            ValueError: the upstream endpoint is this relay (it would ask itself forever).
        """
        if self._server is not None:
            raise RuntimeError("relay already started")
        if not is_loopback(self._host):
            logger.warning("relay: binding %r, not loopback: anyone who can reach it gets tokens", self._host)
        server = TrackingServer((self._host, self._requested_port), RelayHandler, self, name="imds-relay")
        self._server = server
        if self._is_self(self.broker.endpoint):
            self.stop()
            raise ValueError(
                f"the upstream IMDS endpoint {self.broker.endpoint} is this relay; pass the real IMDS "
                "(--endpoint http://169.254.169.254) or unset AZURE_POD_IDENTITY_AUTHORITY_HOST"
            )
        server.start()
        logger.debug("relay listening on %s, upstream %s", self.endpoint, self.broker.endpoint)
        return self

    def _is_self(self, upstream: str) -> bool:
        parts = urlsplit(upstream)
        if parts.port != self.port:
            return False
        host = parts.hostname or ""
        return host == self._host or (is_loopback(host) and (is_loopback(self._host) or self._host == ""))

    def stop(self) -> None:
        """Stop serving, drop every connection, join every thread, close the broker. Idempotent."""
        server, self._server = self._server, None
        if server is None:
            return
        stuck = server.stop(_STOP_BUDGET)
        self.broker.close()
        if stuck:
            logger.warning("relay: %d thread(s) still alive after stop()", stuck)
        logger.debug("relay stopped")

    def __enter__(self) -> TokenRelay:
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
            raise RuntimeError("relay not started")
        return int(self._server.server_address[1])

    @property
    def endpoint(self) -> str:
        """The URL for clients (`AZURE_POD_IDENTITY_AUTHORITY_HOST`)."""
        if self._server is None:
            raise RuntimeError("relay not started")
        return self._server.url

    # -- used by the handler -------------------------------------------------------------------
    def admit(self) -> float | None:
        """None when the rate limit admits one more request, else seconds to wait."""
        return self._bucket.take()

    def __repr__(self) -> str:
        where = self.endpoint if self._server is not None else "not started"
        return f"TokenRelay({where}, upstream={self.broker.endpoint!r})"
