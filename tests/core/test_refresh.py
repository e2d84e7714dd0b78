"""Refresh timing and the token types handed to azure-core."""

from __future__ import annotations

import pytest

from azure_imds_credential._core.refresh import Freshness, cache_entry, refresh_time
from azure_imds_credential._core.token import ImdsToken

NOW = 1_700_000_000


def token(lifetime: int) -> ImdsToken:
    return ImdsToken(
        access_token="secret-token",
        expires_in=lifetime,
        expires_on=NOW + lifetime + 3600,  # skewed server clock: must not be used
        local_expires_on=NOW + lifetime,
        resource="https://x",
        requested_at=NOW,
    )


@pytest.mark.parametrize(
    ("lifetime", "refresh_after"),
    [
        (24 * 3600, 12 * 3600),  # >= 2 h: half-life
        (2 * 3600, 3600),
        (3599, 3299),  # < 2 h: 5 min before expiry
        (600, 300),
        (400, 200),  # short-lived: never before half-life
        (4, 2),
    ],
)
def test_refresh_time_follows_msal_rule_when_lifetime_is(lifetime: int, refresh_after: int) -> None:
    assert refresh_time(NOW, lifetime) == NOW + refresh_after


def test_cache_entry_uses_local_expiry_when_server_clock_skewed() -> None:
    entry = cache_entry(token(3599))
    assert entry.access.expires_on == NOW + 3599
    assert entry.info.expires_on == NOW + 3599
    assert entry.info.refresh_on == NOW + 3299
    assert entry.info.token_type == "Bearer"


def test_cache_entry_freshness_moves_fresh_stale_expired_when_time_passes() -> None:
    entry = cache_entry(token(3599))
    assert entry.freshness(NOW + 100) is Freshness.FRESH
    assert entry.freshness(NOW + 3300) is Freshness.STALE
    assert entry.freshness(NOW + 3570) is Freshness.EXPIRED
    assert entry.freshness(NOW + 5000) is Freshness.EXPIRED


def test_cache_entry_hides_token_from_repr_of_azure_core_types() -> None:
    entry = cache_entry(token(3599))
    for obj in (entry, entry.access, entry.info):
        assert "secret-token" not in repr(obj)
    assert entry.access.token == "secret-token" and entry.info.token == "secret-token"
    token_value, expires_on = entry.access  # still azure-core's NamedTuple
    assert (token_value, expires_on) == ("secret-token", NOW + 3599)
