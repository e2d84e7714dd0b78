"""Faults the emulator can inject, as plain values.

A ``Fault`` only describes what should happen; ``_handler`` interprets it. Canned answers
(status, docker_403, retry_after, the foreign 200s, redirect) carry their status, body and
header overrides ready to send. In ``headers`` an empty value removes that header from the
emulator's defaults (that is how a fault drops the ``Server: IMDS/...`` marker).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

__all__ = ["Fault", "Step"]

_JSON = "application/json; charset=utf-8"
_TEXT = "text/plain; charset=utf-8"

_DOCKER_403_BODY = (
    "connecting to 169.254.169.254:80: connecting to 169.254.169.254:80: "
    "dial tcp 169.254.169.254:80: connectex: A socket operation was attempted to an "
    "unreachable network."
)

# What answers on 169.254.169.254 when it is not Azure: a captive portal or another
# cloud's metadata page. Only its shape matters (HTML, 200).
_HTML_BODY = (
    "<!DOCTYPE html>\n<html><head><title>Sign in to the network</title></head>\n"
    "<body><h1>Welcome</h1><p>Please accept the terms of use to continue.</p></body></html>\n"
)

# The kinds whose answer is fully described by code/body/headers.
CANNED_KINDS = frozenset(
    {
        "status",
        "docker_403",
        "retry_after",
        "non_json_200",
        "foreign_json_200",
        "html_200",
        "redirect",
        "rate_limit",
    }
)


def _error_body(code: int) -> bytes:
    """An IMDS-style error body for ``code`` (IMDS answers errors as JSON)."""
    try:
        phrase = HTTPStatus(code).phrase
    except ValueError:
        phrase = "Error"
    error = phrase.lower().replace(" ", "_").replace("-", "_")
    return json.dumps({"error": error, "error_description": f"{phrase} (emulated)"}).encode()


def _encode_body(body: str | bytes | Mapping[str, Any] | None, code: int) -> tuple[bytes, str]:
    """Return the body bytes and the content type that fits them."""
    if body is None:
        return (_error_body(code), _JSON) if code >= 400 else (b"", _JSON)
    if isinstance(body, Mapping):
        return json.dumps(dict(body)).encode("utf-8"), _JSON
    raw = body.encode("utf-8") if isinstance(body, str) else bytes(body)
    looks_json = raw.lstrip()[:1] in (b"{", b"[")
    return raw, (_JSON if looks_json else _TEXT)


def _merge(defaults: Mapping[str, str], overrides: Mapping[str, str] | None) -> tuple[tuple[str, str], ...]:
    # Header names are case-insensitive: an override replaces a default whatever its case.
    merged = {name.lower(): (name, value) for name, value in defaults.items()}
    for name, value in (overrides or {}).items():
        merged[name.lower()] = (name, value)
    return tuple(merged.values())


def _format_seconds(seconds: float | str) -> str:
    if isinstance(seconds, str):
        return seconds  # e.g. an HTTP date, sent as given
    return str(int(seconds)) if float(seconds).is_integer() else str(seconds)


@dataclass(frozen=True)
class Fault:
    """One scripted misbehaviour. Build it with the classmethods, not the constructor."""

    kind: str
    code: int | None = None
    body: bytes | None = None
    headers: tuple[tuple[str, str], ...] = ()
    seconds: float = 0.0
    chunks: int = 0
    size: int = 0
    overrides: tuple[tuple[str, Any], ...] = ()

    @property
    def name(self) -> str:
        """The name recorded in ``RequestRecord.fault``."""
        return self.kind

    @classmethod
    def status(
        cls,
        code: int,
        body: str | bytes | Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Fault:
        """Answer ``code``; 4xx/5xx default to an IMDS-style JSON error body."""
        if not 100 <= code <= 599:
            raise ValueError(f"HTTP status out of range: {code}")
        raw, content_type = _encode_body(body, code)
        return cls("status", code=code, body=raw, headers=_merge({"Content-Type": content_type}, headers))

    @classmethod
    def docker_403(cls) -> Fault:
        """Docker Desktop's proxy refusing the link-local address: 403 text, no IMDS marker."""
        return cls(
            "docker_403",
            code=403,
            body=_DOCKER_403_BODY.encode(),
            headers=(("Content-Type", "text/plain"), ("Server", "")),
        )

    @classmethod
    def retry_after(cls, code: int = 429, seconds: float | str = 1.0) -> Fault:
        """Answer ``code`` (an IMDS error body) with ``Retry-After: seconds``."""
        base = cls.status(code, headers={"Retry-After": _format_seconds(seconds)})
        return cls("retry_after", code=code, body=base.body, headers=base.headers)

    @classmethod
    def delay(cls, seconds: float) -> Fault:
        """Wait ``seconds`` (interrupted by ``stop()``), then answer normally."""
        if seconds < 0:
            raise ValueError("seconds must be >= 0")
        return cls("delay", seconds=float(seconds))

    @classmethod
    def hang(cls) -> Fault:
        """Read the request and never answer, until ``stop()`` or the client leaves."""
        return cls("hang")

    @classmethod
    def reset(cls) -> Fault:
        """Close the connection with a TCP reset instead of answering."""
        return cls("reset")

    @classmethod
    def partial_body(cls) -> Fault:
        """Promise more bytes in Content-Length than are sent, then close."""
        return cls("partial_body")

    @classmethod
    def slow_body(cls, seconds_per_chunk: float, chunks: int) -> Fault:
        """A normal token answer whose body is sent in ``chunks`` pieces, pausing between."""
        if seconds_per_chunk < 0 or chunks < 1:
            raise ValueError("need seconds_per_chunk >= 0 and chunks >= 1")
        return cls("slow_body", seconds=float(seconds_per_chunk), chunks=chunks)

    @classmethod
    def non_json_200(cls) -> Fault:
        """Something that is not IMDS answers 200 with plain text (and no IMDS marker)."""
        return cls(
            "non_json_200", code=200, body=b"hello", headers=(("Content-Type", "text/plain"), ("Server", ""))
        )

    @classmethod
    def foreign_json_200(cls) -> Fault:
        """Another metadata service answers 200 with JSON that is not a token."""
        return cls(
            "foreign_json_200",
            code=200,
            body=b'{"computeMetadata": {}}',
            headers=(("Content-Type", "application/json"), ("Server", "Metadata Server for VM")),
        )

    @classmethod
    def html_200(cls) -> Fault:
        """A captive portal or another cloud answers 200 with an HTML page."""
        return cls(
            "html_200",
            code=200,
            body=_HTML_BODY.encode(),
            headers=(("Content-Type", "text/html; charset=utf-8"), ("Server", "nginx")),
        )

    @classmethod
    def redirect(cls, location: str, code: int = 302) -> Fault:
        """Answer a redirect to ``location`` with an empty body."""
        return cls("redirect", code=code, body=b"", headers=(("Location", location), ("Content-Type", _TEXT)))

    @classmethod
    def huge_body(cls, size: int) -> Fault:
        """200 with exactly ``size`` bytes: a JSON-looking prefix, then padding."""
        if size < 0:
            raise ValueError("size must be >= 0")
        return cls("huge_body", size=size)

    @classmethod
    def token(cls, **overrides: Any) -> Fault:
        """A normal token answer with JSON fields replaced; ``None`` removes a field."""
        return cls("token", overrides=tuple(overrides.items()))

    @classmethod
    def rate_limited(cls) -> Fault:
        """IMDS's own throttling answer: 429 with an IMDS error body and no Retry-After."""
        base = cls.status(
            429,
            {"error": "too_many_requests", "error_description": "Too many requests (emulated rate limit)"},
        )
        return cls("rate_limit", code=429, body=base.body, headers=base.headers)

    # -- turning a fault into a script step -----------------------------------------------
    def times(self, count: int) -> Step:
        """A script step: the next ``count`` token requests get this fault."""
        return Step(self, times=count)

    def for_seconds(self, seconds: float) -> Step:
        """A script step: every token request for ``seconds`` (emulator clock) gets this fault."""
        return Step(self, seconds=seconds)

    def forever(self) -> Step:
        """A script step that never ends: every later token request gets this fault."""
        return Step(self)


@dataclass(frozen=True)
class Step:
    """One step of a fault script (``ImdsEmulator.script``).

    ``fault`` None means a normal answer (useful as "then healthy for N requests"). A step
    ends after ``times`` token requests or ``seconds`` on the emulator's clock, whichever
    comes first; with neither it never ends. The next step starts when this one ends.
    """

    fault: Fault | None
    times: int | None = None
    seconds: float | None = None

    def __post_init__(self) -> None:
        if self.times is not None and self.times < 1:
            raise ValueError("times must be >= 1")
        if self.seconds is not None and not self.seconds > 0:
            raise ValueError("seconds must be > 0")

    @classmethod
    def ok(cls, *, times: int | None = None, seconds: float | None = None) -> Step:
        """Normal answers for ``times`` requests or ``seconds`` (overrides ``always``)."""
        return cls(None, times=times, seconds=seconds)
