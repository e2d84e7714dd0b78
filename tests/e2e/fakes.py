"""Loopback stand-ins for the end-to-end tests: an HTTPS server with scripted answers, spy and
wrong-audience credentials, and a fake `az` for AzureCliCredential.

Everything binds 127.0.0.1 only and is stopped by its context manager.
"""

from __future__ import annotations

import base64
import json
import os
import ssl
import stat
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any

from azure.core.credentials import AccessToken, AccessTokenInfo, TokenRequestOptions
from typing_extensions import Self

from tests.e2e.azurite import LOOPBACK, Tls

STORAGE_SCOPE = "https://storage.azure.com/.default"
VAULT_SCOPE = "https://vault.azure.net/.default"
FAKE_AZ = Path(__file__).with_name("fake_az.py")


def bearer_token(authorization: str | None) -> str | None:
    if authorization is None or not authorization.startswith("Bearer "):
        return None
    return authorization[len("Bearer ") :]


def claims_challenge(claims: dict[str, Any]) -> str:
    """A CAE `WWW-Authenticate` value: `insufficient_claims` with base64url claims."""
    encoded = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    return (
        'Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize", '
        f'error="insufficient_claims", claims="{encoded}"'
    )


# -- a loopback HTTPS server ----------------------------------------------------------------


@dataclass(frozen=True)
class Seen:
    """One request the server received."""

    method: str
    path: str
    authorization: str | None

    @property
    def token(self) -> str | None:
        return bearer_token(self.authorization)


@dataclass(frozen=True)
class Reply:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


Responder = Callable[[Seen], Reply]


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        seen = Seen(self.command, self.path, self.headers.get("Authorization"))
        with self.server.lock:
            self.server.seen.append(seen)
        reply = self.server.responder(seen)
        self.send_response(reply.status)
        headers = {"Content-Type": "application/json", **reply.headers}
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(reply.body)))
        self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(reply.body)
        self.close_connection = True

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _answer

    def log_message(self, format: str, *args: Any) -> None:
        """Silent."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, responder: Responder, context: ssl.SSLContext) -> None:
        super().__init__((LOOPBACK, 0), _Handler)
        self.responder = responder
        self.lock = threading.Lock()
        self.seen: list[Seen] = []
        self.socket = context.wrap_socket(self.socket, server_side=True)


class LoopbackHttps:
    """An HTTPS server on 127.0.0.1 (certificate from `tls`) that records every request and
    answers with `responder(seen)`."""

    def __init__(self, tls: Tls, responder: Responder) -> None:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(str(tls.cert_pem), str(tls.key_pem))
        self._server = _Server(responder, context)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"https://{LOOPBACK}:{self._server.server_address[1]}"

    @property
    def seen(self) -> list[Seen]:
        with self._server.lock:
            return list(self._server.seen)

    def __enter__(self) -> LoopbackHttps:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        self._thread.join(timeout=5)
        self._server.server_close()


class Scripted:
    """A responder that plays queued replies in order, then answers 200 `{}`."""

    def __init__(self, *replies: Reply) -> None:
        self._replies = list(replies)
        self._lock = threading.Lock()

    def __call__(self, seen: Seen) -> Reply:
        with self._lock:
            if self._replies:
                return self._replies.pop(0)
        return Reply(200, body=b"{}")


# -- credentials ----------------------------------------------------------------------------


class SpyCredential:
    """Delegates to a sync credential and counts which protocol method the caller used."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.calls: list[tuple[str, str | None]] = []  # (method, claims)

    def get_token(
        self,
        *scopes: str,
        claims: str | None = None,
        tenant_id: str | None = None,
        enable_cae: bool = False,
        **kwargs: Any,
    ) -> AccessToken:
        self.calls.append(("get_token", claims))
        token: AccessToken = self.inner.get_token(*scopes, claims=claims, tenant_id=tenant_id, **kwargs)
        return token

    def get_token_info(self, *scopes: str, options: TokenRequestOptions | None = None) -> AccessTokenInfo:
        self.calls.append(("get_token_info", (options or {}).get("claims")))
        info: AccessTokenInfo = self.inner.get_token_info(*scopes, options=options)
        return info

    def close(self) -> None:
        self.inner.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *args: object) -> None:
        self.close()


class AsyncSpyCredential:
    """The async twin of `SpyCredential`."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.calls: list[tuple[str, str | None]] = []

    async def get_token(
        self,
        *scopes: str,
        claims: str | None = None,
        tenant_id: str | None = None,
        enable_cae: bool = False,
        **kwargs: Any,
    ) -> AccessToken:
        self.calls.append(("get_token", claims))
        token: AccessToken = await self.inner.get_token(*scopes, claims=claims, tenant_id=tenant_id, **kwargs)
        return token

    async def get_token_info(
        self, *scopes: str, options: TokenRequestOptions | None = None
    ) -> AccessTokenInfo:
        self.calls.append(("get_token_info", (options or {}).get("claims")))
        info: AccessTokenInfo = await self.inner.get_token_info(*scopes, options=options)
        return info

    async def close(self) -> None:
        await self.inner.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *args: object) -> None:
        await self.close()


class WrongAudience:
    """Asks the wrapped credential for a Key Vault token whatever scope the client wants: a
    token Azurite must refuse (negative control of its bearer check)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        token: AccessToken = self.inner.get_token(VAULT_SCOPE)
        return token

    def close(self) -> None:
        self.inner.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *args: object) -> None:
        self.close()


class AsyncWrongAudience:
    """The async twin of `WrongAudience`."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    async def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        token: AccessToken = await self.inner.get_token(VAULT_SCOPE)
        return token

    async def close(self) -> None:
        await self.inner.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *args: object) -> None:
        await self.close()


# -- a fake Azure CLI -----------------------------------------------------------------------


def install_fake_az(directory: Path, log: Path) -> Path:
    """Write an `az` executable into `directory` that runs fake_az.py with this interpreter
    (it logs each call to `log` and prints a developer token); returns the directory, for PATH."""
    directory.mkdir(parents=True, exist_ok=True)
    az = directory / "az"
    az.write_text(
        f'#!/bin/sh\nFAKE_AZ_LOG="{log}" exec "{sys.executable}" "{FAKE_AZ}" "$@"\n', encoding="utf-8"
    )
    az.chmod(az.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return directory


def path_with(directory: Path) -> str:
    return f"{directory}{os.pathsep}{os.environ.get('PATH', '')}"
