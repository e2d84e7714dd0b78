"""Sending one IMDS request through an async azure-core transport (the async half)."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .._core.steps import FailureKind, HttpAnswer, Send, TransportFailure
from .._transport import (
    BodyBuffer,
    BodyTooSlow,
    answer,
    build_request,
    failure_from_exception,
    send_kwargs,
)

if TYPE_CHECKING:
    from azure.core.pipeline.transport import AsyncHttpTransport


def default_transport() -> AsyncHttpTransport[Any, Any]:
    """aiohttp when installed, else azure-core's asyncio-requests transport; environment
    proxies ignored either way (IMDS must be reached directly)."""
    transport: AsyncHttpTransport[Any, Any]
    try:
        from ._aiohttp_transport import ImdsAioHttpTransport  # needs the optional [aio] extra
    except ImportError:
        from azure.core.pipeline.transport import AsyncioRequestsTransport

        transport = AsyncioRequestsTransport(use_env_settings=False)
    else:
        transport = ImdsAioHttpTransport(use_env_settings=False)
    return transport


def _takes_timeout_pair(transport: AsyncHttpTransport[Any, Any]) -> bool:
    """azure-core's asyncio-requests transport (and subclasses) rejects `read_timeout`. Matched
    by name along the MRO: importing the class would load requests on the aiohttp path."""
    return any(cls.__name__ == "AsyncioRequestsTransport" for cls in type(transport).__mro__)


async def close_transport(transport: AsyncHttpTransport[Any, Any]) -> None:
    """Close an async transport; azure-core's asyncio-requests transport closes synchronously."""
    closing = transport.close()
    if inspect.isawaitable(closing):
        await closing


async def exchange(
    transport: AsyncHttpTransport[Any, Any], step: Send, cap: int, monotonic: Callable[[], float]
) -> HttpAnswer | TransportFailure:
    """Send one request and read its (capped) answer; never raises for network trouble.

    The whole exchange is also bounded here, since not every async transport bounds it.
    """
    budget = step.connect_timeout + step.read_timeout
    try:
        return await asyncio.wait_for(_exchange(transport, step, cap, monotonic, budget), budget + 0.25)
    except asyncio.TimeoutError as exc:
        return TransportFailure(FailureKind.READ_TIMEOUT, "no complete answer in time", exc)


async def _exchange(
    transport: AsyncHttpTransport[Any, Any],
    step: Send,
    cap: int,
    monotonic: Callable[[], float],
    budget: float,
) -> HttpAnswer | TransportFailure:
    from azure.core.exceptions import AzureError

    buffer = BodyBuffer(cap, monotonic() + budget, monotonic)
    try:
        response = await transport.send(
            build_request(step), **send_kwargs(step, timeout_pair=_takes_timeout_pair(transport))
        )
    except (AzureError, OSError) as exc:
        return failure_from_exception(exc)
    try:
        async for chunk in response.iter_bytes():
            if buffer.add(chunk):
                break
    except BodyTooSlow:
        return TransportFailure(FailureKind.READ_TIMEOUT, "body too slow")
    except (AzureError, OSError) as exc:
        return failure_from_exception(exc)
    finally:
        await response.close()
    return answer(response.status_code, response.headers.items(), buffer.body(), buffer.truncated)
