"""azure-core transports that wrap the default ones and count the body bytes read."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from types import TracebackType
from typing import Any

from azure.core.pipeline.transport import (
    AioHttpTransport,
    AsyncHttpTransport,
    HttpTransport,
    RequestsTransport,
)


class _Counter:
    def __init__(self) -> None:
        self.bytes_read = 0


class _CountingIterator:
    def __init__(self, inner: Iterator[bytes], counter: _Counter) -> None:
        self._inner = inner
        self._counter = counter

    def __iter__(self) -> _CountingIterator:
        return self

    def __next__(self) -> bytes:
        chunk = next(self._inner)
        self._counter.bytes_read += len(chunk)
        return chunk


class _AsyncCountingIterator:
    def __init__(self, inner: AsyncIterator[bytes], counter: _Counter) -> None:
        self._inner = inner
        self._counter = counter

    def __aiter__(self) -> _AsyncCountingIterator:
        return self

    async def __anext__(self) -> bytes:
        chunk = await self._inner.__anext__()
        self._counter.bytes_read += len(chunk)
        return chunk


class _Response:
    def __init__(self, inner: Any, counter: _Counter, is_async: bool) -> None:
        self._inner = inner
        self._counter = counter
        self._is_async = is_async

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def iter_bytes(self, **kwargs: Any) -> Any:
        inner = self._inner.iter_bytes(**kwargs)
        if self._is_async:
            return _AsyncCountingIterator(inner.__aiter__(), self._counter)
        return _CountingIterator(iter(inner), self._counter)


class CountingTransport(HttpTransport[Any, Any]):
    """The library's default sync transport (requests, env ignored), counting body bytes."""

    def __init__(self) -> None:
        self._inner = RequestsTransport(use_env_settings=False)
        self._counter = _Counter()

    @property
    def bytes_read(self) -> int:
        return self._counter.bytes_read

    def send(self, request: Any, **kwargs: Any) -> Any:
        return _Response(self._inner.send(request, **kwargs), self._counter, is_async=False)

    def open(self) -> None:
        self._inner.open()

    def close(self) -> None:
        self._inner.close()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class AsyncCountingTransport(AsyncHttpTransport[Any, Any]):
    """The library's default async transport (aiohttp, env ignored), counting body bytes."""

    def __init__(self) -> None:
        self._inner = AioHttpTransport(use_env_settings=False)
        self._counter = _Counter()

    @property
    def bytes_read(self) -> int:
        return self._counter.bytes_read

    async def send(self, request: Any, **kwargs: Any) -> Any:
        return _Response(await self._inner.send(request, **kwargs), self._counter, is_async=True)

    async def open(self) -> None:
        await self._inner.open()

    async def close(self) -> None:
        await self._inner.close()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc: BaseException | None = None,
        tb: TracebackType | None = None,
    ) -> None:
        await self.close()
