"""When a cached token is fresh, due for a proactive refresh, or unusable (IMDS.md, "Tokens")."""

from __future__ import annotations

import enum

from azure.core.credentials import AccessToken, AccessTokenInfo

from .steps import Record
from .token import ImdsToken

# A failed proactive refresh is not tried again sooner than this (the old token still works).
ADVISORY_RETRY_INTERVAL = 30.0
# Tokens living at least this long refresh at half-life (MSAL's rule); shorter ones 5 min early.
_HALF_LIFE_FROM = 2 * 3600
_REFRESH_BEFORE = 300
# A token this close to expiry is not handed out: it could expire in flight.
_MAX_EXPIRY_MARGIN = 30.0


class Freshness(enum.Enum):
    FRESH = "fresh"  # serve it
    STALE = "stale"  # serve it; one caller refreshes (advisory)
    EXPIRED = "expired"  # callers wait for a new one (mandatory)


class SafeAccessToken(AccessToken):
    """azure-core's AccessToken whose repr does not print the token."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"AccessToken(token='***', expires_on={self.expires_on})"


class SafeAccessTokenInfo(AccessTokenInfo):
    """azure-core's AccessTokenInfo whose repr does not print the token."""

    def __repr__(self) -> str:
        return (
            f"AccessTokenInfo(token='***', expires_on={self.expires_on}, "
            f"token_type='{self.token_type}', refresh_on={self.refresh_on})"
        )


class CachedToken(Record):
    """A token ready to hand out: both azure-core shapes are built once, so a cache hit
    allocates nothing."""

    __slots__ = ("access", "info", "refresh_on", "usable_until")
    _hidden = frozenset({"access", "info"})
    access: AccessToken
    info: AccessTokenInfo
    refresh_on: int
    usable_until: float

    def __init__(
        self, access: AccessToken, info: AccessTokenInfo, refresh_on: int, usable_until: float
    ) -> None:
        self._init(access=access, info=info, refresh_on=refresh_on, usable_until=usable_until)

    def freshness(self, now: float) -> Freshness:
        if now < self.refresh_on:
            return Freshness.FRESH
        if now < self.usable_until:
            return Freshness.STALE
        return Freshness.EXPIRED


def refresh_time(issued: float, lifetime: int) -> int:
    """Half-life for tokens of 2 h or more; otherwise 5 min before expiry, but never earlier
    than half-life (so a short-lived token is not refreshed on every call)."""
    if lifetime >= _HALF_LIFE_FROM:
        return int(issued + lifetime / 2)
    return int(issued + max(lifetime - _REFRESH_BEFORE, lifetime / 2))


def cache_entry(token: ImdsToken) -> CachedToken:
    """Expiry comes from `expires_in` against the local clock at request time (no skew)."""
    expires_on = token.local_expires_on
    issued = expires_on - token.expires_in
    refresh_on = refresh_time(issued, token.expires_in)
    return CachedToken(
        access=SafeAccessToken(token.access_token, expires_on),
        info=SafeAccessTokenInfo(
            token.access_token, expires_on, token_type=token.token_type, refresh_on=refresh_on
        ),
        refresh_on=refresh_on,
        usable_until=expires_on - min(_MAX_EXPIRY_MARGIN, token.expires_in / 10),
    )
