"""Classifying what came back from the IMDS address (IMDS.md, "Status codes")."""

from __future__ import annotations

import json
from collections.abc import Mapping
from email.utils import parsedate_to_datetime

from .redact import redact
from .steps import RETRYABLE, FailureKind, HttpAnswer, Record, TransportFailure, Verdict
from .token import ImdsToken, InvalidTokenResponse, parse_token

__all__ = ["RETRYABLE", "Classified", "Verdict", "classify_answer", "classify_failure", "parse_retry_after"]

# Retry-After beyond this is not waited for: the caller's deadline decides instead.
MAX_RETRY_AFTER = 60.0


class Classified(Record):
    __slots__ = (
        "error_code",
        "error_description",
        "from_imds",
        "retry_after",
        "status",
        "summary",
        "token",
        "verdict",
    )
    _hidden = frozenset({"token"})
    verdict: Verdict
    summary: str  # safe to show: never contains a token
    token: ImdsToken | None
    status: int | None
    error_code: str | None
    error_description: str | None
    retry_after: float | None
    # The answer came from IMDS itself (not a proxy, not another cloud).
    from_imds: bool

    def __init__(
        self,
        verdict: Verdict,
        summary: str,
        token: ImdsToken | None = None,
        status: int | None = None,
        error_code: str | None = None,
        error_description: str | None = None,
        retry_after: float | None = None,
        from_imds: bool = False,
    ) -> None:
        self._init(
            verdict=verdict,
            summary=summary,
            token=token,
            status=status,
            error_code=error_code,
            error_description=error_description,
            retry_after=retry_after,
            from_imds=from_imds,
        )


def _header(headers: Mapping[str, str], name: str) -> str | None:
    return headers.get(name)


def is_imds_server(headers: Mapping[str, str]) -> bool:
    """Real IMDS answers carry `Server: IMDS/...`."""
    return (_header(headers, "server") or "").upper().startswith("IMDS")


def _error_fields(body: bytes) -> tuple[str | None, str | None]:
    """IMDS's JSON error `{"error": ..., "error_description": ...}`, redacted."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None, None
    if not isinstance(data, Mapping):
        return None, None
    code, description = data.get("error"), data.get("error_description")
    return (
        redact(code, 100) if isinstance(code, str) else None,
        redact(description) if isinstance(description, str) else None,
    )


def parse_retry_after(headers: Mapping[str, str]) -> float | None:
    """Retry-After as seconds (delta-seconds, or an HTTP date relative to the answer's Date)."""
    value = _header(headers, "retry-after")
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        date = _header(headers, "date")
        if date is None:
            return None
        try:
            seconds = (parsedate_to_datetime(value) - parsedate_to_datetime(date)).total_seconds()
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
    if seconds != seconds:  # NaN
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


def classify_answer(answer: HttpAnswer, sent_at: float) -> Classified:
    """Classify an HTTP answer to a token request."""
    status = answer.status
    from_imds_header = is_imds_server(answer.headers)
    if status == 200:
        if answer.truncated:
            return Classified(Verdict.UNAVAILABLE, "a 200 answer too large to be IMDS's", status=200)
        try:
            token = parse_token(answer.body, sent_at)
        except InvalidTokenResponse as exc:
            # Something other than IMDS answers on its address (another cloud, a proxy).
            return Classified(Verdict.UNAVAILABLE, f"not an IMDS token answer: {exc}", status=200)
        return Classified(Verdict.TOKEN, "token", token=token, status=200, from_imds=True)

    code, description = _error_fields(answer.body)
    # IMDS answers errors with its Server header and/or its JSON error shape; a proxy's or
    # Docker Desktop's 403 has neither.
    from_imds = from_imds_header or code is not None
    detail = f"HTTP {status}" + (f" {code}" if code else "") + (f": {description}" if description else "")

    def verdict(kind: Verdict, note: str = "", imds: bool = from_imds) -> Classified:
        retry_after = parse_retry_after(answer.headers) if kind in RETRYABLE else None
        return Classified(
            kind,
            detail + note,
            status=status,
            error_code=code,
            error_description=description,
            retry_after=retry_after,
            from_imds=imds,
        )

    if status == 400:
        # Identity not found / not assigned, or no Metadata header: never fixed by retrying.
        return verdict(Verdict.UNAVAILABLE)
    if status in (404, 410):
        return verdict(Verdict.UPDATING)
    if status == 429:
        return verdict(Verdict.THROTTLED)
    if 500 <= status <= 599:
        return verdict(Verdict.TRANSIENT)
    if status == 403 and not from_imds:
        # Docker Desktop's proxy: "A socket operation was attempted to an unreachable network".
        return verdict(Verdict.UNAVAILABLE, " (not from IMDS; Docker Desktop's proxy?)")
    if 300 <= status <= 399:
        # IMDS never redirects, and redirects are never followed (the Metadata header and the
        # request must not go anywhere but the configured endpoint).
        return verdict(Verdict.UNAVAILABLE, " (a redirect: not IMDS; not followed)", imds=False)
    if 200 <= status <= 299:
        return verdict(Verdict.UNAVAILABLE, " (not IMDS's answer)", imds=False)
    return verdict(Verdict.FAILED)


def classify_failure(failure: TransportFailure, *, imds_seen: bool, short_wait: bool) -> Classified:
    """Classify a failure without an HTTP answer.

    Before IMDS has answered in this process, refusals and connect timeouts mean "not on
    Azure" (fail fast); afterwards they are IMDS restarting, and retried. A late first answer
    (`short_wait`: we only waited the short first-answer time) is probed, not retried.
    """
    summary = failure.kind.value + (f" ({failure.detail})" if failure.detail else "")
    kind = failure.kind
    if kind in (FailureKind.UNREACHABLE, FailureKind.CONNECT_TIMEOUT):
        verdict = Verdict.TRANSIENT if imds_seen else Verdict.UNAVAILABLE
    elif kind is FailureKind.READ_TIMEOUT and short_wait and not imds_seen:
        verdict = Verdict.LATE
    else:
        verdict = Verdict.TRANSIENT
    return Classified(verdict, summary)
