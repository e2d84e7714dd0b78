"""Fork safety (gunicorn --preload) and async credentials across event loops."""

from __future__ import annotations

import asyncio
import os
import signal
import threading

import pytest

from azure_imds_credential import ImdsManagedIdentityCredential as SyncCredential
from azure_imds_credential._credential import _Flight
from azure_imds_credential.aio import ImdsManagedIdentityCredential as AsyncCredential
from azure_imds_credential.testing import ImdsEmulator

SCOPE_A = "https://a.example/.default"
SCOPE_B = "https://b.example/.default"


def _wait_child(pid: int, limit: float = 30.0) -> int:
    """The child's exit code; a child still running after `limit` s is killed (a deadlock)."""
    status: list[int] = []
    waiter = threading.Thread(target=lambda: status.append(os.waitpid(pid, 0)[1]))
    waiter.start()
    waiter.join(timeout=limit)
    if waiter.is_alive():
        os.kill(pid, signal.SIGKILL)
        waiter.join(timeout=10)
        return -1
    return os.waitstatus_to_exitcode(status[0])


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_forked_child_gets_tokens_when_parent_held_lock_and_had_request_in_flight(
    emulator: ImdsEmulator,
) -> None:
    cred = SyncCredential(endpoint=emulator.endpoint)
    cached = cred.get_token(SCOPE_A)  # also leaves a pooled connection behind
    # The worst moment to fork: a parent thread holds the lock, and a flight for B is pending
    # whose leader (a parent thread) will never run in the child.
    pending = ("https://b.example", False)
    with cred._flights_lock:
        cred._flights[pending] = _Flight()
        pid = os.fork()
        if pid != 0:
            del cred._flights[pending]
    if pid == 0:  # the child: never returns into pytest
        code = 1
        try:
            token_b = cred.get_token(SCOPE_B)  # must not wait for the parent's flight
            token_a = cred.get_token(SCOPE_A)  # the inherited cache still serves
            code = 0 if token_b.token and token_a.token == cached.token else 3
        finally:
            os._exit(code)
    try:
        assert _wait_child(pid) == 0
    finally:
        cred.close()
    # The child asked IMDS for B itself.
    assert [r.query["resource"] for r in emulator.token_requests].count("https://b.example") == 1


def test_async_credential_works_on_a_new_loop_when_first_loop_closed(emulator: ImdsEmulator) -> None:
    cred = AsyncCredential(endpoint=emulator.endpoint)

    async def use(scope: str) -> str:
        token = (await cred.get_token(scope)).token
        await cred.close()  # releases the transport bound to this loop
        return token

    first = asyncio.run(use(SCOPE_A))
    second = asyncio.run(use(SCOPE_B))  # a new loop: fresh loop-bound state, no hang
    assert first != second and len(emulator.token_requests) == 2


def test_async_client_raises_clear_error_when_used_from_second_running_loop(emulator: ImdsEmulator) -> None:
    emulator.latency = 0.3
    cred = AsyncCredential(endpoint=emulator.endpoint)
    started = threading.Event()
    errors: list[BaseException] = []

    async def hold() -> None:
        task = asyncio.ensure_future(cred.get_token(SCOPE_A))
        try:
            for _ in range(1000):  # bounded: a few turns of the loop, no I/O, bind the client
                if cred._client._loop is not None:
                    break
                await asyncio.sleep(0)
            assert cred._client._loop is not None
            started.set()
            await task
        finally:
            await cred.close()

    def other_loop() -> None:
        started.wait(timeout=10)
        try:
            asyncio.run(cred.get_token(SCOPE_B))
        except RuntimeError as exc:
            errors.append(exc)

    thread = threading.Thread(target=other_loop)
    thread.start()
    asyncio.run(hold())
    thread.join(timeout=30)
    assert not thread.is_alive()
    assert len(errors) == 1 and "another event loop" in str(errors[0])
