"""Every setting in one immutable record; the environment is read once, at construction."""

from __future__ import annotations

import os
from collections.abc import Mapping
from urllib.parse import urlsplit

from ._core.request import API_VERSIONS, DEFAULT_API_VERSION
from ._core.retry import RetryPolicy
from ._core.steps import Record, Timeouts

DEFAULT_ENDPOINT = "http://169.254.169.254"
# The de-facto way to point managed-identity clients at another IMDS (an emulator, a relay).
ENDPOINT_ENV = "AZURE_POD_IDENTITY_AUTHORITY_HOST"
# A token answer is about 2 KiB; an answer past this is not IMDS's (and is not buffered).
MAX_RESPONSE_BYTES = 64 * 1024
# IMDS allows 5 concurrent managed-identity requests per VM.
MAX_CONCURRENCY = 5


def normalize_endpoint(value: str, source: str) -> str:
    """Validate an endpoint (scheme://host[:port][/prefix]) and strip a trailing `/`."""
    if not isinstance(value, str):
        raise TypeError(f"{source} must be a str, not {type(value).__name__}")
    parts = urlsplit(value.strip())
    problem = None
    if parts.scheme not in ("http", "https"):
        problem = "it must start with http:// or https://"
    elif not parts.hostname:
        problem = "it names no host"
    elif parts.query or parts.fragment or parts.username or parts.password:
        problem = "it must not carry a query, fragment or credentials"
    else:
        try:
            parts.port  # noqa: B018 - raises ValueError for an invalid port
        except ValueError:
            problem = "its port is not valid"
    if problem:
        raise ValueError(
            f"{source} {value!r} is not a usable IMDS endpoint: {problem} "
            "(for example http://169.254.169.254 or http://127.0.0.1:8080)"
        )
    return f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"


def resolve_endpoint(
    endpoint: str | None, argument_name: str, environ: Mapping[str, str] | None = None
) -> tuple[str, str]:
    """The IMDS endpoint and where it came from: "argument" (`endpoint`, named `argument_name`
    in errors), "environment" (`AZURE_POD_IDENTITY_AUTHORITY_HOST`) or "default"; validated.
    `environ` defaults to `os.environ`, read now."""
    if endpoint is not None:
        return normalize_endpoint(endpoint, argument_name), "argument"
    override = (os.environ if environ is None else environ).get(ENDPOINT_ENV, "").strip()
    if override:
        return normalize_endpoint(override, ENDPOINT_ENV), "environment"
    return DEFAULT_ENDPOINT, "default"


class Settings(Record):
    __slots__ = ("api_version", "endpoint", "max_concurrency", "max_response_bytes", "retry", "timeouts")
    endpoint: str
    api_version: str
    timeouts: Timeouts
    retry: RetryPolicy
    max_response_bytes: int
    max_concurrency: int

    def __init__(
        self,
        endpoint: str,
        api_version: str,
        timeouts: Timeouts,
        retry: RetryPolicy,
        max_response_bytes: int = MAX_RESPONSE_BYTES,
        max_concurrency: int = MAX_CONCURRENCY,
    ) -> None:
        self._init(
            endpoint=endpoint,
            api_version=api_version,
            timeouts=timeouts,
            retry=retry,
            max_response_bytes=max_response_bytes,
            max_concurrency=max_concurrency,
        )


def make_settings(
    *,
    endpoint: str | None,
    api_version: str,
    connect_timeout: float,
    first_answer_timeout: float,
    attempt_timeout: float,
    timeout: float,
    retry: RetryPolicy | None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Build settings from constructor arguments; `environ` defaults to `os.environ`, read now."""
    endpoint, _ = resolve_endpoint(endpoint, "endpoint", environ)
    if api_version not in API_VERSIONS:
        raise ValueError(f"api_version {api_version!r} is not one IMDS accepts; use one of {API_VERSIONS}")
    if retry is not None and not isinstance(retry, RetryPolicy):
        raise TypeError("retry must be a RetryPolicy")
    return Settings(
        endpoint=endpoint,
        api_version=api_version,
        timeouts=Timeouts(
            connect=connect_timeout,
            first_answer=first_answer_timeout,
            probe=min(1.0, first_answer_timeout),
            attempt=attempt_timeout,
            deadline=timeout,
        ),
        retry=retry or RetryPolicy(),
    )


__all__ = ["DEFAULT_API_VERSION", "DEFAULT_ENDPOINT", "ENDPOINT_ENV", "Settings", "make_settings"]
