"""Tokens for many callers from one cache: a credential per identity, errors in IMDS's shape.

The broker is the relay's core and has no HTTP in it: the HTTP handler and the MCP tool both
call `TokenBroker.get` and turn a `RelayError` into their own kind of error answer.

Caching, single flight, proactive refresh and retries are the credential's
(`ImdsManagedIdentityCredential`): the broker keeps one credential per (identity, authority)
and never a second cache of its own. It only remembers, per key, the expiry of the last token
it handed out, for `/healthz`.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from .._client import ImdsClient
from .._core.redact import redact
from .._core.request import ManagedIdentity, scopes_to_resource
from .._credential import ImdsManagedIdentityCredential
from .._errors import CredentialUnavailableError, ImdsError

if TYPE_CHECKING:
    from azure.core.pipeline.transport import HttpTransport
    from azure.core.rest import HttpRequest

    from .._clock import Clock

__all__ = ["RelayError", "RelayedToken", "TokenBroker", "TokenRequest", "token_claims"]

logger = logging.getLogger("azure_imds_credential.relay")

_SELECTORS = ("client_id", "object_id", "msi_res_id")
# A non-empty `claims` makes the credential skip its cache and send IMDS bypass_cache=true
# (its documented CAE path); the value itself never leaves the process.
_BYPASS_CLAIMS = "{}"
# /healthz probes IMDS at most this often: a health checker polling every second must not
# add to IMDS's 20 requests/s.
_PROBE_EVERY = 5.0
_PROBE_CONNECT_TIMEOUT = 1.0
_PROBE_ANSWER_TIMEOUT = 1.0
_PROBE_RESOURCE = "https://management.azure.com/"


class RelayError(Exception):
    """A token request the relay answers with an IMDS-style error.

    `status` is the HTTP status IMDS would use; `code` and `description` fill IMDS's JSON
    error (`{"error": code, "error_description": description}`). Never carries a token.
    """

    def __init__(self, status: int, code: str, description: str, *, retry_after: float | None = None) -> None:
        super().__init__(f"HTTP {status} {code}: {description}")
        self.status = status
        self.code = code
        self.description = description
        self.retry_after = retry_after

    def body(self) -> dict[str, str]:
        return {"error": self.code, "error_description": self.description}


def _bad_request(description: str) -> RelayError:
    return RelayError(400, "invalid_request", description)


def _flag(value: str | None, name: str) -> bool:
    if value is None or value.lower() == "false":
        return False
    if value.lower() == "true":
        return True
    raise _bad_request(f"Query variable '{name}' must be true or false")


@dataclass(frozen=True, slots=True)
class TokenRequest:
    """What a caller asks for: the IMDS query parameters, validated."""

    resource: str
    identity: ManagedIdentity = field(default_factory=ManagedIdentity)
    authority: str | None = None
    bypass_cache: bool = False

    @classmethod
    def build(
        cls,
        *,
        resource: str | None = None,
        scope: str | None = None,
        client_id: str | None = None,
        object_id: str | None = None,
        msi_res_id: str | None = None,
        authority: str | None = None,
        bypass_cache: bool = False,
    ) -> TokenRequest:
        """Validate the parameters; raises `RelayError` 400 invalid_request, as IMDS does."""
        if resource and scope:
            raise _bad_request("Specify only one of 'resource' and 'scope'")
        if scope:
            try:
                resource = scopes_to_resource([scope])
            except ValueError as exc:
                raise _bad_request(str(exc)) from exc
        if not resource or not resource.strip():
            raise _bad_request("Required query variable 'resource' is missing")
        if any(c.isspace() for c in resource):
            raise _bad_request("Query variable 'resource' must not contain spaces")
        selectors = {"client_id": client_id, "object_id": object_id, "msi_res_id": msi_res_id}
        if sum(value is not None for value in selectors.values()) > 1:
            raise _bad_request("Only one of client_id, object_id and msi_res_id may be specified")
        if authority is not None and not authority.strip():
            raise _bad_request("Query variable 'authority' must not be empty")
        try:
            identity = ManagedIdentity(client_id=client_id, object_id=object_id, msi_res_id=msi_res_id)
        except ValueError as exc:
            raise _bad_request(str(exc)) from exc
        return cls(resource, identity, authority, bypass_cache)

    @classmethod
    def from_query(cls, query: Mapping[str, str], *, allow_scope: bool = False) -> TokenRequest:
        """From IMDS's query parameters (plus `scope` on the REST path)."""
        if "scope" in query and not allow_scope:
            raise _bad_request("Unknown query variable 'scope'; use 'resource'")
        return cls.build(
            resource=query.get("resource"),
            scope=query.get("scope") if allow_scope else None,
            client_id=query.get("client_id"),
            object_id=query.get("object_id"),
            msi_res_id=query.get("msi_res_id"),
            authority=query.get("authority"),
            bypass_cache=_flag(query.get("bypass_cache"), "bypass_cache"),
        )


@dataclass(frozen=True, slots=True)
class RelayedToken:
    """A token as the relay hands it out. `repr` never shows the token."""

    access_token: str = field(repr=False)
    expires_on: int
    resource: str
    token_type: str = "Bearer"
    client_id: str | None = None
    not_before: int | None = None

    def expires_in(self, now: float) -> int:
        return max(0, int(self.expires_on - now))

    def imds_body(self, now: float) -> dict[str, str]:
        """IMDS's 200 JSON: every primitive a string."""
        expires_in = str(self.expires_in(now))
        body = {
            "access_token": self.access_token,
            "refresh_token": "",
            "expires_in": expires_in,
            "expires_on": str(self.expires_on),
            "ext_expires_in": expires_in,
            "resource": self.resource,
            "token_type": self.token_type,
        }
        if self.not_before is not None:
            body["not_before"] = str(self.not_before)
        if self.client_id is not None:
            body["client_id"] = self.client_id
        return body


def token_claims(token: str) -> dict[str, Any] | None:
    """The payload of a JWT, unverified; None when the token is not a JWT (never raises)."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    return claims if isinstance(claims, dict) else None


def _int_claim(claims: Mapping[str, Any] | None, name: str) -> int | None:
    value = None if claims is None else claims.get(name)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


class _AuthorityTransport:
    """Adds `authority=...` to every request of a credential.

    The credential does not send IMDS's optional `authority` parameter; wrapping its transport
    lets a credential per (identity, authority) keep the credential's cache and single flight.
    """

    def __init__(self, inner: HttpTransport[Any, Any], authority: str) -> None:
        self._inner = inner
        self._suffix = urlencode({"authority": authority})

    def send(self, request: HttpRequest, **kwargs: Any) -> Any:
        request.url = f"{request.url}{'&' if '?' in request.url else '?'}{self._suffix}"
        return self._inner.send(request, **kwargs)

    def open(self) -> None:
        self._inner.open()

    def close(self) -> None:
        self._inner.close()

    def __enter__(self) -> _AuthorityTransport:
        self._inner.__enter__()
        return self

    def __exit__(self, *args: Any) -> None:
        self._inner.__exit__(*args)


_Key = tuple[ManagedIdentity, "str | None"]


@dataclass(slots=True)
class _Handed:
    """The last token handed out for one key (for /healthz and to decode claims once)."""

    access_token: str = field(repr=False)
    expires_on: int
    refresh_on: int | None
    client_id: str | None
    not_before: int | None


class TokenBroker:
    """Tokens for many callers through one `ImdsManagedIdentityCredential` per identity.

    Keyword arguments:
        endpoint: the upstream IMDS (default: `AZURE_POD_IDENTITY_AUTHORITY_HOST` when set,
            else http://169.254.169.254), read now.
        timeout: the deadline of one upstream acquisition, retries included (default 80 s).
        connect_timeout, attempt_timeout: as for the credential.
        clock: time, sleep and randomness for the credentials (tests).

    Raises:
        ValueError: a bad endpoint or timeout.
    """

    def __init__(
        self,
        *,
        endpoint: str | None = None,
        timeout: float = 80.0,
        connect_timeout: float = 1.0,
        attempt_timeout: float = 30.0,
        clock: Clock | None = None,
    ) -> None:
        self._options: dict[str, Any] = {
            "timeout": timeout,
            "connect_timeout": connect_timeout,
            "attempt_timeout": attempt_timeout,
            "clock": clock,
        }
        # Resolve (and validate) the endpoint once, so every credential uses the same one.
        self.endpoint = ImdsClient(endpoint=endpoint, **self._options).endpoint
        self._now = time.time if clock is None else clock.time
        self._lock = threading.Lock()
        self._credentials: dict[_Key, ImdsManagedIdentityCredential] = {}
        self._transports: list[_AuthorityTransport] = []
        self._handed: dict[tuple[ManagedIdentity, str | None, str], _Handed] = {}
        self._probe_lock = threading.Lock()
        self._probe: dict[str, Any] | None = None
        self._probed_at = float("-inf")
        self._closed = False

    def _credential(self, identity: ManagedIdentity, authority: str | None) -> ImdsManagedIdentityCredential:
        key = (identity, authority)
        credential = self._credentials.get(key)
        if credential is not None:
            return credential
        with self._lock:
            if self._closed:
                raise RelayError(503, "service_unavailable", "The relay is stopping")
            credential = self._credentials.get(key)
            if credential is None:
                transport = None
                if authority is not None:
                    from .._transport import default_transport

                    transport = _AuthorityTransport(default_transport(self.endpoint), authority)
                    self._transports.append(transport)
                credential = ImdsManagedIdentityCredential(
                    client_id=identity.client_id,
                    object_id=identity.object_id,
                    msi_res_id=identity.msi_res_id,
                    endpoint=self.endpoint,
                    transport=transport,  # type: ignore[arg-type]
                    **self._options,
                )
                self._credentials[key] = credential
        return credential

    def get(self, request: TokenRequest) -> RelayedToken:
        """A token for `request`: from the cache, or from IMDS once for all concurrent callers.

        Raises:
            RelayError: what to answer instead, with the status IMDS would use.
        """
        credential = self._credential(request.identity, request.authority)
        options: Any = {"claims": _BYPASS_CLAIMS} if request.bypass_cache else None
        try:
            info = credential.get_token_info(request.resource, options=options)
        except CredentialUnavailableError as exc:
            # No IMDS or no such identity upstream: IMDS's own answer for a missing identity.
            raise RelayError(400, "invalid_request", _describe(exc)) from exc
        except ImdsError as exc:
            # IMDS is there and kept failing: pass its last status on (or 503 without one),
            # so the caller's client classifies it as it would classify IMDS.
            status = exc.status if exc.status is not None and 400 <= exc.status <= 599 else 503
            code = exc.error_code or ("service_unavailable" if status == 503 else "upstream_error")
            raise RelayError(status, code, _describe(exc)) from exc
        except ValueError as exc:
            raise _bad_request(redact(str(exc))) from exc
        key = (request.identity, request.authority, request.resource)
        handed = self._handed.get(key)
        if handed is None or handed.access_token != info.token:
            claims = token_claims(info.token)
            appid = None if claims is None else claims.get("appid") or claims.get("azp")
            handed = _Handed(
                access_token=info.token,
                expires_on=int(info.expires_on),
                refresh_on=None if info.refresh_on is None else int(info.refresh_on),
                client_id=request.identity.client_id or (appid if isinstance(appid, str) else None),
                not_before=_int_claim(claims, "nbf"),
            )
            with self._lock:
                self._handed[key] = handed
        return RelayedToken(
            access_token=info.token,
            expires_on=int(info.expires_on),
            resource=request.resource,
            token_type=info.token_type,
            client_id=handed.client_id,
            not_before=handed.not_before,
        )

    # -- health ------------------------------------------------------------------------------
    def health(self) -> dict[str, Any]:
        """Whether IMDS is reachable and what is cached (resources and lifetimes; no tokens)."""
        now = self._now()
        entries = []
        with self._lock:
            handed_out = list(self._handed.items())
        for (identity, authority, resource), handed in sorted(
            handed_out, key=lambda item: (item[0][0].describe(), item[0][1] or "", item[0][2])
        ):
            if handed.expires_on <= now:
                continue
            entry: dict[str, Any] = {
                "resource": resource,
                "identity": identity.describe(),
                "expires_in": int(handed.expires_on - now),
            }
            if handed.refresh_on is not None:
                entry["refresh_in"] = max(0, int(handed.refresh_on - now))
            if authority is not None:
                entry["authority"] = authority
            entries.append(entry)
        imds = self._reachability()
        return {
            "status": "ok" if imds["reachable"] else "unavailable",
            "imds": imds,
            "cache": {"tokens": len(entries), "entries": entries},
        }

    def _reachability(self) -> dict[str, Any]:
        """One header-less GET upstream, at most every 5 s: any HTTP answer means IMDS is there
        (it refuses such requests with 400 at once); no answer means it is not."""
        if time.monotonic() - self._probed_at < _PROBE_EVERY and self._probe is not None:
            return self._probe
        if not self._probe_lock.acquire(blocking=False):
            # Another health check is probing: answer with what is known.
            return self._probe or {"endpoint": self.endpoint, "reachable": False, "detail": "probing"}
        try:
            self._probe = self._probe_once()
            self._probed_at = time.monotonic()
            return self._probe
        finally:
            self._probe_lock.release()

    def _probe_once(self) -> dict[str, Any]:
        from .._core.request import TokenQuery, token_url
        from .._core.steps import HttpAnswer, Send
        from .._settings import MAX_RESPONSE_BYTES
        from .._transport import default_transport, exchange

        step = Send(
            token_url(self.endpoint, TokenQuery(resource=_PROBE_RESOURCE)),
            {},
            _PROBE_CONNECT_TIMEOUT,
            _PROBE_ANSWER_TIMEOUT,
            probe=True,
        )
        transport = default_transport(self.endpoint)
        try:
            result = exchange(transport, step, MAX_RESPONSE_BYTES, time.monotonic)
        finally:
            transport.close()
        if isinstance(result, HttpAnswer):
            return {"endpoint": self.endpoint, "reachable": True, "detail": f"HTTP {result.status}"}
        return {"endpoint": self.endpoint, "reachable": False, "detail": result.kind.value}

    def close(self) -> None:
        """Close every credential and transport. Later `get` calls answer 503."""
        with self._lock:
            self._closed = True
            credentials, self._credentials = list(self._credentials.values()), {}
            transports, self._transports = self._transports, []
        for credential in credentials:
            credential.close()
        for transport in transports:
            transport.close()


def _describe(exc: ImdsError) -> str:
    """IMDS's own description when there is one, else ours; both pass through redaction."""
    return redact(exc.error_description or exc.message)
