"""The async credential works with aiohttp and without it (azure-core's asyncio-requests)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from azure_imds_credential.testing import ImdsEmulator

SCRIPT = """
import asyncio, sys
if sys.argv[2] == "without":
    sys.modules["aiohttp"] = None  # as if the [aio] extra were not installed
from azure_imds_credential.aio import ImdsManagedIdentityCredential

async def main():
    async with ImdsManagedIdentityCredential(endpoint=sys.argv[1]) as cred:
        token = await cred.get_token("https://storage.azure.com/.default")
        from azure.core.pipeline.transport import AsyncioRequestsTransport
        if sys.argv[2] == "with":
            from azure.core.pipeline.transport import AioHttpTransport as Expected
        else:
            Expected = AsyncioRequestsTransport
        print(isinstance(cred._client._transport, Expected), bool(token.token))

asyncio.run(main())
"""


@pytest.mark.parametrize("aiohttp", ["with", "without"])
def test_async_credential_picks_transport_when_aiohttp_is(emulator: ImdsEmulator, aiohttp: str) -> None:
    done = subprocess.run(  # noqa: S603 - fixed arguments
        [sys.executable, "-W", "error", "-c", SCRIPT, emulator.endpoint, aiohttp],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "True"]
    assert len(emulator.token_requests) == 1
