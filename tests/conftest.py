"""Shared fixtures: a fake clock, the loopback emulator, and one runner per shell so every
behaviour is checked on the sync and the async credential from the same table."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from azure_imds_credential import Clock, _presence
from azure_imds_credential import ImdsClient as SyncClient
from azure_imds_credential import ImdsManagedIdentityCredential as SyncCredential
from azure_imds_credential.aio import ImdsClient as AsyncClient
from azure_imds_credential.aio import ImdsManagedIdentityCredential as AsyncCredential
from azure_imds_credential.testing import ImdsEmulator


class FakeClock(Clock):
    """Real time plus an offset; sleeping only moves the offset, so tests never really sleep."""

    def __init__(self) -> None:
        self.offset = 0.0
        self.sleeps: list[float] = []

    def time(self) -> float:
        return time.time() + self.offset

    def monotonic(self) -> float:
        return time.monotonic() + self.offset

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.offset += seconds

    async def asleep(self, seconds: float) -> None:
        self.sleep(seconds)
        await asyncio.sleep(0)

    def random(self) -> float:
        return 0.5

    def advance(self, seconds: float) -> None:
        self.offset += seconds


@pytest.fixture(autouse=True)
def _fresh_presence() -> Iterator[None]:
    """Whether IMDS was seen is process-wide; each test starts as a new process would."""
    _presence.forget()
    yield
    _presence.forget()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def emulator() -> Iterator[ImdsEmulator]:
    with ImdsEmulator() as running:
        yield running


class Shell:
    """Runs the sync or the async credential/client behind one synchronous interface."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.is_async = name.startswith("async")
        # "-requests": the credential gets azure-core's requests-based transport injected, so
        # every table also covers RequestsTransport / AsyncioRequestsTransport, not only the
        # defaults (http.client for sync http:// endpoints, aiohttp for async).
        self._requests = name.endswith("-requests")
        self._loop = asyncio.new_event_loop() if self.is_async else None
        self._made: list[Any] = []
        self._transports: list[Any] = []

    def _with_transport(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        if self._requests and kwargs.get("transport") is None:
            from azure.core.pipeline.transport import AsyncioRequestsTransport, RequestsTransport

            kind = AsyncioRequestsTransport if self.is_async else RequestsTransport
            kwargs = {**kwargs, "transport": kind(use_env_settings=False)}
            self._transports.append(kwargs["transport"])
        return kwargs

    def credential(self, **kwargs: Any) -> Any:
        made = (AsyncCredential if self.is_async else SyncCredential)(**self._with_transport(kwargs))
        self._made.append(made)
        return made

    def client(self, **kwargs: Any) -> Any:
        made = (AsyncClient if self.is_async else SyncClient)(**self._with_transport(kwargs))
        self._made.append(made)
        return made

    def run(self, value: Any) -> Any:
        """The result of a call: awaited on this shell's loop when it is a coroutine."""
        if self._loop is not None and asyncio.iscoroutine(value):
            return self._loop.run_until_complete(value)
        return value

    def call(self, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return self.run(method(*args, **kwargs))

    def close(self) -> None:
        for made in self._made:
            self.run(made.close())
        for transport in self._transports:  # injected: the caller's to close
            transport.close()  # both requests transports close synchronously
        if self._loop is not None:
            self._loop.run_until_complete(self._loop.shutdown_asyncgens())
            self._loop.close()


@pytest.fixture(params=["sync", "sync-requests", "async", "async-requests"])
def shell(request: pytest.FixtureRequest) -> Iterator[Shell]:
    runner = Shell(request.param)
    try:
        yield runner
    finally:
        runner.close()
