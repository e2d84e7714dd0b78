"""azure-core's aiohttp transport without aiohttp's hidden resend (imports aiohttp: loaded
only when the async shell makes its default transport and aiohttp is installed)."""

from __future__ import annotations

from azure.core.pipeline.transport import AioHttpTransport


class ImdsAioHttpTransport(AioHttpTransport):  # type: ignore[misc]  # (aiohttp is untyped here)
    """aiohttp sends an idempotent request a second time, at once, when a reused connection
    is reset. The flow counts and spaces every attempt itself; a hidden second request would
    double the load on an overloaded IMDS and make async differ from sync."""

    async def open(self) -> None:
        await super().open()
        if self.session is not None and hasattr(self.session, "_retry_connection"):
            self.session._retry_connection = False
