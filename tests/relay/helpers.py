"""Shared by the relay's tests: stdlib HTTP calls to a relay, and the `serve` subprocess."""

from __future__ import annotations

import http.client
import json
from collections.abc import Mapping
from contextlib import AbstractContextManager
from typing import Any
from urllib.parse import urlencode

from tests.helpers.cli import (
    ENDPOINT_ENV,
    ROOT,
    WAIT,
    Running,
    cli_command,
    env_without_endpoint,
    first_line,
    running,
)

# Re-exported for the relay tests, which import everything from here.
__all__ = ["ENDPOINT_ENV", "ROOT", "WAIT", "env_without_endpoint", "first_line"]

IMDS_PATH = "/metadata/identity/oauth2/token"
REST_PATH = "/v1/identity/oauth2/token"
RESOURCE = "https://storage.azure.com"
SCOPE = RESOURCE + "/.default"
META = {"Metadata": "true"}


class Reply:
    def __init__(self, status: int, headers: Mapping[str, str], body: bytes) -> None:
        self.status = status
        self.headers = {k.lower(): v for k, v in headers.items()}
        self.body = body

    def json(self) -> Any:
        return json.loads(self.body)


def imds_url(**params: str) -> str:
    return f"{IMDS_PATH}?{urlencode({'api-version': '2018-02-01', 'resource': RESOURCE, **params})}"


def rest_url(**params: str) -> str:
    return f"{REST_PATH}?{urlencode({'resource': RESOURCE, **params})}"


def get(port: int, url: str, headers: Mapping[str, str] | None = None) -> Reply:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", url, headers=dict(META if headers is None else headers))
        response = connection.getresponse()
        return Reply(response.status, dict(response.getheaders()), response.read())
    finally:
        connection.close()


def serve_command(*args: str) -> list[str]:
    return cli_command("serve", *args)


def serve(*args: str) -> AbstractContextManager[Running]:
    """`azure-imds-token serve ARGS` as a subprocess; killed at the end if still running."""
    return running("serve", *args)
