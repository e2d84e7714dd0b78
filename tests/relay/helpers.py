"""Shared by the relay's tests: stdlib HTTP calls to a relay, and the `serve` subprocess."""

from __future__ import annotations

import http.client
import json
import os
import selectors
import signal
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parents[2]  # so that `tests.relay...` imports in subprocesses
ENDPOINT_ENV = "AZURE_POD_IDENTITY_AUTHORITY_HOST"
EXPORT = f"export {ENDPOINT_ENV}="
IMDS_PATH = "/metadata/identity/oauth2/token"
REST_PATH = "/v1/identity/oauth2/token"
RESOURCE = "https://storage.azure.com"
SCOPE = RESOURCE + "/.default"
META = {"Metadata": "true"}
WAIT = 30.0  # bound on every wait for a subprocess; never reached when things work


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


def env_without_endpoint(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != ENDPOINT_ENV}
    env.update(extra)
    return env


def serve_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "azure_imds_credential", "serve", *args]


class Served:
    def __init__(self, process: subprocess.Popen[str], endpoint: str) -> None:
        self.process = process
        self.endpoint = endpoint
        self.port = int(endpoint.rsplit(":", 1)[1])

    def stop(self, sig: signal.Signals) -> tuple[int, str, str]:
        self.process.send_signal(sig)
        out, err = self.process.communicate(timeout=WAIT)
        return self.process.returncode, out, err


def first_line(process: subprocess.Popen[str]) -> str:
    assert process.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        if not selector.select(timeout=WAIT):
            raise AssertionError("the server printed nothing")
    return process.stdout.readline().strip()


@contextmanager
def serve(*args: str) -> Iterator[Served]:
    """`azure-imds-token serve ARGS` as a subprocess; killed at the end if still running."""
    process = subprocess.Popen(  # noqa: S603 - fixed argv: this interpreter, this package
        serve_command("--port", "0", *args),
        cwd=ROOT,
        env=env_without_endpoint(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = first_line(process)
        assert line.startswith(EXPORT), line
        yield Served(process, line[len(EXPORT) :])
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=WAIT)
