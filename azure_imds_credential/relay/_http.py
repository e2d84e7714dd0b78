"""The relay's HTTP face: IMDS's token path, the REST path and /healthz, with IMDS's guards.

Runs on the emulator's `TrackingServer` (one thread per connection, prompt and complete stop).
Every answer is JSON; a request the relay refuses gets IMDS's error shape
(`{"error": ..., "error_description": ...}`) and the status IMDS would use. Nothing here logs
a header or a body: headers could carry a caller's secret, bodies carry tokens.
"""

from __future__ import annotations

import json
import logging
import time
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import parse_qs, urlsplit

from .._core.redact import redact
from .._core.request import API_VERSIONS, TOKEN_PATH
from ..testing._server import TrackingServer
from ._broker import RelayError, TokenRequest

if TYPE_CHECKING:
    from ._relay import TokenRelay

logger = logging.getLogger("azure_imds_credential.relay")

REST_PATH = "/v1/identity/oauth2/token"
HEALTH_PATH = "/healthz"
# The relay answers as an IMDS would ("IMDS" first, so clients that look for IMDS's marker
# find it), and says what it is.
SERVER_HEADER = "IMDS-relay azure-imds-credential"
_JSON = "application/json; charset=utf-8"


class _HeadersTooLarge(Exception):
    """The request's header section passed the relay's limit."""


class _BoundedReader:
    """Reads the header section through a byte budget, so an oversized request costs at most
    the budget (http.client alone accepts 100 headers of 64 KiB each)."""

    def __init__(self, inner: Any, budget: int) -> None:
        self._inner = inner
        self._left = budget

    def readline(self, limit: int = -1) -> bytes:
        cap = self._left + 1 if limit < 0 else min(limit, self._left + 1)
        line: bytes = self._inner.readline(cap)
        self._left -= len(line)
        if self._left < 0:
            raise _HeadersTooLarge
        return line

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class RelayHandler(BaseHTTPRequestHandler):
    # Headers and body go out in separate writes: without TCP_NODELAY, Nagle plus the
    # client's delayed ACK add ~40 ms to every answer.
    disable_nagle_algorithm = True
    # HTTP/1.1 keep-alive: a worker's client reuses its connection for every token.
    protocol_version = "HTTP/1.1"
    # An idle keep-alive connection holds a thread at most this long.
    timeout = 30.0
    server: TrackingServer

    @property
    def relay(self) -> TokenRelay:
        return cast("TokenRelay", self.server.emulator)

    def version_string(self) -> str:
        return SERVER_HEADER

    def log_message(self, format: str, *args: Any) -> None:
        # The standard library's request lines and errors go to our logger, never straight to
        # stderr; our own per-request line comes from _finish().
        logger.debug("relay %s: %s", self.client_address[0], format % args)

    # -- reading, with limits --------------------------------------------------------------
    def handle_one_request(self) -> None:
        """`BaseHTTPRequestHandler.handle_one_request` with the relay's size limits.

        A request line over the limit gets 414 and a header section over it 431, both
        without reading further (a relay on a VM must not buffer what a confused client sends).
        """
        limits = self.relay.limits
        try:
            self.raw_requestline = self.rfile.readline(limits.max_request_line + 1)
        except TimeoutError:
            self.close_connection = True
            return
        if not self.raw_requestline:
            self.close_connection = True
            return
        self._started = time.monotonic()
        self.command, self.path, self.request_version = "", "", "HTTP/1.1"
        if len(self.raw_requestline) > limits.max_request_line:
            self.requestline = ""
            self._refuse(RelayError(414, "uri_too_long", "The request line is too long"))
            return
        rfile = self.rfile
        self.rfile = cast("Any", _BoundedReader(rfile, limits.max_header_bytes))
        try:
            parsed = self.parse_request()
        except _HeadersTooLarge:
            self.requestline = self.raw_requestline.decode("iso-8859-1", "replace").rstrip("\r\n")
            self._refuse(RelayError(431, "headers_too_large", "The request headers are too large"))
            return
        finally:
            self.rfile = rfile
        if not parsed:
            return  # parse_request answered (400/505) already
        try:
            self._serve()
            self.wfile.flush()
        except OSError:
            # The client went away mid-answer (or stop() shut the socket down).
            logger.debug("relay: connection lost while answering", exc_info=True)
            self.close_connection = True

    def _refuse(self, error: RelayError) -> None:
        """Answer a request that could not be read whole, and drop the connection."""
        self.close_connection = True
        try:
            self._send_error(error)
        except OSError:
            logger.debug("relay: connection lost while refusing", exc_info=True)

    # -- routing -----------------------------------------------------------------------------
    def _serve(self) -> None:
        split = urlsplit(self.path)
        relay = self.relay
        retry_after = relay.admit()
        if retry_after is not None:
            self._send_error(
                RelayError(429, "too_many_requests", "Rate limit reached", retry_after=retry_after)
            )
            return
        path = split.path
        if path not in (TOKEN_PATH, REST_PATH, HEALTH_PATH):
            self._send_error(RelayError(404, "not_found", "The requested path was not found"))
            return
        if self.command != "GET":
            # Anything with a body is refused before the body is read: close after answering.
            self.close_connection = True
            self._send_error(RelayError(405, "method_not_allowed", "Only GET is allowed"), [("Allow", "GET")])
            return
        if "X-Forwarded-For" in self.headers:
            # IMDS refuses proxied requests; a relay on loopback has no reason to see one.
            self._send_error(
                RelayError(
                    400,
                    "invalid_request",
                    "Request contains X-Forwarded-For header; proxies are not supported",
                )
            )
            return
        if path == HEALTH_PATH:
            health = relay.broker.health()
            self._send_json(200 if health["status"] == "ok" else 503, health)
            return
        if self.headers.get("Metadata") != "true":
            # IMDS's SSRF guard, on both token paths: a browser cannot add the header to a
            # cross-site request without a preflight, which this relay refuses (405).
            self._send_error(RelayError(400, "bad_request_102", "Required metadata header not specified"))
            return
        try:
            query = _single_values(split.query)
            if path == TOKEN_PATH:
                _check_api_version(query.get("api-version"))
            request = TokenRequest.from_query(query, allow_scope=path == REST_PATH)
            token = relay.broker.get(request)
        except RelayError as error:
            self._send_error(error)
            return
        self._send_json(200, token.imds_body(relay.now()))

    # -- answers -----------------------------------------------------------------------------
    def _send_error(self, error: RelayError, extra: list[tuple[str, str]] | None = None) -> None:
        headers = list(extra or ())
        if error.retry_after is not None:
            headers.append(("Retry-After", str(max(1, round(error.retry_after)))))
        self._send_json(error.status, error.body(), headers)

    def _send_json(
        self, status: int, body: dict[str, Any], extra: list[tuple[str, str]] | None = None
    ) -> None:
        payload = json.dumps(body).encode("utf-8")
        self.send_response_only(status)
        self.send_header("Server", SERVER_HEADER)
        self.send_header("Date", self.date_time_string())
        self.send_header("Content-Type", _JSON)
        self.send_header("Cache-Control", "no-store")
        for name, value in extra or ():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)
        self._finish(status)

    def _finish(self, status: int) -> None:
        # One line per request: method, path and query (identity selectors and resources are
        # not secrets), status and time. Never a header or a body.
        elapsed = (time.monotonic() - getattr(self, "_started", time.monotonic())) * 1000
        # redact(): a confused client could put a token in its query string.
        line = redact(self.path, 512)
        logger.info("%s %s -> %d %.0f ms", self.command or "-", line or "-", status, elapsed)


def _single_values(query: str) -> dict[str, str]:
    parsed = parse_qs(query, keep_blank_values=True)
    for name, values in parsed.items():
        if len(values) > 1:
            raise RelayError(400, "invalid_request", f"Query variable '{name}' is given more than once")
    return {name: values[0] for name, values in parsed.items()}


def _check_api_version(value: str | None) -> None:
    # IMDS's own answers, so a client sees the same error through the relay.
    if value is None:
        raise RelayError(400, "invalid_request", "Required query variable 'api-version' is missing")
    if value not in API_VERSIONS:
        raise RelayError(400, "invalid_request", "Invalid api version")
