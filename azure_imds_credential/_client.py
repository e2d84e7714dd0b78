"""The typed low-level IMDS client (sync shell): drives the core's TokenFlow over a transport."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any

from . import _forks
from ._clock import SYSTEM_CLOCK, Clock
from ._core.request import DEFAULT_API_VERSION, ManagedIdentity, TokenQuery
from ._core.retry import RetryPolicy
from ._core.steps import FailureKind, Received, Send, TransportFailure
from ._core.steps import Sleep as RetryNotice
from ._errors import CredentialUnavailableError, ImdsError
from ._settings import Settings, make_settings

if TYPE_CHECKING:
    from azure.core.pipeline.transport import HttpTransport

    from ._core.token import ImdsToken

_LOGGER = logging.getLogger("azure_imds_credential")


class ImdsClient:
    """A typed client for the IMDS token endpoint, with retries, deadline and probe.

    Keyword arguments:
        endpoint: IMDS base URL. Default: `AZURE_POD_IDENTITY_AUTHORITY_HOST` when set (read
            now), else http://169.254.169.254.
        api_version: the default `api-version` (2018-02-01, like every public client).
        connect_timeout: seconds to connect (IMDS is link-local; 1 s means dropped packets).
        first_answer_timeout: before IMDS has answered in this process, how long to wait for
            an answer before probing whether the endpoint is IMDS at all.
        attempt_timeout: seconds to wait for one answer from a known IMDS.
        timeout: the overall deadline of one call, retries included (default 80 s: a 410
            while IMDS updates lasts up to 70 s).
        transport: any azure-core `HttpTransport`; default: for an http:// endpoint (IMDS)
            an azure-core transport over the standard library's http.client, for https://
            azure-core's RequestsTransport; proxies ignored either way.
        retry: a `RetryPolicy` to change the retry schedule.
        on_retry: called before each wait between attempts with a `RetryNotice` (what IMDS
            answered, the delay, attempt number, time elapsed): for progress displays.
        clock: time, sleep and randomness (for tests).

    Raises:
        ValueError / TypeError: bad options.
    """

    def __init__(
        self,
        *,
        endpoint: str | None = None,
        api_version: str = DEFAULT_API_VERSION,
        connect_timeout: float = 1.0,
        first_answer_timeout: float = 2.0,
        attempt_timeout: float = 30.0,
        timeout: float = 80.0,
        transport: HttpTransport[Any, Any] | None = None,
        retry: RetryPolicy | None = None,
        on_retry: Callable[[RetryNotice], None] | None = None,
        clock: Clock | None = None,
    ) -> None:
        self._on_retry = on_retry
        self._settings: Settings = make_settings(
            endpoint=endpoint,
            api_version=api_version,
            connect_timeout=connect_timeout,
            first_answer_timeout=first_answer_timeout,
            attempt_timeout=attempt_timeout,
            timeout=timeout,
            retry=retry,
        )
        self._clock = clock or SYSTEM_CLOCK
        self._transport = transport
        self._owns_transport = transport is None
        self._transport_lock = threading.Lock()
        # IMDS allows 5 concurrent managed-identity requests per VM.
        self._slots = threading.BoundedSemaphore(self._settings.max_concurrency)
        _forks.track(self)

    @property
    def endpoint(self) -> str:
        """The IMDS base URL this client talks to."""
        return self._settings.endpoint

    def get_token(
        self,
        resource: str,
        *,
        client_id: str | None = None,
        object_id: str | None = None,
        msi_res_id: str | None = None,
        authority: str | None = None,
        bypass_cache: bool = False,
        api_version: str | None = None,
    ) -> ImdsToken:
        """Ask IMDS for a token for `resource` (no local caching: see the credential for that).

        Raises:
            CredentialUnavailableError: IMDS is not reachable, is not IMDS, or has no such
                identity (a credential chain moves on).
            ImdsError: IMDS kept failing until the deadline, or refused the request.
            ValueError / TypeError: bad arguments (for example two identity selectors).
        """
        query = TokenQuery(
            resource=resource,
            identity=ManagedIdentity(client_id=client_id, object_id=object_id, msi_res_id=msi_res_id),
            authority=authority,
            bypass_cache=bypass_cache,
            api_version=api_version or self._settings.api_version,
        )
        return self.request(query)

    def request(self, query: TokenQuery) -> ImdsToken:
        """Run one acquisition for a prepared `TokenQuery`."""
        # The flow machinery loads on the first request: importing the package stays light.
        from . import _presence
        from ._core.flow import TokenFlow

        settings, clock = self._settings, self._clock
        flow = TokenFlow(
            endpoint=settings.endpoint,
            query=query,
            timeouts=settings.timeouts,
            retry=settings.retry,
            start=clock.monotonic(),
            random=clock.random,
            imds_seen=_presence.seen(settings.endpoint),
        )
        steps = flow.run()
        try:
            step = next(steps)
            while True:
                if isinstance(step, Send):
                    got = self._send(step)
                else:
                    _LOGGER.debug(
                        "IMDS attempt %d: %s; retrying in %.2f s (%.2f s elapsed)",
                        step.attempt,
                        step.reason,
                        step.seconds,
                        step.elapsed,
                    )
                    if self._on_retry is not None:
                        self._on_retry(step)
                    clock.sleep(step.seconds)
                    got = Received(None, clock.monotonic())
                step = steps.send(got)
        except StopIteration as done:
            token: ImdsToken = done.value
            _LOGGER.debug("IMDS token for %s after %d attempt(s)", query.resource, flow.attempts)
            return token
        except CredentialUnavailableError as exc:
            _LOGGER.debug("IMDS unavailable: %s", exc.message)
            raise
        except ImdsError as exc:
            _LOGGER.warning("Giving up on IMDS: %s", exc.message)
            raise
        finally:
            steps.close()
            if flow.imds_seen:
                _presence.mark_seen(settings.endpoint)

    def _send(self, step: Send) -> Received:
        clock = self._clock
        sent_at = clock.time()
        if not self._slots.acquire(timeout=step.connect_timeout + step.read_timeout):
            busy = TransportFailure(FailureKind.READ_TIMEOUT, "all IMDS request slots stayed busy")
            return Received(busy, clock.monotonic(), sent_at)
        from ._transport import exchange  # loaded with the first request, like the transport

        try:
            result = exchange(self._get_transport(), step, self._settings.max_response_bytes, clock.monotonic)
        finally:
            self._slots.release()
        _LOGGER.debug(
            "IMDS %s: %s",
            "probe" if step.probe else "request",
            getattr(result, "status", None) or getattr(result, "kind", None),
        )
        return Received(result, clock.monotonic(), sent_at)

    def _get_transport(self) -> HttpTransport[Any, Any]:
        transport = self._transport
        if transport is None:
            with self._transport_lock:
                if self._transport is None:
                    from ._transport import default_transport

                    self._transport = default_transport(self._settings.endpoint)
                transport = self._transport
        return transport

    def _after_fork_in_child(self) -> None:
        """In a forked child: parent threads may hold these locks, and pooled connections
        share the parent's sockets."""
        self._transport_lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(self._settings.max_concurrency)
        if self._owns_transport:
            self._transport = None

    def close(self) -> None:
        """Close the transport this client created (a transport passed in stays the caller's)."""
        with self._transport_lock:
            transport, self._transport = (
                self._transport,
                (None if self._owns_transport else self._transport),
            )
        if transport is not None and self._owns_transport:
            transport.close()

    def __enter__(self) -> ImdsClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc: BaseException | None = None,
        tb: TracebackType | None = None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"ImdsClient(endpoint={self._settings.endpoint!r})"
