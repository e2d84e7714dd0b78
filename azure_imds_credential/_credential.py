"""ImdsManagedIdentityCredential (sync shell): local cache, single flight, proactive refresh."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any

from azure.core.credentials import AccessToken, AccessTokenInfo, TokenRequestOptions

from . import _forks
from ._client import ImdsClient
from ._clock import Clock
from ._core.refresh import ADVISORY_RETRY_INTERVAL, CachedToken, Freshness, cache_entry
from ._core.request import DEFAULT_API_VERSION, ManagedIdentity, TokenQuery, scopes_to_resource
from ._core.retry import RetryPolicy
from ._core.steps import Sleep as RetryNotice
from ._errors import ImdsError

if TYPE_CHECKING:
    from azure.core.pipeline.transport import HttpTransport

_LOGGER = logging.getLogger("azure_imds_credential")


class _Flight:
    """The one request in progress for a key; other callers wait for how it lands.

    A threading.Event is all a single flight needs (concurrent.futures would add an import).
    """

    __slots__ = ("_done", "_entry", "_error")

    def __init__(self) -> None:
        self._done = threading.Event()
        self._entry: CachedToken | None = None
        self._error: BaseException | None = None

    def land(self, entry: CachedToken) -> None:
        self._entry = entry
        self._done.set()

    def fail(self, error: BaseException) -> None:
        self._error = error
        self._done.set()

    def result(self, timeout: float) -> CachedToken | None:
        """The leader's entry (or its error, raised); None if it has not landed in `timeout` s."""
        if not self._done.wait(timeout):
            return None
        if self._error is not None:
            raise self._error
        assert self._entry is not None
        return self._entry


class ImdsManagedIdentityCredential:
    """Managed-identity tokens from IMDS, for Azure SDK clients (`credential=`) and chains.

    Implements azure-core's `TokenCredential` and `SupportsTokenInfo`.

    Keyword arguments:
        client_id / object_id / msi_res_id: a user-assigned identity (at most one); none
            selects the system-assigned identity.
        endpoint, api_version, connect_timeout, first_answer_timeout, attempt_timeout,
        timeout, transport, retry, on_retry, clock: as for `ImdsClient`. `timeout` (default
        80 s) bounds every call.

    Raises:
        ValueError: two identity selectors, a bad endpoint or timeout.
    """

    def __init__(
        self,
        *,
        client_id: str | None = None,
        object_id: str | None = None,
        msi_res_id: str | None = None,
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
        self._identity = ManagedIdentity(client_id=client_id, object_id=object_id, msi_res_id=msi_res_id)
        self._client = ImdsClient(
            endpoint=endpoint,
            api_version=api_version,
            connect_timeout=connect_timeout,
            first_answer_timeout=first_answer_timeout,
            attempt_timeout=attempt_timeout,
            timeout=timeout,
            transport=transport,
            retry=retry,
            on_retry=on_retry,
            clock=clock,
        )
        self._api_version = api_version
        self._wait_limit = timeout * 2 + 5  # waiters outlive the leader's deadline, never forever
        self._now = time.time if clock is None else clock.time
        # The cache-hit path reads only this: scopes as passed -> entry (no conversion).
        self._by_scopes: dict[tuple[str, ...], CachedToken] = {}
        self._by_resource: dict[str, CachedToken] = {}
        # Single flight: (resource, bypass_cache) -> the one request in progress.
        self._flights: dict[tuple[str, bool], _Flight] = {}
        self._flights_lock = threading.Lock()
        self._advisory_after: dict[str, float] = {}
        _forks.track(self)

    def get_token(
        self,
        *scopes: str,
        claims: str | None = None,
        tenant_id: str | None = None,
        enable_cae: bool = False,
        **kwargs: Any,
    ) -> AccessToken:
        """A token for one scope (`https://x/.default` or a bare resource).

        `claims` (a CAE challenge) skips the local cache and asks IMDS with
        `bypass_cache=true`. `tenant_id`, `enable_cae` and other keywords have no meaning for
        IMDS and are ignored.

        Raises:
            CredentialUnavailableError: not on Azure, not IMDS, or no such identity.
            ImdsError: IMDS kept failing until the deadline.
            ValueError: zero or several scopes.
        """
        if not claims:
            entry = self._by_scopes.get(scopes)
            if entry is not None and self._now() < entry.refresh_on:
                return entry.access
        return self._acquire(scopes, claims).access

    def get_token_info(self, *scopes: str, options: TokenRequestOptions | None = None) -> AccessTokenInfo:
        """Like `get_token`, returning `AccessTokenInfo` with `refresh_on`.

        Raises:
            CredentialUnavailableError, ImdsError, ValueError: as `get_token`.
        """
        claims = options.get("claims") if options else None
        if not claims:
            entry = self._by_scopes.get(scopes)
            if entry is not None and self._now() < entry.refresh_on:
                return entry.info
        return self._acquire(scopes, claims).info

    def _acquire(self, scopes: tuple[str, ...], claims: str | None) -> CachedToken:
        resource = scopes_to_resource(scopes)
        if claims:
            # IMDS takes no claims; bypassing both caches is how to get a token the resource
            # will accept after revoking the old one.
            return self._fetch(resource, scopes, bypass=True)
        entry = self._by_resource.get(resource)
        if entry is not None:
            now = self._now()
            state = entry.freshness(now)
            if state is Freshness.FRESH:
                self._by_scopes[scopes] = entry
                return entry
            if state is Freshness.STALE:
                return self._refresh_early(resource, scopes, entry, now)
        return self._fetch(resource, scopes, bypass=False)

    def _refresh_early(
        self, resource: str, scopes: tuple[str, ...], entry: CachedToken, now: float
    ) -> CachedToken:
        """Advisory refresh: one caller refreshes, everyone else gets the valid token at once;
        a failure keeps the old token and is not retried for 30 s."""
        if now < self._advisory_after.get(resource, 0.0):
            return entry
        key = (resource, False)
        with self._flights_lock:
            if key in self._flights:
                return entry
            flight = _Flight()
            self._flights[key] = flight
        try:
            return self._lead(key, flight, scopes)
        except ImdsError as exc:
            self._advisory_after[resource] = self._now() + ADVISORY_RETRY_INTERVAL
            _LOGGER.info("Proactive token refresh failed; the cached token stays in use: %s", exc.message)
            return entry

    def _fetch(self, resource: str, scopes: tuple[str, ...], *, bypass: bool) -> CachedToken:
        """Mandatory fetch, single flight: the first caller asks IMDS, the others wait for it."""
        key = (resource, bypass)
        with self._flights_lock:
            flight = self._flights.get(key)
            if flight is None:
                # A flight may have landed between the caller's cache check and now.
                entry = self._by_resource.get(resource)
                if not bypass and entry is not None and entry.freshness(self._now()) is not Freshness.EXPIRED:
                    return entry
                leader = _Flight()
                self._flights[key] = leader
        if flight is None:
            return self._lead(key, leader, scopes)
        entry = flight.result(self._wait_limit)
        if entry is None:
            raise ImdsError(
                f"gave up waiting {self._wait_limit:g} s for another caller's IMDS request",
                endpoint=self._client.endpoint,
            )
        return entry

    def _lead(self, key: tuple[str, bool], flight: _Flight, scopes: tuple[str, ...]) -> CachedToken:
        resource, bypass = key
        try:
            token = self._client.request(
                TokenQuery(resource, self._identity, bypass_cache=bypass, api_version=self._api_version)
            )
            entry = cache_entry(token)
            self._by_resource[resource] = entry
            self._by_scopes[scopes] = entry
            self._advisory_after.pop(resource, None)
            flight.land(entry)
            return entry
        except Exception as exc:
            flight.fail(exc)
            raise
        except BaseException:
            # KeyboardInterrupt and the like belong to this thread; waiters get an error.
            flight.fail(ImdsError("the caller fetching this token was interrupted"))
            raise
        finally:
            with self._flights_lock:
                self._flights.pop(key, None)

    def _after_fork_in_child(self) -> None:
        """In a forked child: the leaders of flights in progress were parent threads, which
        do not exist here, and the lock may have been held by one of them."""
        self._flights_lock = threading.Lock()
        self._flights = {}

    def close(self) -> None:
        """Close the transport this credential created."""
        self._client.close()

    def __enter__(self) -> ImdsManagedIdentityCredential:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc: BaseException | None = None,
        tb: TracebackType | None = None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"ImdsManagedIdentityCredential({self._identity.describe()}, endpoint={self._client.endpoint!r})"
        )
