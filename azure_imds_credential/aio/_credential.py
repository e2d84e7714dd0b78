"""ImdsManagedIdentityCredential (async shell): local cache, single flight, proactive refresh."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any

from azure.core.credentials import AccessToken, AccessTokenInfo, TokenRequestOptions

from .. import _forks
from .._clock import Clock
from .._core.refresh import ADVISORY_RETRY_INTERVAL, CachedToken, Freshness, cache_entry
from .._core.request import DEFAULT_API_VERSION, ManagedIdentity, TokenQuery, scopes_to_resource
from .._core.retry import RetryPolicy
from .._core.steps import Sleep as RetryNotice
from .._errors import ImdsError
from ._client import ImdsClient

if TYPE_CHECKING:
    from azure.core.pipeline.transport import AsyncHttpTransport

_LOGGER = logging.getLogger("azure_imds_credential")


class ImdsManagedIdentityCredential:
    """Managed-identity tokens from IMDS, for Azure SDK clients (`credential=`) and chains.

    Implements azure-core's `AsyncTokenCredential` and `AsyncSupportsTokenInfo`.

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
        transport: AsyncHttpTransport[Any, Any] | None = None,
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
        self._now = time.time if clock is None else clock.time
        # The cache-hit path reads only this: scopes as passed -> entry (no conversion).
        self._by_scopes: dict[tuple[str, ...], CachedToken] = {}
        self._by_resource: dict[str, CachedToken] = {}
        # Single flight: (resource, bypass_cache) -> the one request in progress, as a task so
        # that a cancelled caller does not cancel it for everyone else.
        self._flights: dict[tuple[str, bool], asyncio.Task[CachedToken]] = {}
        self._advisory_after: dict[str, float] = {}
        _forks.track(self)

    async def get_token(
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
        return (await self._acquire(scopes, claims)).access

    async def get_token_info(
        self, *scopes: str, options: TokenRequestOptions | None = None
    ) -> AccessTokenInfo:
        """Like `get_token`, returning `AccessTokenInfo` with `refresh_on`.

        Raises:
            CredentialUnavailableError, ImdsError, ValueError: as `get_token`.
        """
        claims = options.get("claims") if options else None
        if not claims:
            entry = self._by_scopes.get(scopes)
            if entry is not None and self._now() < entry.refresh_on:
                return entry.info
        return (await self._acquire(scopes, claims)).info

    async def _acquire(self, scopes: tuple[str, ...], claims: str | None) -> CachedToken:
        resource = scopes_to_resource(scopes)
        if claims:
            # IMDS takes no claims; bypassing both caches is how to get a token the resource
            # will accept after revoking the old one.
            return await self._fetch(resource, scopes, bypass=True)
        entry = self._by_resource.get(resource)
        if entry is not None:
            now = self._now()
            state = entry.freshness(now)
            if state is Freshness.FRESH:
                self._by_scopes[scopes] = entry
                return entry
            if state is Freshness.STALE:
                return await self._refresh_early(resource, scopes, entry, now)
        return await self._fetch(resource, scopes, bypass=False)

    async def _refresh_early(
        self, resource: str, scopes: tuple[str, ...], entry: CachedToken, now: float
    ) -> CachedToken:
        """Advisory refresh: one caller refreshes, everyone else gets the valid token at once;
        a failure keeps the old token and is not retried for 30 s."""
        if now < self._advisory_after.get(resource, 0.0):
            return entry
        key = (resource, False)
        if self._current_flight(key) is not None:
            return entry
        flight = self._lead(key, scopes)
        try:
            return await asyncio.shield(flight)
        except ImdsError as exc:
            self._advisory_after[resource] = self._now() + ADVISORY_RETRY_INTERVAL
            _LOGGER.info("Proactive token refresh failed; the cached token stays in use: %s", exc.message)
            return entry

    async def _fetch(self, resource: str, scopes: tuple[str, ...], *, bypass: bool) -> CachedToken:
        """Mandatory fetch, single flight: the first caller asks IMDS, the others wait for it."""
        key = (resource, bypass)
        flight = self._current_flight(key)
        if flight is None:
            flight = self._lead(key, scopes)
        # shield: a caller cancelled while waiting leaves the request running for the others.
        return await asyncio.shield(flight)

    def _current_flight(self, key: tuple[str, bool]) -> asyncio.Task[CachedToken] | None:
        flight = self._flights.get(key)
        # A flight of another (earlier) event loop cannot be awaited from this one.
        if flight is not None and flight.get_loop() is not asyncio.get_running_loop():
            return None
        return flight

    def _lead(self, key: tuple[str, bool], scopes: tuple[str, ...]) -> asyncio.Task[CachedToken]:
        flight = asyncio.ensure_future(self._request(key, scopes))
        self._flights[key] = flight
        flight.add_done_callback(lambda done: self._landed(key, done))
        return flight

    async def _request(self, key: tuple[str, bool], scopes: tuple[str, ...]) -> CachedToken:
        resource, bypass = key
        token = await self._client.request(
            TokenQuery(resource, self._identity, bypass_cache=bypass, api_version=self._api_version)
        )
        entry = cache_entry(token)
        self._by_resource[resource] = entry
        self._by_scopes[scopes] = entry
        self._advisory_after.pop(resource, None)
        return entry

    def _landed(self, key: tuple[str, bool], flight: asyncio.Task[CachedToken]) -> None:
        if self._flights.get(key) is flight:
            del self._flights[key]
        if not flight.cancelled():
            flight.exception()  # retrieved: every caller may have been cancelled meanwhile

    def _after_fork_in_child(self) -> None:
        """In a forked child: flights in progress are tasks of the parent's event loop."""
        self._flights = {}

    async def close(self) -> None:
        """Close the transport this credential created."""
        await self._client.close()

    async def __aenter__(self) -> ImdsManagedIdentityCredential:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc: BaseException | None = None,
        tb: TracebackType | None = None,
    ) -> None:
        await self.close()

    def __repr__(self) -> str:
        return (
            f"ImdsManagedIdentityCredential({self._identity.describe()}, endpoint={self._client.endpoint!r})"
        )
