"""What IMDS answers to a well-formed token request: validation, identity choice, cache.

No I/O here: ``TokenIssuer.answer`` maps a parsed query to a status and a JSON body, so the
HTTP layer only has to deliver (or sabotage) it.
"""

from __future__ import annotations

import secrets
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ._jwt import make_jwt
from ._models import Identity

TOKEN_PATH = "/metadata/identity/oauth2/token"
SERVER_HEADER = "IMDS/150.870.65.1325"
API_VERSIONS = frozenset({"2018-02-01", "2018-04-02", "2018-10-01"})
_SELECTORS = ("client_id", "object_id", "msi_res_id")
# IMDS hands back its cached token until it is close to expiry.
_CACHE_MARGIN = 300.0


@dataclass(frozen=True)
class Answer:
    status: int
    body: dict[str, Any]


def error(status: int, code: str, description: str) -> Answer:
    return Answer(status, {"error": code, "error_description": description})


@dataclass(frozen=True)
class _Cached:
    token: str
    expires_on: int
    not_before: int
    lifetime: float


def _whole_seconds(lifetime: float) -> int:
    return max(1, round(lifetime))


def _select(identities: Sequence[Identity], selector: tuple[str, str] | None) -> Identity | None:
    if selector is None:
        # IMDS's default: the system-assigned identity, else the only identity there is.
        system = [i for i in identities if i.system_assigned]
        if system:
            return system[0]
        return identities[0] if len(identities) == 1 else None
    name, wanted = selector
    wanted = wanted.lower()  # GUIDs and ARM ids are case-insensitive
    for identity in identities:
        value = {
            "client_id": identity.client_id,
            "object_id": identity.object_id,
            "msi_res_id": identity.msi_res_id,
        }[name]
        if value is not None and value.lower() == wanted:
            return identity
    return None


# Where tokens come from when they are not minted locally: scope -> (token, expires_on).
TokenFetcher = Callable[[str], "tuple[str, int]"]


class TokenIssuer:
    """Mints (or fetches) tokens and keeps IMDS's own per-(identity, resource, authority) cache."""

    def __init__(self, tenant_id: str, clock: Callable[[], float], fetch: TokenFetcher | None = None) -> None:
        self._tenant_id = tenant_id
        self._clock = clock
        self._fetch = fetch
        self._lock = threading.Lock()
        self._cache: dict[tuple[str, str, str], _Cached] = {}
        self._issued: list[str] = []

    def issued(self) -> list[str]:
        with self._lock:
            return list(self._issued)

    def clear_cache(self) -> None:
        with self._lock:
            self._cache.clear()

    def answer(
        self,
        query: Mapping[str, str],
        identities: Sequence[Identity],
        lifetime: float,
        numbers_as_strings: bool,
    ) -> Answer:
        api_version = query.get("api-version")
        if api_version is None:
            return error(400, "invalid_request", "Required query variable 'api-version' is missing")
        if api_version not in API_VERSIONS:
            return error(400, "invalid_request", "Invalid api version")
        resource = query.get("resource")
        if not resource:
            return error(400, "invalid_request", "Required query variable 'resource' is missing")
        selectors = [(name, query[name]) for name in _SELECTORS if name in query]
        if len(selectors) > 1:
            return error(
                400, "invalid_request", "Only one of client_id, object_id and msi_res_id may be specified"
            )
        identity = _select(identities, selectors[0] if selectors else None)
        if identity is None:
            return error(400, "invalid_request", "Identity not found")

        bypass = query.get("bypass_cache", "").lower() == "true"
        key = (identity.object_id, resource, query.get("authority", ""))
        now = self._clock()
        minted = False
        with self._lock:
            cached = None if bypass else self._cache.get(key)
            if cached is not None and cached.expires_on - now < min(_CACHE_MARGIN, cached.lifetime / 2):
                cached = None  # IMDS renews a token close to expiry
            if cached is None and self._fetch is None:
                # Minting is instant: under the lock, so a concurrent herd gets one token.
                cached, minted = self._store(key, self._mint(identity, resource, lifetime, now)), True
        if cached is None:
            # Outside the lock: a real credential (Azure CLI) can take seconds.
            fetched = self._fetched(resource, now)
            if isinstance(fetched, Answer):
                return fetched
            with self._lock:
                cached = self._store(key, fetched)
        # A fresh token has its whole lifetime; a cached one's remaining life shrinks.
        expires_in = _whole_seconds(lifetime) if minted else max(1, int(cached.expires_on - now))

        def number(value: int) -> str | int:
            return str(value) if numbers_as_strings else value

        return Answer(
            200,
            {
                "access_token": cached.token,
                "refresh_token": "",
                "expires_in": number(expires_in),
                "expires_on": number(cached.expires_on),
                "ext_expires_in": number(expires_in),
                "not_before": number(cached.not_before),
                "resource": resource,
                "token_type": "Bearer",
                "client_id": identity.client_id,
            },
        )

    def _store(self, key: tuple[str, str, str], entry: _Cached) -> _Cached:
        # Called with the lock held, so tokens land in ``_issued`` in handing-out order.
        self._cache[key] = entry
        self._issued.append(entry.token)
        return entry

    def _fetched(self, resource: str, now: float) -> _Cached | Answer:
        assert self._fetch is not None
        try:
            token, expires_on = self._fetch(resource + "/.default")
        except Exception as exc:
            # IMDS passes Entra's failures on as errors. Only the exception's type and first
            # line: enough to see "run az login", and no room for a token.
            first_line = (str(exc).strip().splitlines() or [""])[0][:200]
            return error(500, "token_source_failed", f"{type(exc).__name__}: {first_line}")
        return _Cached(token, int(expires_on), int(now), max(1.0, expires_on - now))

    def _mint(self, identity: Identity, resource: str, lifetime: float, now: float) -> _Cached:
        # Called with the lock held, so tokens land in ``_issued`` in minting order.
        issued_at = int(now)
        # exp - iat is exactly the lifetime, as in the tokens Entra issues.
        expires_on = issued_at + _whole_seconds(lifetime)
        claims: dict[str, Any] = {
            "aud": resource,
            "iss": f"https://sts.windows.net/{self._tenant_id}/",
            "iat": issued_at,
            "nbf": issued_at,
            "exp": expires_on,
            "oid": identity.object_id,
            "sub": identity.object_id,
            "tid": self._tenant_id,
            "appid": identity.client_id,
            "azp": identity.client_id,
            "idtyp": "app",
            "uti": secrets.token_urlsafe(16),
            "jti": str(uuid.uuid4()),
            "ver": "1.0",
        }
        if identity.msi_res_id is not None:
            claims["xms_mirid"] = identity.msi_res_id
        return _Cached(make_jwt(claims), expires_on, issued_at, lifetime)
