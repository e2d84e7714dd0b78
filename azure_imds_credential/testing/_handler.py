"""HTTP handling: IMDS's guards, fault injection and the wire-level misbehaviours."""

from __future__ import annotations

import json
import logging
import select
import socket
import time
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import parse_qs, urlsplit

from ._faults import CANNED_KINDS, Fault
from ._imds import SERVER_HEADER, TOKEN_PATH, Answer, error
from ._models import RecordBuilder, redact_headers
from ._server import TrackingServer

if TYPE_CHECKING:
    from ._emulator import ImdsEmulator

logger = logging.getLogger("azure_imds_credential.testing")

# Every wait inside the server is bounded, whatever a fault asks for.
MAX_WAIT = 60.0
_HANG_POLL = 0.02
_WRITE_CHUNK = 64 * 1024
_ERROR_CONTENT_TYPE = "application/json; charset=utf-8"


class _Dropped(Exception):
    """The emulator is stopping: give up on this request without answering."""


class ImdsHandler(BaseHTTPRequestHandler):
    # Headers and body go out in separate writes: without TCP_NODELAY, Nagle plus the
    # client's delayed ACK add ~40 ms to every answer.
    disable_nagle_algorithm = True

    # HTTP/1.1 so that clients can keep the connection alive; every answer therefore
    # carries a Content-Length.
    protocol_version = "HTTP/1.1"
    # Bounds how long an idle keep-alive connection (or a stuck write) holds a thread.
    timeout = MAX_WAIT
    server: TrackingServer
    _record: RecordBuilder | None = None

    # -- plumbing ------------------------------------------------------------------------
    @property
    def _emulator(self) -> ImdsEmulator:
        return cast("ImdsEmulator", self.server.emulator)

    def version_string(self) -> str:
        # Also used by send_error() for requests too malformed to reach our code.
        return SERVER_HEADER

    def log_message(self, format: str, *args: Any) -> None:
        # Never stderr, and only the request line: the query holds no secrets, the
        # headers (never logged) might.
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("emulator %s: %s", self.client_address[0], format % args)

    def do_GET(self) -> None:
        self._serve()

    do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_GET

    def _serve(self) -> None:
        split = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(split.query, keep_blank_values=True).items()}
        has_metadata = self.headers.get("Metadata") == "true"
        record = self._emulator._open_record(
            method=self.command,
            path=split.path,
            query=query,
            headers=redact_headers(list(self.headers.items())),
            is_token=split.path == TOKEN_PATH and has_metadata,
        )
        self._record = record
        try:
            self._route(split.path, query, has_metadata)
        except _Dropped:
            self.close_connection = True
        except OSError:
            # The client went away mid-answer (or stop() shut the socket down).
            logger.debug("emulator: connection lost while answering", exc_info=True)
            self.close_connection = True
        finally:
            record.finish()
            self._record = None
            self._emulator._finished(record)

    def _route(self, path: str, query: dict[str, str], has_metadata: bool) -> None:
        if path != TOKEN_PATH:
            self._send_answer(error(404, "not_found", "The requested path was not found"))
        elif self.command != "GET":
            self._send_answer(
                error(405, "method_not_allowed", "Only GET is allowed"), extra=[("Allow", "GET")]
            )
        elif not has_metadata:
            # IMDS's SSRF guard answers at once: no latency, no fault.
            self._send_answer(error(400, "bad_request_102", "Required metadata header not specified"))
        elif "X-Forwarded-For" in self.headers:
            self._send_answer(
                error(
                    400,
                    "invalid_request",
                    "Request contains X-Forwarded-For header; proxies are not supported",
                )
            )
        else:
            emulator = self._emulator
            assert self._record is not None
            try:
                if not emulator._admit():
                    # IMDS throttles before doing anything else: at once, no fault used up.
                    self._record.fault = "rate_limit"
                    self._apply(Fault.rate_limited(), query)
                    return
                fault = emulator._take_fault()
                self._record.fault = fault.name if fault is not None else None
                self._wait(emulator.latency)
                self._apply(fault, query)
            finally:
                emulator._leave()

    # -- faults ----------------------------------------------------------------------------
    def _apply(self, fault: Fault | None, query: dict[str, str]) -> None:
        kind = fault.kind if fault is not None else None
        if fault is None or kind == "token":
            self._send_token(query, fault)
        elif kind in CANNED_KINDS:
            assert fault.code is not None and fault.body is not None
            self._send(fault.code, fault.body, fault.headers)
        elif kind == "delay":
            self._wait(fault.seconds)
            self._send_token(query, None)
        elif kind == "hang":
            self._hang()
        elif kind == "reset":
            self.server.abort(self.connection)
            self.close_connection = True
        elif kind == "partial_body":
            status, body, headers = self._token_parts(query, None)
            # Promise more than is sent, send half, then close: a truncated answer.
            self._send(status, body[: len(body) // 2], headers, content_length=len(body) + 64)
            self.close_connection = True
        elif kind == "slow_body":
            status, body, headers = self._token_parts(query, None)
            self._send(status, b"", headers, content_length=len(body))
            step = -(-len(body) // fault.chunks)  # ceiling division
            for index in range(0, len(body), step):
                if index:
                    self._wait(fault.seconds)
                self.wfile.write(body[index : index + step])
        elif kind == "huge_body":
            self._send_huge(fault.size)
        else:  # pragma: no cover - every Fault constructor is handled above
            raise AssertionError(f"unknown fault kind {kind!r}")

    def _hang(self) -> None:
        """Hold the request unanswered until stop(), the client leaving, or MAX_WAIT."""
        self.close_connection = True
        deadline = time.monotonic() + MAX_WAIT
        while time.monotonic() < deadline:
            if self.server.stopping.wait(_HANG_POLL) or self._client_gone():
                return

    def _client_gone(self) -> bool:
        readable, _, _ = select.select([self.connection], [], [], 0)
        if not readable:
            return False
        try:
            # Readable with nothing to read means the client closed its side.
            peeked: bytes = self.connection.recv(1, socket.MSG_PEEK)
        except OSError:
            return True
        return peeked == b""

    def _send_huge(self, size: int) -> None:
        prefix = b'{"access_token": "'[:size]
        self._send(200, b"", [("Content-Type", self._emulator._content_type)], content_length=size)
        self.wfile.write(prefix)
        remaining = size - len(prefix)
        while remaining > 0:
            if self.server.stopping.is_set():
                raise _Dropped
            chunk = min(remaining, _WRITE_CHUNK)
            self.wfile.write(b"x" * chunk)
            remaining -= chunk

    def _wait(self, seconds: float) -> None:
        if seconds > 0 and self.server.stopping.wait(min(seconds, MAX_WAIT)):
            raise _Dropped
        if self.server.stopping.is_set():
            raise _Dropped

    # -- answers ---------------------------------------------------------------------------
    def _token_parts(
        self, query: dict[str, str], fault: Fault | None
    ) -> tuple[int, bytes, list[tuple[str, str]]]:
        emulator = self._emulator
        answer = emulator._issuer.answer(
            query, emulator.identities, emulator.lifetime, emulator._numbers_as_strings
        )
        if answer.status != 200:
            return answer.status, _json(answer.body), [("Content-Type", _ERROR_CONTENT_TYPE)]
        body = dict(answer.body)
        for name, value in fault.overrides if fault is not None else ():
            if value is None:
                body.pop(name, None)
            else:
                body[name] = value
        return 200, _json(body), [("Content-Type", emulator._content_type)]

    def _send_token(self, query: dict[str, str], fault: Fault | None) -> None:
        status, body, headers = self._token_parts(query, fault)
        self._send(status, body, headers)

    def _send_answer(self, answer: Answer, extra: Iterable[tuple[str, str]] = ()) -> None:
        self._send(answer.status, _json(answer.body), [("Content-Type", _ERROR_CONTENT_TYPE), *extra])

    def _send(
        self,
        status: int,
        body: bytes,
        overrides: Iterable[tuple[str, str]],
        *,
        content_length: int | None = None,
    ) -> None:
        """Send status line, headers (defaults + overrides, "" removes) and ``body``."""
        headers = {"server": ("Server", SERVER_HEADER), "date": ("Date", self.date_time_string())}
        for name, value in overrides:
            headers[name.lower()] = (name, value)
        self.send_response_only(status)
        for name, value in headers.values():
            if value != "":
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(body) if content_length is None else content_length))
        self.end_headers()
        if self._record is not None:
            self._record.status = status
        logger.debug("emulator: %s %s -> %d", self.command, urlsplit(self.path).path, status)
        if self.command != "HEAD" and body:
            self.wfile.write(body)


def _json(body: dict[str, Any]) -> bytes:
    return json.dumps(body).encode("utf-8")
