"""Shared by the emulator's tests: a stdlib HTTP fetch, a settable clock, a fake credential.

`FakeCredential` / `make_credential` are also the `--token-source tests.testing.helpers:...`
of the CLI tests: a TokenCredential that never talks to Azure.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlencode

from azure.core.credentials import AccessToken

TOKEN_PATH = "/metadata/identity/oauth2/token"
RESOURCE = "https://storage.azure.com"
SCOPE = RESOURCE + "/.default"
META = {"Metadata": "true"}
# What FakeCredential hands out: recognisable, and not a JWT (a fake one would be minted).
REAL_TOKEN_PREFIX = "real-token-from-fake-credential:"
REAL_TOKEN_LIFETIME = 1234


class Reply:
    def __init__(self, response: http.client.HTTPResponse) -> None:
        self.status = response.status
        self.headers = {k.lower(): v for k, v in response.getheaders()}
        self.body = response.read()

    def json(self) -> Any:
        return json.loads(self.body)


def token_url(**params: str) -> str:
    query = {"api-version": "2018-02-01", "resource": RESOURCE, **params}
    return f"{TOKEN_PATH}?{urlencode(query)}"


def fetch(
    port: int,
    url: str | None = None,
    headers: Mapping[str, str] | None = None,
    timeout: float = 10.0,
) -> Reply:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request("GET", url or token_url(), headers=dict(META if headers is None else headers))
        return Reply(connection.getresponse())
    finally:
        connection.close()


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        time.sleep(0.01)


class SettableClock:
    """The emulator's clock (a callable), frozen until a test moves it."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Background:
    """Run a call in a thread; remember what it raised or returned."""

    def __init__(self, call: Callable[[], Any]) -> None:
        self.outcome: Any = None

        def run() -> None:
            try:
                self.outcome = call()
            except Exception as exc:
                self.outcome = exc

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()

    def join(self) -> Any:
        self.thread.join(10)
        assert not self.thread.is_alive()
        return self.outcome


class FakeCredential:
    """An azure-core TokenCredential that never leaves the process: one token per scope."""

    def __init__(self) -> None:
        self.scopes: list[str] = []

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        self.scopes.extend(scopes)
        return AccessToken(
            f"{REAL_TOKEN_PREFIX}{scopes[0]}:{len(self.scopes)}", int(time.time()) + REAL_TOKEN_LIFETIME
        )


class FailingCredential:
    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        raise RuntimeError("Please run 'az login' to set up an account\nsecond line")


def make_credential() -> FakeCredential:
    """`--token-source tests.testing.helpers:make_credential`."""
    return FakeCredential()


def make_not_a_credential() -> object:
    """`--token-source tests.testing.helpers:make_not_a_credential`: lacks get_token."""
    return object()
